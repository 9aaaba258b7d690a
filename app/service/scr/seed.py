"""Synthetic Summary Care Record content for seeded patients (deterministic per seed).

About 2% of seeded patients get an SCR and 0.5% have opted out (consent "No", no record); everyone else has
none (their consent reads as "Ask"). Of those with an SCR, 1 in 20 carries the legacy consent "Yes". Content
comes from the training reference set ``resources/scr/reference_set.json`` in clinically plausible
combinations: repeat medicines follow the patient's problems, nobody is prescribed a medicine they are allergic
to or reacted to, children get few long-term problems, older patients get flu vaccinations and some a
resuscitation decision. NHS's sandbox patients: 9000000009 and 9000000025 have an SCR, 9000000017 has opted
out, 9000000033 has none (the sandbox's empty result).
"""

from __future__ import annotations

import gc
import json
import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.resources_path import resource
from app.service.scr.document import (
    AllergyItem,
    Author,
    ClinicalItem,
    Coded,
    Content,
    MedicationItem,
    build_document,
)
from app.service.scr.store import ScrDocument, ScrStore
from app.service.store import PatientRow

REFERENCE_SET = resource("scr", "reference_set.json")
SCR_PER_10000, OPTED_OUT_PER_10000 = 200, 50
SEED_NOW = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)  # fixed, so the same seed always gives the same records
WITH_RECORD = ("9000000009", "9000000025")
OPTED_OUT = ("9000000017",)
NO_RECORD = ("9000000033",)


@lru_cache(maxsize=2)
def reference_set(path: Path = REFERENCE_SET) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def _coded(d: dict[str, Any]) -> Coded:
    return Coded(d.get("code"), d["display"])


def _bucket(nhs: str, seed: int) -> int:
    return (int(nhs) * 2654435761 + seed * 40503) % 10000


def _age(row: PatientRow) -> int:
    return (SEED_NOW.date() - row.birth_date).days // 365 if row.birth_date else 40


def _when(rng: random.Random, max_days: int, created: date) -> date:
    return created - timedelta(days=rng.randint(1, max_days))


def _weighted(rng: random.Random, items: list[dict[str, Any]]) -> dict[str, Any]:
    return rng.choices(items, weights=[i.get("weight", 1) for i in items])[0]


def make_content(row: PatientRow, rng: random.Random, created: date, ref: dict[str, Any]) -> Content:
    age, content = _age(row), Content()
    roll = rng.random()
    avoid: set[str] = set()
    if roll < 0.55:
        for a in {id(x): x for x in (_weighted(rng, ref["allergies"]) for _ in range(rng.choice((1, 1, 2))))}.values():
            content.allergies.append(AllergyItem(_coded(a), _coded(a["substance"]), a["reaction"],
                                                 _when(rng, 3650, created), "allergy", a.get("severity")))
            avoid.add(a["code"])
    elif roll < 0.95:
        content.allergies.append(AllergyItem(_coded(ref["no_known_allergy"]), Coded(None, ""), "",
                                             _when(rng, 3650, created), "none"))
    if rng.random() < 0.15:
        r = _weighted(rng, ref["adverse_reactions"])
        content.allergies.append(AllergyItem(_coded(r), _coded(r["substance"]), r["reaction"],
                                             _when(rng, 2000, created), "intolerance"))
        avoid.add(r["substance"]["code"])
    problems = [p for p in ref["problems"] if age >= 18 or p["code"] in ("195967001", "84757009")]
    chosen = {p["code"]: p for p in (_weighted(rng, problems) for _ in range(rng.choice((0, 1, 1, 2, 3))))}
    if age < 18:
        chosen = dict(list(chosen.items())[:1])

    def allowed(med: dict[str, Any]) -> bool:
        return med["substance"]["code"] not in avoid and not avoid & set(med.get("not_with_allergy", ()))

    meds = [m for m in ref["medications"] if allowed(m)]
    for code in chosen:
        for med in [m for m in meds if code in m["for"]][:2]:
            content.medications.append(MedicationItem(med["product"], _coded(med["substance"]), med["dose"],
                                                      med["quantity"], _when(rng, 56, created), "repeat"))
    acute = [m for m in meds if "acute" in m["for"] or "any" in m["for"]]
    for med in rng.sample(acute, k=min(len(acute), rng.choice((0, 0, 1, 2)))):
        content.medications.append(MedicationItem(med["product"], _coded(med["substance"]), med["dose"],
                                                  med["quantity"], _when(rng, 360, created), "acute"))
    if rng.random() < 0.2:
        med = rng.choice([m for m in meds if "any" in m["for"]] or meds)
        content.medications.append(MedicationItem(med["product"], _coded(med["substance"]), med["dose"],
                                                  med["quantity"], _when(rng, 180, created), "discontinued"))
    if rng.random() < 0.4:  # additional information (the patient has not opted out of it)
        for p in chosen.values():
            content.additional.append(ClinicalItem(_coded(p), _when(rng, 7000, created), "problem"))
        if age >= 30 and rng.random() < 0.25:
            content.additional.append(ClinicalItem(_coded(rng.choice(ref["procedures"])),
                                                   _when(rng, 9000, created), "procedure"))
        if age >= 65:
            for imm in ref["immunisations"]:
                content.additional.append(ClinicalItem(_coded(imm), _when(rng, 300, created), "immunisation"))
        if age >= 85 or "363346000" in chosen:
            content.additional.append(ClinicalItem(_coded(ref["end_of_life"][0]), _when(rng, 200, created),
                                                   "preference"))
        if age >= 70 and rng.random() < 0.3:
            content.additional.append(ClinicalItem(_coded(ref["communication"][0]), _when(rng, 3000, created),
                                                   "preference"))
    return content


def document_for(row: PatientRow, seed: int, ref: dict[str, Any] | None = None) -> ScrDocument:
    """The seeded SCR of ``row`` (deterministic for the NHS number and seed)."""
    rng = random.Random(int(row.nhs_number) * 1_000_003 + seed)  # noqa: S311 - synthetic data, not security

    def new_id() -> str:
        h = f"{rng.getrandbits(124):031X}"
        return f"{h[:8]}-{h[8:12]}-4{h[12:15]}-{'89AB'[int(h[15], 16) & 3]}{h[16:19]}-{h[19:31]}"

    created = SEED_NOW - timedelta(days=rng.randint(0, 700), minutes=rng.randint(0, 600))
    content = make_content(row, rng, created.date(), ref or reference_set())
    ods = row.gp_ods or "Y12345"
    author = Author(f"9{rng.randint(10**10, 10**11 - 1)}", "Dr Training GP", f"{rng.randint(10**11, 10**12 - 1)}",
                    ods, f"Training Practice {ods}")
    scr_id = new_id()
    bundle = build_document(row.nhs_number, content, author, scr_id=scr_id, created=created, new_id=new_id)
    return ScrDocument(scr_id, row.nhs_number, created, bundle, author.user_id, ods)


def seed_rows(store: ScrStore, rows: Sequence[PatientRow], seed: int) -> int:
    """Write content for some of ``rows`` (one chunk of seeded patients); returns how many records were written."""
    ref = reference_set()
    docs: list[ScrDocument] = []
    consents: list[tuple[str, str]] = []
    was_enabled = gc.isenabled()
    gc.disable()  # the documents are acyclic dicts: collections over the chunk's rows would dominate the time
    try:
        _select(rows, seed, ref, docs, consents)
    finally:
        if was_enabled:
            gc.enable()
    if not docs and not consents:
        return 0
    return store.put_scr_seed(consents, docs, now=SEED_NOW)


def _select(rows: Sequence[PatientRow], seed: int, ref: dict[str, Any], docs: list[ScrDocument],
            consents: list[tuple[str, str]]) -> None:
    for row in rows:
        nhs = row.nhs_number
        if row.superseded_by or row.invalidated or nhs in NO_RECORD:
            continue
        bucket = _bucket(nhs, seed)
        if nhs in OPTED_OUT or (nhs not in WITH_RECORD and SCR_PER_10000 <= bucket < SCR_PER_10000
                                + OPTED_OUT_PER_10000):
            consents.append((nhs, "No"))
        elif nhs in WITH_RECORD or bucket < SCR_PER_10000:
            docs.append(document_for(row, seed, ref))
            consents.append((nhs, "Yes" if bucket % 20 == 0 and nhs not in WITH_RECORD else "Ask"))
