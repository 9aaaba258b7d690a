"""PATCH /Patient: the specification's examples, JSON Patch rules, PDS rules, versioning, all-or-nothing."""

from __future__ import annotations

import copy
import json
from datetime import date
from typing import Any

import pytest

from app.service.core import patient as fp
from app.service.core.etag import check_version, parse_if_match
from app.service.core.outcome import FhirError
from app.service.pds.patch import (
    apply_patches,
    check_content_type,
    parse_patches,
    update_patient,
)
from app.service.pds.seed import reference_resources
from tests.service.test_fhir_spec import SPEC_DIR, assert_valid

TODAY = date(2026, 3, 1)
REFS = {r["id"]: r for r in reference_resources()}
EXAMPLES = SPEC_DIR / "components" / "examples" / "requests" / "PatientPatch"


def patch(resource: dict[str, Any], *patches: dict[str, Any], version: int = 2) -> dict[str, Any]:
    return update_patient(resource, {"patches": list(patches)}, current_version=version,
                          if_match=f'W/"{version}"', today=TODAY).resource


def rejected(resource: dict[str, Any], *patches: dict[str, Any], body: Any = None) -> FhirError:
    before = copy.deepcopy(resource)
    with pytest.raises(FhirError) as caught:
        update_patient(resource, body if body is not None else {"patches": list(patches)}, current_version=2,
                       if_match='W/"2"', today=TODAY)
    assert resource == before  # all or nothing: the stored resource is never touched
    return caught.value


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


JANE = REFS["9000000009"]
MINIMAL = REFS["9000000033"]


# --- the specification's own examples ------------------------------------------------------------------------


def test_update_gender_example() -> None:
    result = update_patient(JANE, example("update-gender"), current_version=2, if_match='W/"2"', today=TODAY)
    assert result.version == 3 and result.resource["gender"] == "male"
    assert result.resource["meta"]["versionId"] == "3" and fp.etag(result.version) == 'W/"3"'
    assert JANE["gender"] == "female"
    assert_valid(result.resource, "Patient.yaml")


def test_add_name_example_gets_an_id_and_keeps_its_period() -> None:
    result = update_patient(JANE, example("add-name"), current_version=2, if_match='W/"2"', today=TODAY).resource
    added = result["name"][-1]
    assert added["use"] == "old" and added["family"] == "Bloggs" and added["period"] == {"start": "2019-12-31"}
    assert len(added["id"]) == 8 and added["id"] != result["name"][0]["id"]
    assert next(iter(added)) == "id"
    assert_valid(result, "Patient.yaml")


@pytest.mark.parametrize("name", ["update-address", "update-address-alternative"])
def test_update_address_examples(name: str) -> None:
    result = update_patient(JANE, example(name), current_version=2, if_match='W/"2"', today=TODAY).resource
    assert result["address"][0]["id"] == "456" and result["address"][0]["line"][0] == "2 Whitehall Quay"
    assert result["address"][0]["postalCode"].startswith("LS1 4")
    if name == "update-address":  # the alternative's PAF key "9876543" breaks the spec's own ^[0-9]{8}$
        assert_valid(result, "Patient.yaml")


def test_delete_extension_example_tests_the_url_first() -> None:
    result = update_patient(JANE, example("delete-extension"), current_version=2, if_match='W/"2"', today=TODAY)
    urls = [e["url"] for e in result.resource["extension"]]
    assert "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-PreferredDispenserOrganization" not in urls
    assert len(urls) == len(JANE["extension"]) - 1


def test_examples_that_break_business_rules_are_refused() -> None:
    assert rejected(JANE, body=example("delete-gender")).diagnostics == \
        "Invalid update with error - gender cannot be removed"
    assert rejected(JANE, body=example("delete-name")).spine_code == "INVALID_UPDATE"  # the only usual name
    assert rejected(JANE, body=example("delete-name-alternative")).spine_code == "INVALID_UPDATE"
    assert rejected(JANE, body=example("add-extension")).spine_code == "INVALID_UPDATE"  # second nominated pharmacy
    formal = rejected(JANE, body=example("update-extension"))  # changing a formal death notification
    assert (formal.status, formal.spine_code) == (403, "FORBIDDEN_UPDATE")


def test_minimal_patient_takes_the_examples_that_add_data() -> None:
    result = patch(MINIMAL, *example("add-extension")["patches"], *example("add-name")["patches"])
    assert result["extension"][0]["url"].endswith("NominatedPharmacy") and result["name"][0]["family"] == "Bloggs"
    died = patch(MINIMAL, *example("add-deceased-date-time")["patches"],
                 {"op": "add", "path": "/extension/-", "value": fp.death_notification("2010-10-22T00:00:00+00:00",
                                                                                       code="1")})
    assert died["deceasedDateTime"] == "2010-10-22T00:00:00+00:00"
    assert rejected(MINIMAL, body=example("add-deceased-date-time")).diagnostics.endswith(
        "a date of death needs a death notification status")


# --- body and path rules -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    [{"op": "replace", "path": "/gender", "value": "male"}],  # a bare JSON Patch array
    {}, {"patches": []}, {"patches": "x"}, None, "patches",
])
def test_body_must_be_an_object_with_patches(body: Any) -> None:
    error = rejected(JANE, body=body if body is not None else 0)
    assert (error.status, error.spine_code, error.diagnostics) == (
        400, "INVALID_UPDATE", "Invalid update with error - No patches found")


@pytest.mark.parametrize("item", [
    {"op": "move", "from": "/gender", "path": "/x"}, {"op": "copy", "from": "/gender", "path": "/x"},
    {"op": "replace", "path": "/gender"}, {"op": "remove", "path": "/gender", "value": "x"},
    {"op": "replace", "path": "gender", "value": "male"}, {"op": "replace", "path": "", "value": {}},
    {"op": "replace", "path": "/gender", "value": "male", "extra": 1}, {"path": "/gender", "value": "male"},
    "replace /gender", {"op": "replace", "path": "/name/0/fa~2mily", "value": "X"},
])
def test_malformed_operations(item: Any) -> None:
    assert rejected(JANE, item).spine_code == "INVALID_UPDATE"


@pytest.mark.parametrize("value", [
    "TOO_DEEP",
    "text with a NUL \x00 in it",
    "an unpaired surrogate \ud800",
    {"url": "https://example.org", "valueString": "\udfff"},
], ids=["too-deep", "nul", "lone-surrogate", "surrogate-inside"])
def test_values_no_patient_can_hold_are_refused_before_anything_is_applied(value: Any) -> None:
    if value == "TOO_DEEP":
        value = {"url": "https://example.org", "valueString": "x"}
        for _ in range(40):
            value = {"url": "https://example.org", "extension": [value]}
    with pytest.raises(FhirError) as caught:
        parse_patches({"patches": [{"op": "add", "path": "/extension/-", "value": value}]})
    assert caught.value.status == 400 and caught.value.spine_code == "INVALID_UPDATE"


def test_body_with_other_members_is_refused() -> None:
    assert rejected(JANE, body={"patches": [{"op": "test", "path": "/gender", "value": "female"}], "x": 1}) \
        .spine_code == "INVALID_UPDATE"


@pytest.mark.parametrize("path", ["/id", "/identifier/0/value", "/identifier", "/meta/versionId", "/meta/security/0",
                                  "/resourceType"])
def test_forbidden_paths(path: str) -> None:
    error = rejected(JANE, {"op": "replace", "path": path, "value": "x"})
    assert (error.status, error.spine_code) == (403, "FORBIDDEN_UPDATE")


def test_unknown_field_is_the_specification_example() -> None:
    error = rejected(JANE, {"op": "add", "path": "/pets", "value": "cat"})
    assert error.to_outcome()["issue"][0] == {
        "severity": "error", "code": "structure", "details": {"coding": [{
            "system": "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode", "version": "1",
            "code": "INVALID_UPDATE", "display": "Update is invalid"}]},
        "diagnostics": "Invalid update with error - Update unsupported for resource - 'pets'"}


def test_all_or_nothing() -> None:
    error = rejected(JANE, {"op": "replace", "path": "/gender", "value": "male"},
                     {"op": "replace", "path": "/birthDate", "value": "2999-01-01"})
    assert error.spine_code == "INVALID_UPDATE" and JANE["gender"] == "female"
    failed = rejected(JANE, {"op": "replace", "path": "/gender", "value": "male"},
                      {"op": "test", "path": "/gender", "value": "female"})
    assert failed.diagnostics == "Invalid update with error - test failed at '/gender'"


# --- list items: ids, tests before removals ----------------------------------------------------------------------


FAMILY = fp.patient("9434765919", version=2, gender="female", birth_date="1980-01-01", names=[
    fp.human_name("Parker", ["May"], id="2"), fp.human_name("Irwin", ["May"], use="old", id="3"),
    fp.human_name("Bruce", ["May"], use="old", id="4"), fp.human_name("Sharpe", ["May"], use="maiden", id="5")])


def _families(resource: dict[str, Any]) -> list[str]:
    return [n["family"] for n in resource["name"]]


@pytest.mark.parametrize("patches", [
    [("1", "3"), ("1", "4")],  # the specification's Example 1: same index twice
    [("2", "4"), ("1", "3")],  # Example 2: descending indices
])
def test_multiple_removals_from_the_specification(patches: list[tuple[str, str]]) -> None:
    ops = [op for index, item_id in patches for op in (
        {"op": "test", "path": f"/name/{index}/id", "value": item_id}, {"op": "remove", "path": f"/name/{index}"})]
    assert _families(patch(FAMILY, *ops)) == ["Parker", "Sharpe"]


def test_example_3_fails_because_indices_moved() -> None:
    error = rejected(FAMILY, {"op": "test", "path": "/name/1/id", "value": "3"}, {"op": "remove", "path": "/name/1"},
                     {"op": "test", "path": "/name/2/id", "value": "4"}, {"op": "remove", "path": "/name/2"})
    assert error.spine_code == "INVALID_UPDATE" and "test failed" in (error.diagnostics or "")


def test_remove_needs_an_immediately_preceding_test() -> None:
    assert "must immediately follow a test" in rejected(FAMILY, {"op": "remove", "path": "/name/1"}).diagnostics
    assert rejected(FAMILY, {"op": "test", "path": "/name/1/id", "value": "3"},
                    {"op": "replace", "path": "/gender", "value": "male"},
                    {"op": "remove", "path": "/name/1"}).spine_code == "INVALID_UPDATE"
    assert rejected(FAMILY, {"op": "test", "path": "/name/2/id", "value": "4"},
                    {"op": "remove", "path": "/name/1"}).spine_code == "INVALID_UPDATE"
    whole = FAMILY["name"][3]
    assert _families(patch(FAMILY, {"op": "test", "path": "/name/3", "value": whole},
                           {"op": "remove", "path": "/name/3"})) == ["Parker", "Irwin", "Bruce"]


def test_removing_part_of_a_list_item_is_refused() -> None:
    assert rejected(FAMILY, {"op": "test", "path": "/name/0/id", "value": "2"},
                    {"op": "remove", "path": "/name/0/given"}).spine_code == "INVALID_UPDATE"


def test_new_items_go_at_the_end_without_an_id() -> None:
    new = fp.human_name("Octavius", ["May"], use="nickname")
    assert rejected(FAMILY, {"op": "add", "path": "/name/1", "value": new}).spine_code == "INVALID_UPDATE"
    assert rejected(FAMILY, {"op": "add", "path": "/name/-", "value": {**new, "id": "99"}}).spine_code == \
        "INVALID_UPDATE"
    added = patch(FAMILY, {"op": "add", "path": "/name/-", "value": new})["name"][-1]
    assert added["period"] == {"start": "2026-03-01"} and added["id"]
    assert rejected(FAMILY, {"op": "replace", "path": "/name", "value": []}).spine_code == "INVALID_UPDATE"


def test_changing_part_of_an_item_needs_its_id() -> None:
    change = {"op": "replace", "path": "/name/0/family", "value": "Watson"}
    assert "needs its id" in rejected(FAMILY, change).diagnostics
    assert _families(patch(FAMILY, {"op": "replace", "path": "/name/0/id", "value": "2"}, change))[0] == "Watson"
    assert _families(patch(FAMILY, {"op": "test", "path": "/name/0/id", "value": "2"}, change))[0] == "Watson"
    assert "cannot be changed" in rejected(FAMILY, {"op": "replace", "path": "/name/0/id", "value": "7"}).diagnostics


def test_whole_replacement_must_keep_the_id() -> None:
    other = fp.human_name("Watson", ["May"], id="9")
    assert rejected(FAMILY, {"op": "replace", "path": "/name/0", "value": other}).spine_code == "INVALID_UPDATE"
    same = fp.human_name("Watson", ["May", "Jane"], id="2", prefix=["Mrs."])
    result = patch(FAMILY, {"op": "replace", "path": "/name/0", "value": same})
    assert result["name"][0]["family"] == "Watson" and result["name"][0]["prefix"] == ["Mrs"]  # PDS drops the "."


def test_adding_to_a_missing_list_creates_it() -> None:
    result = patch(MINIMAL, {"op": "add", "path": "/telecom/-", "value": fp.contact_point("phone", "01632960001",
                                                                                          use="home")})
    assert result["telecom"][0]["value"] == "01632960001" and result["telecom"][0]["id"]


# --- the resulting patient must still be valid --------------------------------------------------------------------


@pytest.mark.parametrize(("patches", "status", "code"), [
    ([{"op": "replace", "path": "/gender", "value": "mal"}], 400, "INVALID_VALUE"),
    ([{"op": "replace", "path": "/gender", "value": "other"}], 400, "INVALID_VALUE"),
    ([{"op": "remove", "path": "/birthDate"}], 400, "INVALID_UPDATE"),
    ([{"op": "replace", "path": "/birthDate", "value": "22/10/2010"}], 400, "INVALID_VALUE"),
    ([{"op": "replace", "path": "/birthDate", "value": "2027-01-01"}], 400, "INVALID_UPDATE"),
    ([{"op": "replace", "path": "/birthDate", "value": "2011-01-01"}], 400, "INVALID_UPDATE"),  # after death
    ([{"op": "replace", "path": "/deceasedDateTime", "value": "2011-01-01T00:00:00+00:00"}], 403, "FORBIDDEN_UPDATE"),
    ([{"op": "remove", "path": "/deceasedDateTime"}], 400, "INVALID_UPDATE"),
    ([{"op": "replace", "path": "/multipleBirthInteger", "value": 12}], 400, "INVALID_VALUE"),
    ([{"op": "test", "path": "/generalPractitioner/0/id", "value": "254406A3"},
      {"op": "remove", "path": "/generalPractitioner/0"}], 403, "FORBIDDEN_UPDATE"),
    ([{"op": "add", "path": "/generalPractitioner/-", "value": fp.general_practitioner("B86001")}], 400,
     "INVALID_UPDATE"),
    ([{"op": "add", "path": "/name/-", "value": fp.human_name("Jones", ["Jane"])}], 400, "INVALID_UPDATE"),
    ([{"op": "add", "path": "/name/-", "value": {"use": "old", "family": "Jones", "pets": 1}}], 400,
     "ADDITIONAL_PROPERTIES"),
    ([{"op": "add", "path": "/name/-", "value": {"use": "old", "given": ["Jane"]}}], 400, "VALIDATION_ERROR"),
    ([{"op": "add", "path": "/name/-", "value": "Jones"}], 400, "VALIDATION_ERROR"),
    ([{"op": "add", "path": "/name/-", "value": {"use": "old", "family": "Jo;nes"}}], 400, "INVALID_VALUE"),
    ([{"op": "add", "path": "/name/-", "value": {"use": "old", "family": "Jones", "period": {
        "start": "2020-01-02", "end": "2020-01-01"}}}], 400, "INVALID_UPDATE"),
    ([{"op": "add", "path": "/address/-", "value": fp.address(["1 Mill Lane", "Leeds"], "LS1 1AA", use="billing")}],
     400, "INVALID_UPDATE"),
    ([{"op": "add", "path": "/address/-", "value": fp.address(["1 Mill Lane", "Leeds"], "LS1 1AA", use="work")}],
     400, "INVALID_VALUE"),
    ([{"op": "add", "path": "/telecom/-", "value": fp.contact_point("email", "not-an-email", use="home")}], 400,
     "INVALID_VALUE"),
    ([{"op": "replace", "path": "/telecom/0", "value": {"id": "789", "system": "email", "value": "a@example.com",
                                                          "use": "home"}}], 400, "INVALID_UPDATE"),
    ([{"op": "replace", "path": "/name/0/id", "value": "123"},
      {"op": "replace", "path": "/name/0/use", "value": "temp"}], 400, "INVALID_UPDATE"),
    ([{"op": "replace", "path": "/name/0/id", "value": "123"},
      {"op": "replace", "path": "/name/0/given", "value": 7}], 400, "VALIDATION_ERROR"),
    ([{"op": "add", "path": "/extension/-", "value": {"valueString": "no url"}}], 400, "VALIDATION_ERROR"),
])
def test_business_rules(patches: list[dict[str, Any]], status: int, code: str) -> None:
    error = rejected(JANE, *patches)
    assert (error.status, error.spine_code) == (status, code), error.diagnostics


def test_valid_contact_and_temp_address_are_accepted() -> None:
    temp = fp.address(["Flat 2", "3 Mill Lane", "Leeds"], "LS2 7UE", use="temp", start="2026-01-01",
                      end="2026-03-31", text="Student Accommodation")
    contact = {"relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "C",
                                             "display": "Emergency Contact"}]}],
               "telecom": [{"system": "phone", "value": "01632960002"}]}
    result = patch(MINIMAL, {"op": "add", "path": "/address/-", "value": temp},
                   {"op": "add", "path": "/contact/-", "value": contact},
                   {"op": "add", "path": "/gender", "value": "female"})
    assert result["address"][0]["text"] == "Student Accommodation" and result["gender"] == "female"
    assert result["contact"][0]["period"] == {"start": "2026-03-01"} and result["contact"][0]["id"]
    wrong = {**contact, "relationship": [{"coding": [{"code": "N"}]}]}
    assert rejected(MINIMAL, {"op": "add", "path": "/contact/-", "value": wrong}).spine_code == "INVALID_VALUE"


# --- versioning and content type ----------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "2", '"2"', "W/2", 'W/"two"', 'w/"2"', 'W/"2" ,W/"3"'])
def test_if_match_missing_or_malformed_is_412(header: str | None) -> None:
    with pytest.raises(FhirError) as caught:
        parse_if_match(header)
    assert (caught.value.status, caught.value.spine_code) == (412, "PRECONDITION_FAILED")


def test_stale_version_is_409() -> None:
    assert check_version('W/"2"', 2) == 2
    with pytest.raises(FhirError) as caught:
        update_patient(JANE, {"patches": [{"op": "replace", "path": "/gender", "value": "male"}]},
                       current_version=2, if_match='W/"1"', today=TODAY)
    assert (caught.value.status, caught.value.spine_code) == (409, "RESOURCE_VERSION_MISMATCH")


def test_version_is_checked_before_the_body() -> None:
    with pytest.raises(FhirError) as caught:
        update_patient(JANE, [], current_version=2, if_match=None, today=TODAY)
    assert caught.value.status == 412


@pytest.mark.parametrize("value", ["application/json-patch+json", "application/json-patch+json; charset=utf-8",
                                   "Application/JSON-Patch+JSON", "application/json"])
def test_content_type_accepted(value: str) -> None:
    check_content_type(value)


@pytest.mark.parametrize("value", [None, "", "application/fhir+json", "text/plain", "application/merge-patch+json"])
def test_content_type_refused(value: str | None) -> None:
    with pytest.raises(FhirError) as caught:
        check_content_type(value)
    assert (caught.value.status, caught.value.spine_code) == (400, "INVALID_VALUE")


def test_pointer_escapes_and_apply_without_versioning() -> None:
    ops = parse_patches({"patches": [{"op": "test", "path": "/name/0/id", "value": "123"}]})
    assert ops[0].path == ("name", "0", "id")
    result = apply_patches(JANE, ops, version=9, today=TODAY)
    assert result["meta"]["versionId"] == "9" and result is not JANE
