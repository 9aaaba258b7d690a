"""Synthetic CP-IS content for seeded patients (deterministic per seed and seeding day).

The reference local authorities come from ``resources/cpis/local_authorities.json`` (put on every call; an
existing authority keeps its signing secret and webhook is reset to the file's). Of each chunk of patients:

* about 3% of children (under 18) get a plan: two thirds a child protection plan (CPP), one third looked after
  (LAC); a quarter of those plans ended some time in the last two years (so about half of those still show);
* about 1% of women aged 16-45 get an unborn child protection plan (UCPP) on their own record (deceased,
  merged and invalidated records get none).

Which patients, which authority and which dates follow from the NHS number and the seed alone (a cheap integer
hash: seeding stays a small fraction of the patients' own cost). Dates are relative to the seeding day.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

from app.resources_path import resource
from app.service.cpis.store import CpisPlan, CpisStore, LocalAuthority
from app.service.store import PatientRow

DATA = resource("cpis", "local_authorities.json")
CHILD_RATE, MOTHER_RATE = 30, 10  # per 1,000
_MASK = (1 << 64) - 1


@lru_cache(maxsize=2)
def local_authorities(path: Path = DATA) -> tuple[LocalAuthority, ...]:
    with path.open(encoding="utf-8") as handle:
        doc = json.load(handle)
    return tuple(LocalAuthority(a["code"], a["name"], a["team"], a["office_hours"], a["out_of_hours"],
                                a.get("webhook_url")) for a in doc["local_authorities"])


def _mix(nhs: str, seed: int) -> int:
    x = (int(nhs) ^ (seed * 0x9E3779B97F4A7C15)) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _years_before(today: date, years: int) -> date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:
        return today.replace(year=today.year - years, day=28)


def plans_for(rows: Sequence[PatientRow], seed: int, today: date, codes: Sequence[str]) -> list[CpisPlan]:
    child_from, mother_from, mother_to = _years_before(today, 18), _years_before(today, 45), _years_before(today, 16)
    plans = []
    for row in rows:
        born = row.birth_date
        if born is None or row.deceased or row.superseded_by or row.invalidated:
            continue
        h = _mix(row.nhs_number, seed)
        per_mille = h % 1000
        if born > child_from and per_mille < CHILD_RATE:
            kind = "CPP" if (h >> 10) % 3 else "LAC"
        elif row.gender == "female" and mother_from < born <= mother_to and per_mille < MOTHER_RATE:
            kind = "UCPP"
        else:
            continue
        start = max(born, today - timedelta(days=30 + (h >> 20) % 1000))
        end = None
        if (h >> 32) % 4 == 0:  # ended: some within the last 12 months (shown), some before (not shown)
            end = min(today - timedelta(days=1), start + timedelta(days=30 + (h >> 40) % 700))
        plans.append(CpisPlan(f"cpis-{seed}-{row.nhs_number}-0", row.nhs_number, kind,
                              codes[(h >> 50) % len(codes)], start, end))
    return plans


def seed_local_authorities(store: CpisStore) -> tuple[LocalAuthority, ...]:
    authorities = local_authorities()
    store.put_local_authorities(authorities)
    return authorities


def seed_rows(store: CpisStore, rows: Sequence[PatientRow], seed: int) -> int:
    """Write content for some of ``rows`` (one chunk of seeded patients); returns how many records were written."""
    codes = [a.code for a in seed_local_authorities(store)]
    return store.put_cpis_plans(plans_for(rows, seed, date.today(), codes))
