"""Patients: bulk put, get, compare-and-swap updates under concurrency, search filters, related persons."""

from __future__ import annotations

import dataclasses
import importlib
import json
import threading
import time
from datetime import date

import pytest

from app.service.store import Answer, AuditEntry, NotFound, PatientRow, SearchFilter, VersionConflict


def patient(nhs: str, family: str = "SMITH", given: str = "JANE", born: date | None = date(1980, 5, 17), *,
            gender: str = "female", postcode: str | None = "LS16AE", gp: str | None = "B86001", version: int = 1,
            restricted: bool = False, superseded_by: str | None = None, invalidated: bool = False,
            phonetic: str | None = None) -> PatientRow:
    resource = {"resourceType": "Patient", "id": nhs, "meta": {"versionId": str(version)},
                "name": [{"family": family.title(), "given": [given.title()]}], "note": "£ü—"}
    return PatientRow(nhs_number=nhs, version=version, resource=resource, family=family, given=given,
                      family_phonetic=phonetic or family[:1] + "000", given_phonetic=given[:1] + "000",
                      birth_date=born, gender=gender, postcode=postcode, gp_ods=gp, restricted=restricted,
                      deceased=False, superseded_by=superseded_by, invalidated=invalidated)


def numbers(rows: list[PatientRow]) -> list[str]:
    return [r.nhs_number for r in rows]


def test_put_get_round_trip_and_upsert(store):
    a, b = patient("9000000009"), patient("9000000017", born=None, postcode=None, gp=None)
    assert store.put_patients([a, b]) == 2
    assert store.get_patient("9000000009") == a
    assert store.get_patient("9000000017") == b
    assert store.get_patient("9999999999") is None
    changed = dataclasses.replace(a, family="JONES", version=3)
    assert store.put_patients(iter([changed])) == 1
    assert store.get_patient("9000000009") == changed


def test_update_is_compare_and_swap(store):
    store.put_patients([patient("9000000009")])
    new = patient("9000000009", family="BROWN", version=2)
    assert store.update_patient("9000000009", 1, new) == new
    assert store.get_patient("9000000009") == new
    with pytest.raises(VersionConflict) as info:
        store.update_patient("9000000009", 1, patient("9000000009", version=2))
    assert info.value.current_version == 2
    with pytest.raises(NotFound):
        store.update_patient("9000000025", 1, patient("9000000025", version=2))
    with pytest.raises(ValueError, match="expected_version"):
        store.update_patient("9000000009", 2, patient("9000000009", version=2))
    assert store.get_patient("9000000009") == new


def test_update_commits_its_audit_records_and_answer_with_the_change_or_not_at_all(store):
    store.put_patients([patient("9000000009")])
    entry = AuditEntry(user_id="u1", role_profile_id="r1", org="A1", action="pds.patch", nhs_number="9000000009",
                       request_id="rid-1", outcome="200", details={"version": 2})
    answer = Answer("rid-1", "u1", "PATCH", "/Patient/9000000009", 200, (("etag", 'W/"2"'),), b"{}")
    store.update_patient("9000000009", 1, patient("9000000009", version=2), audit=[entry], answer=answer)
    records = store.query_audit(nhs_number="9000000009")
    assert [(r.request_id, r.outcome, r.details) for r in records] == [("rid-1", "200", {"version": 2})]
    assert store.recall("rid-1", "u1").body == b"{}"
    stale = AuditEntry(user_id="u1", role_profile_id="r1", org="A1", action="pds.patch", nhs_number="9000000009",
                       request_id="rid-2", outcome="200")
    with pytest.raises(VersionConflict):  # a stale write leaves no trace: no record, no answer
        store.update_patient("9000000009", 1, patient("9000000009", version=2), audit=[stale],
                             answer=Answer("rid-2", "u1", "PATCH", "/p", 200, (), b"x"))
    assert [r.request_id for r in store.query_audit(nhs_number="9000000009")] == ["rid-1"]
    assert store.recall("rid-2", "u1") is None
    assert store.verify_audit().ok


def test_fifty_concurrent_updaters_lose_no_update(store):
    store.put_patients([patient("9000000009")])
    barrier = threading.Barrier(50)
    conflicts, errors = [], []

    def bump(worker: int) -> None:
        barrier.wait()
        try:
            while True:
                current = store.get_patient("9000000009")
                resource = {**current.resource, "meta": {"versionId": str(current.version + 1)},
                            "touched": [*current.resource.get("touched", []), worker]}
                row = dataclasses.replace(current, version=current.version + 1, resource=resource)
                try:
                    store.update_patient("9000000009", current.version, row)
                    return
                except VersionConflict as exc:  # If-Match was stale: re-read and retry, as a client would
                    conflicts.append(exc.current_version)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=bump, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    final = store.get_patient("9000000009")
    assert final.version == 51
    assert sorted(final.resource["touched"]) == list(range(50))  # every update kept
    assert conflicts, "the threads should have collided at least once"


@pytest.fixture
def searchable(store):
    store.put_patients([
        patient("9000000009", "SMITH", "JANE", date(1980, 5, 17), phonetic="S530"),
        patient("9000000017", "SMITH", "JOHN", date(1980, 5, 17), gender="male", phonetic="S530"),
        patient("9000000025", "SMITH", "JOAN", date(1980, 5, 17), restricted=True, phonetic="S530"),
        patient("9000000033", "SMYTH", "JANE", date(1980, 5, 17), postcode="M11AA", gp="P81001", phonetic="S530"),
        patient("9000000041", "SMITHERS", "WAYLON", date(1971, 1, 2), gender="male", phonetic="S536"),
        patient("9000000068", "SMITH", "OLD", date(1980, 5, 17), superseded_by="9000000009", phonetic="S530"),
        patient("9000000076", "SMITH", "GONE", date(1980, 5, 17), invalidated=True, phonetic="S530"),
        patient("9000000084", "JONES", "JANE", date(1980, 5, 18), phonetic="J520"),
    ])
    return store


def test_search_exact_family_and_birth_date(searchable):
    day = date(1980, 5, 17)
    f = SearchFilter(family="SMITH", birth_date_from=day, birth_date_to=day)
    # restricted patients ARE found by name + date; superseded and invalidated never are
    assert numbers(searchable.search(f)) == ["9000000009", "9000000017", "9000000025"]
    assert numbers(searchable.search(dataclasses.replace(f, gender="male"))) == ["9000000017"]


def test_search_prefix_and_date_range(searchable):
    f = SearchFilter(family_prefix="SMI", birth_date_from=date(1970, 1, 1), birth_date_to=date(1975, 1, 1))
    assert numbers(searchable.search(f)) == ["9000000041"]
    assert len(searchable.search(SearchFilter(family_prefix="SM"))) == 5
    assert numbers(searchable.search(SearchFilter(family_prefix="JONES"))) == ["9000000084"]


def test_search_fuzzy_uses_phonetic_keys_instead(searchable):
    f = SearchFilter(family="SMIIITH", family_phonetic="S530", given_phonetic="J000", fuzzy=True)
    assert numbers(searchable.search(f)) == ["9000000009", "9000000017", "9000000025", "9000000033"]


def test_search_by_postcode_or_gp_never_returns_restricted(searchable):
    by_postcode = searchable.search(SearchFilter(family="SMITH", postcode="LS16AE"))
    assert numbers(by_postcode) == ["9000000009", "9000000017"]
    assert numbers(searchable.search(SearchFilter(postcode="M11AA"))) == ["9000000033"]
    by_gp = searchable.search(SearchFilter(gp_ods="B86001", birth_date_from=date(1980, 5, 17)))
    assert "9000000025" not in numbers(by_gp) and "9000000009" in numbers(by_gp)


def test_search_limit(searchable):
    assert len(searchable.search(SearchFilter(family_prefix="S", limit=2))) == 2
    assert searchable.search(SearchFilter(family="SMITH", limit=0)) == []


def test_related_persons(store):
    store.put_patients([patient("9000000009")])
    mother = {"resourceType": "RelatedPerson", "id": "507B7621", "relationship": [{"coding": [{"code": "MTH"}]}]}
    father = {"resourceType": "RelatedPerson", "id": "1A2B3C4D"}
    assert store.put_related_persons([("9000000009", [mother, father])]) == 1
    assert store.related_persons("9000000009") == [mother, father]
    store.put_related_persons([("9000000009", [father])])
    assert store.related_persons("9000000009") == [father]
    assert store.related_persons("9000000017") == []


def synthetic(n: int) -> list[PatientRow]:
    families = ["SMITH", "JONES", "TAYLOR", "BROWN", "WILLIAMS", "WILSON", "JOHNSON", "DAVIES", "PATEL", "KHAN"]
    return [patient(f"{9100000000 + i}", families[i % 10], "ANNE" if i % 2 else "BOB",
                    date(1930 + i % 90, 1 + i % 12, 1 + i % 28), postcode=f"LS{i % 500}AB", gp=f"B{i % 300:05d}",
                    restricted=i % 97 == 0, phonetic=families[i % 10][:2] + "00")
            for i in range(n)]


@pytest.mark.parametrize("path", ["bulk", "batched"])
def test_bulk_load_twenty_thousand_rows_and_search_uses_indexes(store, store_kind, monkeypatch, path):
    module = importlib.import_module(f"app.service.storage.{'sqlite' if store_kind == 'sqlite' else 'postgres'}")
    monkeypatch.setattr(module, "PUT_BATCH", 5_000)  # several batches, so a repeat crosses batches
    store.bulk_threshold = 5_000 if path == "bulk" else 10**9
    rows = synthetic(20_000)
    rows[12_000] = dataclasses.replace(rows[12_000], nhs_number=rows[100].nhs_number)  # a repeat: last one wins
    started = time.perf_counter()
    store.put_patients(rows)
    assert time.perf_counter() - started < 30
    assert store.get_patient(rows[100].nhs_number) == rows[12_000]
    assert store.get_patient("9100012345") == rows[12345]
    assert store.put_patients(synthetic(105)[95:]) == 10  # into a full table: the batched upsert
    assert store.get_patient(rows[100].nhs_number) == synthetic(101)[100]
    hits = store.search(SearchFilter(family="PATEL", birth_date_from=date(1938, 9, 9), birth_date_to=date(1938, 9, 9)))
    assert hits and all(h.family == "PATEL" and h.birth_date == date(1938, 9, 9) for h in hits)
    shapes = {
        "family_dob": SearchFilter(family="PATEL", birth_date_from=date(1938, 9, 9), birth_date_to=date(1938, 9, 9)),
        "phonetic_dob": SearchFilter(family_phonetic="PA00", fuzzy=True, birth_date_from=date(1938, 9, 9),
                                     birth_date_to=date(1938, 9, 9)),
        "postcode": SearchFilter(postcode="LS7AB", family="JONES"),
        "gp": SearchFilter(gp_ods="B00007", family_prefix="JO"),
    }
    for name, f in shapes.items():
        plan = store.explain_search(f)
        assert "patients_" in plan and "Seq Scan" not in plan and "SCAN patients" not in plan, (name, plan)


def test_stored_json_is_exactly_what_a_read_returns(store):
    """Reads serve the stored JSON text without decoding it when nothing is withheld: for every seeded patient
    that text must decode to the read view, and the restricted column must agree with the resource."""
    from app.service.core.patient import is_restricted, read_view
    from app.service.pds.seed import generate_patients

    rows = [r for chunk in generate_patients(400, seed=3) for r in chunk]
    store.put_patients(rows)
    assert any(r.restricted for r in rows)
    for row in rows:
        doc = store.get_patient_json(row.nhs_number)
        assert doc is not None and (doc.version, doc.superseded_by, doc.invalidated) == (
            row.version, row.superseded_by, row.invalidated)
        assert doc.restricted == is_restricted(row.resource) == row.restricted
        if not doc.restricted:
            assert json.loads(doc.json) == read_view(row.resource, row.version)
    assert store.get_patient_json("9999999999") is None
