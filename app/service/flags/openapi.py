"""OpenAPI paths for Reasonable Adjustment Flags (merged into the service document by ``openapi.py``).

Paths follow the Patient Flags model (FHIR R4 ``Flag``) under ``/patient-flags/FHIR/R4``; the removal operation
and the ``{flagID}`` path parameter keep the retired RA Flag API's names (``POST /$removerarecord``).
"""

from __future__ import annotations

from typing import Any

from app.protocol import FLAGS_BASE

_FLAG_ID = {"name": "flagID", "in": "path", "required": True, "description": "The flag's id (from a search)",
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9.-]{1,64}$"}}
_VID = {"name": "vid", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9]{1,9}$"}}
_IF_MATCH = {"name": "If-Match", "in": "header", "required": True,
             "description": 'The ETag last read (W/"n"): missing 412 PRECONDITION_FAILED, stale 409 '
                          "RESOURCE_VERSION_MISMATCH",
             "schema": {"type": "string", "pattern": '^W/"[0-9]+"$'}}
_FLAG = {"type": "object", "required": ["resourceType"],
         "properties": {"resourceType": {"type": "string", "enum": ["Flag"]}, "id": {"type": "string"},
                        "status": {"type": "string", "enum": ["active", "inactive", "entered-in-error"]},
                        "subject": {"type": "object"}, "contained": {"type": "array", "items": {"type": "object"}},
                        "extension": {"type": "array", "items": {"type": "object"}}}}
_BUNDLE = {"type": "object", "required": ["resourceType", "type", "total"],
           "properties": {"resourceType": {"type": "string", "enum": ["Bundle"]},
                          "type": {"type": "string", "enum": ["searchset", "history"]},
                          "total": {"type": "integer", "minimum": 0},
                          "entry": {"type": "array", "items": {"type": "object"}}}}
_PARAMETERS = {"type": "object", "required": ["resourceType", "parameter"],
               "properties": {"resourceType": {"type": "string", "enum": ["Parameters"]},
                              "parameter": {"type": "array", "items": {"type": "object"}}}}


def _query(name: str, description: str, required: bool = False, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": {"type": "string", **schema}}


def paths() -> dict[str, Any]:
    from app.service.core.openapi import OUTCOME, SESSION_HEADERS, _errors, _json  # openapi.py imports this module

    search = [
        _query("patient", "https://fhir.nhs.uk/Id/nhs-number|{NHS number} (a bare NHS number is accepted)", True,
               example="https://fhir.nhs.uk/Id/nhs-number|9000000009"),
        _query("category", "https://fhir.nhs.uk/England/CodeSystem/PatientFlagCategory|NRAF (comma-separated "
               "alternatives; this service holds NRAF flags only)", example="NRAF"),
        _query("code", "The PatientFlag code (as category)", example="NRAF"),
        _query("status", "active, inactive, entered-in-error (comma-separated); default: every status",
               example="active"),
        _query("_include", "Flag:detail (the details are contained in each flag, so always returned)",
               enum=["Flag:detail"]),
    ]
    flag = {"description": "Flag (content withheld, meta.security REDACTED, for roles without clinical access)",
            **_json(_FLAG)}
    return {
        f"{FLAGS_BASE}/Flag": {
            "get": {"summary": "Search a patient's Reasonable Adjustment Flags", "operationId": "searchFlag",
                    "parameters": SESSION_HEADERS + search,
                    "responses": {"200": {"description": "Bundle", **_json(_BUNDLE)}, **_errors(400, 401, 403)}},
            "post": {"summary": "Record a Reasonable Adjustment Flag (consent, impairments, adjustments)",
                     "operationId": "createFlag", "parameters": SESSION_HEADERS,
                     "requestBody": {"required": True, **_json(_FLAG)},
                     "responses": {"201": {"description": "Flag", **_json(_FLAG)},
                                   **_errors(400, 401, 403, 404, 409, 415)}}},
        f"{FLAGS_BASE}/Flag/{{flagID}}": {
            "get": {"summary": "Read a flag", "operationId": "readFlag", "parameters": [*SESSION_HEADERS, _FLAG_ID],
                    "responses": {"200": flag, **_errors(400, 401, 403, 404)}},
            "put": {"summary": "Update a flag", "operationId": "updateFlag",
                    "parameters": [*SESSION_HEADERS, _FLAG_ID, _IF_MATCH],
                    "requestBody": {"required": True, **_json(_FLAG)},
                    "responses": {"200": {"description": "Flag", **_json(_FLAG)},
                                  **_errors(400, 401, 403, 404, 409, 412, 415)}}},
        f"{FLAGS_BASE}/Flag/{{flagID}}/_history": {"get": {
            "summary": "Every version of a flag, removed ones included", "operationId": "flagHistory",
            "parameters": [*SESSION_HEADERS, _FLAG_ID],
            "responses": {"200": {"description": "history Bundle", **_json(_BUNDLE)},
                          **_errors(400, 401, 403, 404)}}},
        f"{FLAGS_BASE}/Flag/{{flagID}}/_history/{{vid}}": {"get": {
            "summary": "One version of a flag", "operationId": "readFlagVersion",
            "parameters": [*SESSION_HEADERS, _FLAG_ID, _VID],
            "responses": {"200": flag, **_errors(400, 401, 403, 404)}}},
        f"{FLAGS_BASE}/$removerarecord": {"post": {
            "summary": "Remove a patient's Reasonable Adjustment Flag with a reason (kept in its history)",
            "operationId": "removeRaRecord", "parameters": [*SESSION_HEADERS, _IF_MATCH],
            "requestBody": {"required": True, **_json(_PARAMETERS)},
            "responses": {"200": {"description": "OperationOutcome (information: OK)", **_json(OUTCOME)},
                          **_errors(400, 401, 403, 404, 409, 412, 415)}}},
    }
