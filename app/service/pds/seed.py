"""Deterministic synthetic PDS patients for training mode and benchmarks.

``generate_patients(n, seed)`` yields lists of ``PatientRow`` (chunks): the same ``(n, seed)`` always gives the same
rows, and row *i* does not depend on ``n`` (a bigger population extends a smaller one). Patients get synthetic NHS
numbers (``nhs_number.synthetic(i)``), UK names from ``resources/seed/uk_demographics.json`` (accented, hyphenated
and apostrophe names included), births 1925-2025, addresses with real outward postcodes, a GP practice near
home, Ofcom drama-range phone numbers and example.com e-mail. About 1% are restricted, 1% deceased, 0.3%
superseded (a duplicate record merged into the patient generated just before) and 0.1% invalidated.

NHS's own sandbox reference patients (9000000009 full record, 9000000017, 9000000025 restricted, 9000000033
minimal) come first, from ``resources/seed/pds_reference_patients.json``, unless ``reference=False``.

Resources are built as dicts (no JSON encoding here: the store serialises them) with only what a row needs.
"""

from __future__ import annotations

import gc
import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.nhs_number import NHS_NUMBER_SYSTEM, synthetic_numbers
from app.resources_path import resource
from app.service.core.normalise import name_key, soundex
from app.service.core.patient import (
    CONFIDENTIALITY_SYSTEM,
    DEATH_DISPLAY,
    DEATH_NOTIFICATION_SYSTEM,
    DEATH_NOTIFICATION_URL,
    ODS_SYSTEM,
    VERIFICATION_SYSTEM,
    VERIFICATION_URL,
    to_row,
)
from app.service.store.rows import PatientRow

DATA_DIR = resource("seed")
FIRST_BIRTH = date(1925, 1, 1).toordinal()
LAST_BIRTH = date(2025, 12, 31).toordinal()
RESTRICTED_RATE, DECEASED_RATE, SUPERSEDED_RATE, INVALIDATED_RATE = 0.01, 0.01, 0.003, 0.001
_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # letters used in inward codes (never C I K M O V)
_U = {"system": CONFIDENTIALITY_SYSTEM, "code": "U", "display": "unrestricted"}
_R = {"system": CONFIDENTIALITY_SYSTEM, "code": "R", "display": "restricted"}


@lru_cache(maxsize=4)
def load_data(data_dir: Path = DATA_DIR) -> dict[str, Any]:
    with (data_dir / "uk_demographics.json").open(encoding="utf-8") as handle:
        return json.load(handle)


def reference_resources(data_dir: Path = DATA_DIR) -> list[dict[str, Any]]:
    """NHS's sandbox reference patients as full Patient resources (fresh copies each call)."""
    with (data_dir / "pds_reference_patients.json").open(encoding="utf-8") as handle:
        return json.load(handle)["patients"]


def reference_rows(data_dir: Path = DATA_DIR) -> list[PatientRow]:
    return [to_row(resource) for resource in reference_resources(data_dir)]


class _Tables:
    """Everything per-row work can look up instead of compute: names with their keys, places, practices."""

    def __init__(self, data: dict[str, Any]) -> None:
        def keyed(names: list[str]) -> list[tuple[str, str, str]]:
            return [(n, name_key(n), soundex(n)) for n in names]

        self.family = keyed(data["family"])
        self.male, self.female = keyed(data["given_male"]), keyed(data["given_female"])
        self.prefix = data["prefix"]
        self.places = data["places"]
        self.streets = data["streets"]
        self.domains = data["email_domains"]
        by_outward: dict[str, list[dict[str, str]]] = {}
        for practice in data["practices"]:
            by_outward.setdefault(practice["outward"], []).append(practice)
        self.practices = data["practices"]
        self.near = {p["outward"]: by_outward.get(p["outward"], []) for p in self.places}
        self.inward = [f"{d}{a}{b}" for d in "0123456789" for a in _INWARD_LETTERS for b in _INWARD_LETTERS]
        self.dates = {}  # ordinal -> ISO string, filled lazily (about 37,000 distinct days)


def _iso(tables: _Tables, ordinal: int) -> str:
    text = tables.dates.get(ordinal)
    if text is None:
        text = tables.dates[ordinal] = date.fromordinal(ordinal).isoformat()
    return text


def _verification() -> list[dict[str, Any]]:
    return [{"url": VERIFICATION_URL, "valueCodeableConcept": {"coding": [{
        "system": VERIFICATION_SYSTEM, "version": "1.0.0", "code": "01", "display": "Number present and verified"}]}}]


def _patient(i: int, nhs: str, rng: random.Random, t: _Tables, duplicate_of: PatientRow | None) -> PatientRow:
    r = rng.random
    ids = f"{rng.getrandbits(24):06X}"
    if duplicate_of is None:
        roll = r()
        gender = "female" if roll < 0.5 else "male" if roll < 0.99 else "unknown" if roll < 0.998 else "other"
        pool = t.female if gender == "female" or (gender != "male" and r() < 0.5) else t.male
        given = pool[int(r() * len(pool))]
        family = t.family[int(r() * len(t.family))]
        family_text = family[0]
        if r() < 0.02:  # double-barrelled
            other = t.family[int(r() * len(t.family))][0]
            family_text = f"{family_text}-{other}"
            family = (family_text, name_key(family_text), soundex(family_text))
        born = FIRST_BIRTH + int(r() * (LAST_BIRTH - FIRST_BIRTH + 1))
        given_names = [given[0], pool[int(r() * len(pool))][0]] if r() < 0.4 else [given[0]]
    else:  # a duplicate registration of the previous patient, later merged into it
        prev = duplicate_of.resource
        gender, born = prev["gender"], duplicate_of.birth_date.toordinal()
        given = (prev["name"][0]["given"][0], duplicate_of.given, duplicate_of.given_phonetic)
        family = (prev["name"][0]["family"], duplicate_of.family, duplicate_of.family_phonetic)
        family_text, given_names = family[0], prev["name"][0]["given"][:1]
    birth = _iso(t, born)
    place = t.places[int(r() * len(t.places))]
    inward = t.inward[int(r() * len(t.inward))]
    postcode = f"{place['outward']} {inward}"
    lines = [f"{1 + int(r() * 180)} {t.streets[int(r() * len(t.streets))]}", place["town"]]
    if r() < 0.15:
        lines.insert(0, f"Flat {1 + int(r() * 24)}")
    if place["county"]:
        lines.append(place["county"])
    moved_in = _iso(t, born + int(r() * (LAST_BIRTH - born + 1)))
    telecom = [{"id": ids + "T1", "system": "phone", "value": f"01632960{int(r() * 1000):03d}", "use": "home"}]
    if r() < 0.6:
        telecom.append({"id": ids + "T2", "system": "phone", "value": f"07700900{int(r() * 1000):03d}",
                        "use": "mobile"})
    if r() < 0.4:
        local = f"{given[1].lower()}.{family[1].lower()}{int(r() * 100)}"
        telecom.append({"id": ids + "T3", "system": "email", "value": f"{local}@{t.domains[i % 3]}",
                        "use": "home"})
    practices = t.near[place["outward"]] or t.practices
    practice = practices[int(r() * len(practices))]
    restricted = r() < RESTRICTED_RATE
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": nhs,
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs, "extension": _verification()}],
        "meta": {"versionId": "1", "security": [dict(_R if restricted else _U)]},
        "name": [{"id": ids + "N1", "use": "usual", "period": {"start": birth}, "given": given_names,
                  "family": family_text, "prefix": [t.prefix[gender][int(r() * len(t.prefix[gender]))]]}],
        "gender": gender,
        "birthDate": birth,
        "address": [{"id": ids + "A1", "period": {"start": moved_in}, "use": "home", "line": lines,
                     "postalCode": postcode}],
        "telecom": telecom,
        "generalPractitioner": [{"id": ids + "G1", "type": "Organization", "identifier": {
            "system": ODS_SYSTEM, "value": practice["ods"], "period": {"start": moved_in}}}],
    }
    deceased = r() < DECEASED_RATE
    if deceased:
        died = _iso(t, born + int(r() * (LAST_BIRTH - born + 1))) + "T00:00:00+00:00"
        code = "2" if r() < 0.8 else "1"
        resource["deceasedDateTime"] = died
        resource["extension"] = [{"url": DEATH_NOTIFICATION_URL, "extension": [
            {"url": "deathNotificationStatus", "valueCodeableConcept": {"coding": [{
                "system": DEATH_NOTIFICATION_SYSTEM, "version": "1.0.0", "code": code,
                "display": DEATH_DISPLAY[code]}]}},
            {"url": "systemEffectiveDate", "valueDateTime": died}]}]
    return PatientRow(
        nhs_number=nhs, version=1, resource=resource, family=family[1], given=given[1],
        family_phonetic=family[2], given_phonetic=given[2], birth_date=date.fromordinal(born), gender=gender,
        postcode=place["outward"] + inward, gp_ods=practice["ods"], restricted=restricted, deceased=deceased,
        superseded_by=duplicate_of.nhs_number if duplicate_of is not None else None,
        invalidated=duplicate_of is None and r() < INVALIDATED_RATE,
    )


def generate_patients(n: int, seed: int = 0, *, chunk_size: int = 10_000, reference: bool = True,
                      data_dir: Path = DATA_DIR) -> Iterator[list[PatientRow]]:
    """Yield ``n`` synthetic patients (plus the reference patients first) in lists of up to ``chunk_size``."""
    if n < 0 or chunk_size < 1:
        raise ValueError("n must be >= 0 and chunk_size >= 1")
    tables = _Tables(load_data(data_dir))
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    chunk: list[PatientRow] = reference_rows(data_dir) if reference else []
    last_live: PatientRow | None = None
    numbers = synthetic_numbers()
    done = 0
    while done < n:
        with _gc_paused():
            for i in range(done, min(n, done + chunk_size - len(chunk))):
                duplicate_of = last_live if last_live is not None and rng.random() < SUPERSEDED_RATE else None
                row = _patient(i, next(numbers), rng, tables, duplicate_of)
                if duplicate_of is None and not row.invalidated:
                    last_live = row
                chunk.append(row)
                done += 1
        if len(chunk) >= chunk_size or done >= n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a chunk is built (never across a yield). The rows are acyclic,
    so reference counting frees them; without this, collections triggered by the many young dicts take over
    half the time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
