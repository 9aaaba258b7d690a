"""Seeded flags, on both stores: deterministic, a few per cent of live patients, the reference patient flagged,
every one conformant to the IG profiles, and re-seeding adds nothing."""

from __future__ import annotations

from app.service.flags import seed as seed_flags
from app.service.flags.codes import load_codes
from app.service.pds.seed import generate_patients
from app.service.store import Store

from .flags_helpers import check_conformance


def test_seeding_flags_a_few_per_cent_deterministically(store: Store) -> None:
    chunks = list(generate_patients(3000, seed=11, chunk_size=1000))
    written = sum(seed_flags.seed_rows(store, chunk, 11) for chunk in chunks)
    patients = [p for chunk in chunks for p in chunk]
    flagged = [p for p in patients if store.flags_for_patient(p.nhs_number)]
    assert written == len(flagged)
    assert 0.015 * len(patients) < len(flagged) < 0.05 * len(patients), len(flagged)
    assert "9000000009" in {p.nhs_number for p in flagged}
    assert not any(p.superseded_by or p.invalidated for p in flagged)
    for p in flagged:
        [row] = store.flags_for_patient(p.nhs_number)
        assert check_conformance(row.resource) == [], row.resource
        assert row.status == "active" and row.version == 1 and store.flag_history(row.id) == [row]

    # the same seed gives the same flags, whatever the chunking; re-seeding adds nothing
    again = [seed_flags.flag_for(p, 11, load_codes()) for p in flagged]
    assert [store.get_flag(r.id) for r in again] == again
    for chunk in generate_patients(3000, seed=11, chunk_size=700):
        seed_flags.seed_rows(store, chunk, 11)
    assert sum(len(store.flags_for_patient(p.nhs_number)) for p in patients) == len(flagged)


def test_seeded_content_hangs_together() -> None:
    codes = load_codes()
    rows = [seed_flags.flag_for(p, 5, codes) for p in next(generate_patients(2000, seed=5))
            if seed_flags.chosen(p, 5)]
    consents = {c["policyRule"]["coding"][0]["code"] for r in rows for c in r.resource["contained"]
                if c["resourceType"] == "Consent"}
    assert consents >= {"001", "002"}, consents
    for r in rows:
        assert [c["resourceType"] for c in r.resource["contained"]][:2] == ["Provenance", "Consent"]
        assert r.resource["period"]["start"] >= "2021-03-01"
    different = {seed_flags.flag_for(p, 6, codes).id for p in next(generate_patients(50, seed=5))}
    assert not different & {r.id for r in rows}, "another seed gives other ids"
