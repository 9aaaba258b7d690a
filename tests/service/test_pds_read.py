"""Retrieval by NHS number: invalid, unknown, superseded and invalidated records."""

from __future__ import annotations

import dataclasses

import pytest

from app.service.core.outcome import FhirError
from app.service.core.patient_read import resolve_patient
from app.service.pds.seed import reference_rows

ROWS = {r.nhs_number: r for r in reference_rows()}


def _code(nhs: str, rows: dict) -> tuple[int, str]:
    with pytest.raises(FhirError) as caught:
        resolve_patient(nhs, rows.get)
    return caught.value.status, caught.value.spine_code


def test_found() -> None:
    assert resolve_patient("9000000009", ROWS.get) is ROWS["9000000009"]


def test_invalid_number_is_400_without_diagnostics() -> None:
    assert _code("9000000000", ROWS) == (400, "INVALID_RESOURCE_ID")
    with pytest.raises(FhirError) as caught:
        resolve_patient("not-a-number", ROWS.get)
    assert caught.value.to_outcome() == {"resourceType": "OperationOutcome", "issue": [{
        "severity": "error", "code": "value", "details": {"coding": [{
            "system": "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode", "version": "1",
            "code": "INVALID_RESOURCE_ID", "display": "Resource Id is invalid"}]}}]}


def test_unknown_number_is_404() -> None:
    assert _code("9111231130", ROWS) == (404, "RESOURCE_NOT_FOUND")


def test_superseded_records_answer_with_the_new_record() -> None:
    rows = dict(ROWS)
    rows["9111231130"] = dataclasses.replace(ROWS["9000000017"], nhs_number="9111231130", superseded_by="9000000017")
    rows["9434765919"] = dataclasses.replace(ROWS["9000000017"], nhs_number="9434765919", superseded_by="9111231130")
    assert resolve_patient("9434765919", rows.get).nhs_number == "9000000017"


def test_invalidated_is_404_invalidated_resource() -> None:
    rows = {**ROWS, "9000000009": dataclasses.replace(ROWS["9000000009"], invalidated=True)}
    assert _code("9000000009", rows) == (404, "INVALIDATED_RESOURCE")


def test_merge_loops_are_not_followed_forever() -> None:
    rows = {"9434765919": dataclasses.replace(ROWS["9000000009"], nhs_number="9434765919", superseded_by="9111231130"),
            "9111231130": dataclasses.replace(ROWS["9000000009"], nhs_number="9111231130", superseded_by="9434765919")}
    assert _code("9434765919", rows) == (404, "RESOURCE_NOT_FOUND")
