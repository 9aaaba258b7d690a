"""OperationOutcome errors: byte-exact against the examples in NHS's PDS specification, and schema-valid."""

from __future__ import annotations

import json

import pytest
import yaml

from app.error_text import user_text
from app.errors import AppError
from app.service.core.outcome import (
    CODES,
    SPINE_ERROR_SYSTEM,
    FhirError,
    additional_properties,
    invalid_search_data,
    invalid_update,
    invalid_value,
    issue,
    missing_value,
    operation_outcome,
    quote_value,
    service_unavailable,
    too_many_matches,
)
from tests.unit.service.pds.test_fhir_spec import SPEC_DIR, assert_valid


def _spec_error_example(path_file: str, status: str = "4XX") -> dict:
    spec = yaml.safe_load((SPEC_DIR / "components" / "paths" / path_file).read_text())
    return spec["responses"][status]["content"]["application/fhir+json"]["example"]


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def test_invalid_value_matches_the_search_example_byte_for_byte() -> None:
    example = _spec_error_example("patient-search.yaml")
    mine = invalid_value("gender", "mal").to_outcome()
    assert _dumps(mine) == _dumps(example)


def test_missing_birthdate_matches_the_retrieval_example_byte_for_byte() -> None:
    example = _spec_error_example("patient-get.yaml")
    mine = missing_value("birth_date/birth_date_range_start/birth_date_range_end", issue_code="structure")
    assert _dumps(mine.to_outcome()) == _dumps(example)


def test_invalid_update_matches_the_patch_example_byte_for_byte() -> None:
    example = _spec_error_example("patient-patch.yaml")
    assert _dumps(invalid_update("Update unsupported for resource - 'pets'").to_outcome()) == _dumps(example)


def test_service_unavailable_matches_the_503_example() -> None:
    example = _spec_error_example("patient-patch.yaml", "503")
    error = service_unavailable(retry_after=5)
    assert (error.status, error.retry_after) == (503, 5)
    assert _dumps(error.to_outcome()) == _dumps(example)


def test_invalid_resource_id_matches_the_component_example() -> None:
    spec = yaml.safe_load((SPEC_DIR / "personal-demographics.yaml").read_text())
    example = spec["components"]["examples"]["OperationOutcome"]["value"]
    assert operation_outcome(issue("INVALID_RESOURCE_ID")) == example


def test_too_many_matches_is_the_outcome_pds_returns_with_200() -> None:
    assert too_many_matches() == {"resourceType": "OperationOutcome", "issue": [{
        "severity": "information", "code": "multiple-matches",
        "details": {"coding": [{"system": "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode",
                                "version": "1", "code": "TOO_MANY_MATCHES", "display": "Too Many Matches"}]}}]}
    assert CODES["TOO_MANY_MATCHES"].status == 200


@pytest.mark.parametrize(("code", "status", "issue_code"), [
    ("INVALID_RESOURCE_ID", 400, "value"), ("UNSUPPORTED_SERVICE", 400, "not-supported"),
    ("MISSING_VALUE", 400, "required"), ("INVALID_VALUE", 400, "value"), ("INVALID_SEARCH_DATA", 400, "value"),
    ("ADDITIONAL_PROPERTIES", 400, "structure"), ("INVALID_UPDATE", 400, "structure"),
    ("VALIDATION_ERROR", 400, "invalid"), ("ACCESS_DENIED", 403, "forbidden"), ("FORBIDDEN_UPDATE", 403, "forbidden"),
    ("RESOURCE_NOT_FOUND", 404, "not-found"), ("INVALIDATED_RESOURCE", 404, "not-found"),
    ("RESOURCE_VERSION_MISMATCH", 409, "conflict"), ("PRECONDITION_FAILED", 412, "structure"),
    ("UNSUPPORTED_MEDIA_TYPE", 415, "not-supported"), ("TOO_MANY_REQUESTS", 429, "throttled"),
    ("SERVICE_UNAVAILABLE", 503, "timeout"),
])
def test_every_code_builds_a_schema_valid_outcome(code: str, status: int, issue_code: str) -> None:
    error = FhirError(code, "details here")
    assert (error.status, error.issue_code, error.spine_code) == (status, issue_code, code)
    outcome = error.to_outcome()
    coding = outcome["issue"][0]["details"]["coding"][0]
    assert coding["system"] == SPINE_ERROR_SYSTEM and coding["version"] == "1" and coding["code"] == code
    assert outcome["issue"][0]["diagnostics"] == "details here"
    assert list(outcome["issue"][0]) == ["severity", "code", "details", "diagnostics"]
    assert_valid(outcome, "OperationOutcome.yaml")


def test_access_denied_401_uses_the_unauthorised_display() -> None:
    error = FhirError("ACCESS_DENIED", "Missing Authorization header", status=401)
    assert error.to_outcome() == {"resourceType": "OperationOutcome", "issue": [{
        "severity": "error", "code": "forbidden", "details": {"coding": [{
            "system": SPINE_ERROR_SYSTEM, "version": "1", "code": "ACCESS_DENIED",
            "display": "Access Denied - Unauthorised"}]}, "diagnostics": "Missing Authorization header"}]}


def test_additional_properties_wording() -> None:
    one = additional_properties(["invalidParam"]).to_outcome()["issue"][0]["diagnostics"]
    many = additional_properties(["model", "manufacturer", "year"]).to_outcome()["issue"][0]["diagnostics"]
    assert one == "Invalid request with error - Additional properties are not allowed ('invalidParam' was unexpected)"
    assert many == ("Invalid request with error - Additional properties are not allowed "
                    "('model', 'manufacturer', 'year' were unexpected)")


def test_errors_are_app_errors_and_have_user_text() -> None:
    error = invalid_search_data("family is longer than 35 characters")
    assert isinstance(error, AppError)
    assert error.status == 400 and "35 characters" in user_text(error)
    assert "INVALID_SEARCH_DATA" in repr(error)


def test_unknown_code_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        FhirError("NOT_A_CODE")
    with pytest.raises(ValueError):
        operation_outcome()


def test_echoed_values_are_made_safe() -> None:
    assert quote_value("a\x00b\nc") == "a\ufffdb\ufffdc"
    assert len(quote_value("x" * 1000)) == 60
    diagnostics = invalid_value("gender", "\x1b[31mred" + "y" * 500).diagnostics
    assert diagnostics is not None and "\x1b" not in diagnostics and len(diagnostics) < 120
