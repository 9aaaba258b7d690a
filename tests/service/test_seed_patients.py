"""Synthetic patients: deterministic, realistic, valid, with NHS's sandbox reference patients included."""

from __future__ import annotations

import itertools
import json
import re
from datetime import date

import pytest

from app.nhs_number import is_synthetic, is_valid
from app.service.core.normalise import is_postcode
from app.service.core.patient import to_row
from app.service.pds.seed import DATA_DIR, generate_patients, load_data, reference_rows
from app.service.store.rows import PatientRow
from tests.service.test_fhir_spec import validator

N = 20_000


@pytest.fixture(scope="module")
def rows() -> list[PatientRow]:
    return [row for chunk in generate_patients(N, seed=7, chunk_size=4096) for row in chunk]


def test_reference_patients_come_first(rows: list[PatientRow]) -> None:
    assert [r.nhs_number for r in rows[:4]] == ["9000000009", "9000000017", "9000000025", "9000000033"]
    jane, _, janet, minimal = rows[:4]
    assert (jane.family, jane.given, jane.birth_date, jane.postcode, jane.gp_ods) == (
        "SMITH", "JANE", date(2010, 10, 22), "LS16AE", "Y12345")
    assert janet.restricted and not jane.restricted and jane.deceased
    assert minimal.family == "" and minimal.resource.get("name") is None
    assert len(rows) == N + 4


def test_without_reference_patients() -> None:
    first = next(generate_patients(10, seed=7, reference=False))
    assert len(first) == 10 and all(is_synthetic(r.nhs_number) for r in first)


def test_same_seed_same_rows_and_bigger_populations_extend_smaller_ones(rows: list[PatientRow]) -> None:
    again = [row for chunk in generate_patients(2_000, seed=7, chunk_size=333) for row in chunk]
    assert again == rows[:2_004]
    other = [row for chunk in generate_patients(2_000, seed=8) for row in chunk]
    assert [r.nhs_number for r in other] == [r.nhs_number for r in again]
    assert [r.resource for r in other[4:]] != [r.resource for r in again[4:]]


def test_chunks() -> None:
    sizes = [len(chunk) for chunk in generate_patients(25, seed=1, chunk_size=10)]
    assert sizes == [10, 10, 9]  # 4 reference patients + 25
    assert list(generate_patients(0, seed=1, reference=False)) == []
    with pytest.raises(ValueError):
        next(generate_patients(5, chunk_size=0))


def test_numbers_are_valid_synthetic_and_unique(rows: list[PatientRow]) -> None:
    numbers = [r.nhs_number for r in rows]
    assert len(set(numbers)) == len(numbers)
    assert all(is_valid(n) for n in numbers) and all(is_synthetic(n) for n in numbers[4:])


def test_distribution(rows: list[PatientRow]) -> None:
    synthetic = rows[4:]

    def share(flag: object) -> float:
        return sum(1 for r in synthetic if flag(r)) / len(synthetic)

    assert 0.006 < share(lambda r: r.restricted) < 0.014
    assert 0.006 < share(lambda r: r.deceased) < 0.014
    assert 0.001 < share(lambda r: r.superseded_by) < 0.006
    assert 0.0002 < share(lambda r: r.invalidated) < 0.003
    assert 0.45 < share(lambda r: r.gender == "female") < 0.55
    assert {r.gender for r in synthetic} == {"female", "male", "unknown", "other"}
    births = [r.birth_date for r in synthetic]
    assert min(births) >= date(1925, 1, 1) and max(births) <= date(2025, 12, 31)
    assert min(births) < date(1930, 1, 1) and max(births) > date(2020, 1, 1)


def test_superseded_records_point_at_a_live_earlier_duplicate(rows: list[PatientRow]) -> None:
    index = {r.nhs_number: (i, r) for i, r in enumerate(rows)}
    superseded = [r for r in rows if r.superseded_by]
    assert superseded
    for row in superseded:
        position, target = index[row.superseded_by]
        assert position < index[row.nhs_number][0]
        assert not target.superseded_by and not target.invalidated
        assert (row.family, row.given, row.birth_date) == (target.family, target.given, target.birth_date)
        assert not row.invalidated


def test_rows_agree_with_to_row(rows: list[PatientRow]) -> None:
    for row in itertools.islice(rows, 0, None, 97):
        assert to_row(row.resource, row.version, superseded_by=row.superseded_by, invalidated=row.invalidated) == row


def test_realistic_content(rows: list[PatientRow]) -> None:
    data = load_data()
    outward = {p["outward"] for p in data["places"]}
    practices = {p["ods"] for p in data["practices"]}
    families = {r.resource["name"][0]["family"] for r in rows[4:]}
    assert any("'" in f for f in families) and any("-" in f for f in families)
    assert any(re.search(r"[^\x00-\x7f]", f) for f in families)
    for row in itertools.islice(rows, 4, None, 53):
        address = row.resource["address"][0]
        assert is_postcode(address["postalCode"]) and address["postalCode"].split()[0] in outward
        assert row.gp_ods in practices and re.fullmatch(r"[A-Z][0-9]{5}", row.gp_ods)
        phones = [t["value"] for t in row.resource["telecom"] if t["system"] == "phone"]
        assert all(p.startswith(("01632960", "07700900")) for p in phones)  # Ofcom drama ranges
        emails = [t["value"] for t in row.resource["telecom"] if t["system"] == "email"]
        assert all(e.endswith(("@example.com", "@example.org", "@example.net")) for e in emails)
        if row.deceased:
            assert row.resource["deceasedDateTime"][:10] >= row.resource["birthDate"]


def test_resources_are_valid_against_the_specification(rows: list[PatientRow]) -> None:
    check = validator("Patient.yaml")
    for row in itertools.islice(rows, 0, None, 41):
        errors = list(check.iter_errors(row.resource))
        assert not errors, (row.nhs_number, [e.message for e in errors[:3]])


def test_data_files_are_well_formed() -> None:
    data = json.loads((DATA_DIR / "uk_demographics.json").read_text(encoding="utf-8"))
    assert len(data["practices"]) == 200 and len({p["ods"] for p in data["practices"]}) == 200
    assert len(data["family"]) > 150 and len(data["given_male"]) > 80 and len(data["given_female"]) > 80
    assert {"LS1", "M13", "B15", "SW1A"} <= {p["outward"] for p in data["places"]}
    assert [r.nhs_number for r in reference_rows()] == ["9000000009", "9000000017", "9000000025", "9000000033"]
