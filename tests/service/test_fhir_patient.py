"""Patient resources, restricted and search views, the searchset Bundle, ETags and store rows."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from app.service.core import patient as fp
from app.service.pds.seed import reference_resources
from tests.service.test_fhir_spec import assert_valid

BASE = "https://api.service.nhs.uk/personal-demographics/FHIR/R4"
REFS = {r["id"]: r for r in reference_resources()}


def _built(**overrides: object) -> dict:
    args: dict = {
        "version": 3,
        "names": [fp.human_name("O'Neill", ["Siân", "Mary"], prefix=["Ms"], id="N1", start="1990-01-01")],
        "gender": "female", "birth_date": "1990-01-01",
        "addresses": [fp.address(["Flat 1", "", "23 Mill Lane", "Leeds"], "LS1 6AE", id="A1", start="2020-02-02")],
        "telecom": [fp.contact_point("phone", "01632960123", use="home", id="T1"),
                    fp.contact_point("email", "sian@example.com", use="home", id="T2")],
        "gp": fp.general_practitioner("B86001", id="G1", start="2020-02-02"),
    }
    args.update(overrides)
    return fp.patient("9434765919", **args)


def test_built_patient_has_the_pds_shape() -> None:
    resource = _built()
    assert list(resource) == ["resourceType", "id", "identifier", "meta", "name", "gender", "birthDate", "address",
                              "telecom", "generalPractitioner"]
    assert resource["identifier"][0]["system"] == "https://fhir.nhs.uk/Id/nhs-number"
    assert resource["identifier"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "01"
    assert resource["meta"] == {"versionId": "3", "security": [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "U", "display": "unrestricted"}]}
    assert resource["name"][0] == {"id": "N1", "use": "usual", "period": {"start": "1990-01-01"},
                                   "given": ["Siân", "Mary"], "family": "O'Neill", "prefix": ["Ms"]}
    assert resource["address"][0]["line"] == ["Flat 1", "23 Mill Lane", "Leeds"]  # empty lines dropped
    assert resource["generalPractitioner"][0] == {"id": "G1", "type": "Organization", "identifier": {
        "system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "B86001",
        "period": {"start": "2020-02-02"}}}


def test_built_and_reference_patients_are_valid_against_the_specification() -> None:
    assert_valid(_built(), "Patient.yaml")
    assert_valid(_built(deceased="2024-05-01T00:00:00+00:00", restricted=True,
                        extensions=[fp.death_notification("2024-05-01T00:00:00+00:00")]), "Patient.yaml")
    for resource in REFS.values():
        assert_valid(resource, "Patient.yaml")
        assert_valid(fp.read_view(resource), "Patient.yaml")


def test_sandbox_full_record_is_the_specification_example() -> None:
    jane = REFS["9000000009"]
    assert jane["name"][0] == {"id": "123", "use": "usual", "period": {"start": "2020-01-01", "end": "2021-12-31"},
                               "given": ["Jane"], "family": "Smith", "prefix": ["Mrs"], "suffix": ["MBE"]}
    assert [a["id"] for a in jane["address"]] == ["456", "T456"]
    assert [t["id"] for t in jane["telecom"]] == ["789", "790", "OC789"]
    assert jane["generalPractitioner"][0]["id"] == "254406A3"
    assert len(jane["extension"]) == 7


@pytest.mark.parametrize("nhs", ["9000000025"])
def test_restricted_read_view_strips_location_data(nhs: str) -> None:
    full = REFS[nhs]
    assert fp.is_restricted(full) and "address" in full and "telecom" in full  # held, never shown
    view = fp.read_view(full, version=2)
    for field in ("address", "telecom", "contact", "generalPractitioner", "managingOrganization"):
        assert field not in view
    urls = [e["url"] for e in view.get("extension", [])]
    assert fp.BIRTH_PLACE_URL not in urls and not fp.PHARMACY_URLS & set(urls)
    assert fp.DEATH_NOTIFICATION_URL in urls
    assert view["name"] == full["name"] and view["meta"]["security"][0]["code"] == "R"
    assert "address" in full  # the stored record is untouched


def test_restricted_view_of_an_unrestricted_record_still_strips() -> None:
    view = fp.restricted_view(REFS["9000000009"])
    assert not {"address", "telecom", "contact", "generalPractitioner"} & set(view)


def test_unrestricted_read_view_is_the_full_record_with_its_version() -> None:
    jane = REFS["9000000009"]
    assert fp.read_view(jane) == jane
    assert fp.read_view(jane, version=7)["meta"]["versionId"] == "7"
    assert jane["meta"]["versionId"] == "2"


def test_very_restricted_counts_as_restricted() -> None:
    resource = _built()
    resource["meta"]["security"] = [fp.security_label("V")]
    assert fp.is_restricted(resource) and "address" not in fp.read_view(resource)


def test_search_view_keeps_what_pds_returns_on_a_search() -> None:
    jane = REFS["9000000009"]
    jane_with_old_name = {**jane, "name": [*jane["name"], fp.human_name("Jones", ["Jane"], use="maiden", id="9")],
                          "managingOrganization": {"type": "Organization", "identifier": {"value": "Y12345"}}}
    view = fp.search_view(jane_with_old_name)
    assert [n["use"] for n in view["name"]] == ["usual"]
    assert [a["use"] for a in view["address"]] == ["home"]
    assert [e["url"] for e in view["extension"]] == [fp.DEATH_NOTIFICATION_URL]
    assert "managingOrganization" not in view and view["telecom"] == jane["telecom"]


def test_search_view_of_a_restricted_patient_never_has_an_address() -> None:
    view = fp.search_view(REFS["9000000025"])
    assert not {"address", "telecom", "contact", "generalPractitioner"} & set(view)


def test_search_bundle_matches_the_specification() -> None:
    entries = [(fp.search_view(REFS[n]), s) for n, s in (("9000000009", 1.0), ("9000000017", 0.8976),
                                                         ("9000000025", 0.75), ("9000000033", 0.5))]
    bundle = fp.search_bundle(entries, base_url=BASE, timestamp=datetime(2019, 12, 25, 12, tzinfo=UTC))
    assert_valid(bundle, "PatientSearch.yaml")
    assert list(bundle) == ["resourceType", "type", "timestamp", "total", "entry"]
    assert bundle["timestamp"] == "2019-12-25T12:00:00+00:00" and bundle["total"] == 4
    assert bundle["entry"][0]["fullUrl"] == f"{BASE}/Patient/9000000009"
    assert list(bundle["entry"][0]) == ["fullUrl", "search", "resource"]
    assert [e["search"]["score"] for e in bundle["entry"]] == [1.0, 0.8976, 0.75, 0.5]


def test_empty_bundle() -> None:
    bundle = fp.search_bundle([], base_url=BASE + "/", timestamp=datetime(2026, 1, 1, tzinfo=UTC))
    assert bundle["total"] == 0 and bundle["entry"] == []


def test_etag() -> None:
    assert fp.etag(2) == 'W/"2"' and fp.etag(10) == 'W/"10"'


def test_to_row_computes_the_index_columns() -> None:
    row = fp.to_row(_built(restricted=True, deceased="2024-05-01T00:00:00+00:00"))
    assert (row.nhs_number, row.version) == ("9434765919", 3)
    assert (row.family, row.given) == ("ONEILL", "SIAN")
    assert (row.family_phonetic, row.given_phonetic) == ("O540", "S500")
    assert row.birth_date == date(1990, 1, 1) and row.gender == "female"
    assert (row.postcode, row.gp_ods) == ("LS16AE", "B86001")
    assert row.restricted and row.deceased and not row.invalidated and row.superseded_by is None


def test_to_row_with_a_new_version_updates_meta() -> None:
    jane = REFS["9000000009"]
    row = fp.to_row(jane, 5, superseded_by="9000000017")
    assert row.version == 5 and row.resource["meta"]["versionId"] == "5" and jane["meta"]["versionId"] == "2"
    assert row.superseded_by == "9000000017"


def test_to_row_of_the_minimal_patient() -> None:
    row = fp.to_row(REFS["9000000033"])
    assert (row.family, row.given, row.family_phonetic, row.birth_date, row.gender) == ("", "", "", None, "unknown")
    assert row.postcode is None and row.gp_ods is None and not row.restricted


@pytest.mark.parametrize(("text", "expected"), [("2010-10-22", date(2010, 10, 22)), ("1932", date(1932, 1, 1)),
                                                ("1932-07", date(1932, 7, 1)), ("2010-10-22T00:00:00+00:00",
                                                                                date(2010, 10, 22)),
                                                ("2010-02-30", None), ("garbage", None), (None, None)])
def test_parse_fhir_date(text: str | None, expected: date | None) -> None:
    assert fp.parse_fhir_date(text) == expected
