"""OpenAPI paths for Summary Care Record (merged into the service's document by ``openapi.py``).

Paths, parameters and bodies follow NHS's SCR FHIR R4 specification; ``permissionToView`` (in
``$setPermission``) and the privacy officers' ``/alerts`` queue are Spine Desk's own."""

from __future__ import annotations

from typing import Any

from app.protocol import SCR_BASE

FHIR = "application/fhir+json"
_OUTCOME = {"type": "object", "required": ["resourceType", "issue"],
            "properties": {"resourceType": {"type": "string", "enum": ["OperationOutcome"]},
                           "issue": {"type": "array", "minItems": 1, "items": {"type": "object"}}}}
_BUNDLE = {"type": "object", "required": ["resourceType", "type"],
           "properties": {"resourceType": {"type": "string", "enum": ["Bundle"]}, "type": {"type": "string"},
                          "total": {"type": "integer"}, "entry": {"type": "array", "items": {"type": "object"}}}}
_AUDIT_EVENT = {"type": "object", "required": ["resourceType", "type", "subtype", "agent"],
                "properties": {"resourceType": {"type": "string", "enum": ["AuditEvent"]},
                               "type": {"type": "object"}, "subtype": {"type": "array", "items": {"type": "object"}},
                               "outcomeDesc": {"type": "string"},
                               "agent": {"type": "array", "items": {"type": "object"}}}}
_PARAMETERS = {"type": "object", "required": ["resourceType", "parameter"],
               "properties": {"resourceType": {"type": "string", "enum": ["Parameters"]},
                              "parameter": {"type": "array", "items": {"type": "object"}}}}
_UPLOAD = {"type": "object", "required": ["resourceType", "identifier", "type", "timestamp", "entry"],
           "properties": {"resourceType": {"type": "string", "enum": ["Bundle"]}, "type": {"type": "string"},
                          "identifier": {"type": "object"}, "timestamp": {"type": "string"},
                          "entry": {"type": "array", "items": {"type": "object"}}}}


def _header(name: str, required: bool, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": required, "schema": schema, "description": description}


HEADERS = [
    _header("Authorization", True, {"type": "string", "pattern": "^Bearer .+$"},
            "Bearer token from POST /auth/session"),
    _header("NHSD-Session-URID", True, {"type": "string"}, "The selected role profile id; must be the caller's"),
    _header("X-Request-ID", True, {"type": "string", "format": "uuid"},
            "A UUID; repeating it repeats the same request (changes are replayed, not redone)"),
    _header("X-Correlation-ID", False, {"type": "string"}, "Echoed back"),
]


def _query(name: str, required: bool, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {FHIR: {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "OperationOutcome (details.text says what to do)", **_content(_OUTCOME)}
            for c in codes}


def _post(summary: str, op_id: str, body: dict[str, Any], ok: dict[str, Any], *codes: int,
          required: bool = True, extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"summary": summary, "operationId": op_id, "parameters": [*HEADERS, *(extra or [])],
            "requestBody": {"required": required, **_content(body)}, "responses": {**ok, **_errors(*codes)}}


def paths() -> dict[str, Any]:
    nhs_identifier = {"type": "string", "example": "https://fhir.nhs.uk/Id/nhs-number|9000000009"}
    created = {"201": {"description": "Done"}}
    return {
        f"{SCR_BASE}/DocumentReference": {"get": {
            "summary": "Get the patient's latest SCR id, with their consent as securityLabel",
            "operationId": "scrDocumentReference",
            "parameters": [*HEADERS,
                _query("patient", True, nhs_identifier, "https://fhir.nhs.uk/Id/nhs-number|{NHS number}"),
                _query("type", False, {"type": "string", "example": "http://snomed.info/sct|196981000000101"},
                       "Only http://snomed.info/sct|196981000000101"),
                _query("_sort", False, {"type": "string", "example": "date"}, "Only 'date'"),
                _query("_count", False, {"type": "integer", "example": 1}, "Only 1")],
            "responses": {"200": {"description": "Bundle of DocumentReference", **_content(_BUNDLE)},
                          **_errors(400, 401, 403)}}},
        f"{SCR_BASE}/Bundle": {
            "get": {"summary": "Get the patient's SCR (empty Bundle for an out-of-date id)", "operationId": "scrGet",
                    "parameters": [*HEADERS,
                        _query("composition.identifier", True, {"type": "string", "format": "uuid"},
                               "The latest SCR id from GET /DocumentReference"),
                        _query("composition.subject:Patient.identifier", True, nhs_identifier,
                               "https://fhir.nhs.uk/Id/nhs-number|{NHS number}")],
                    "responses": {"200": {"description": "The SCR as a searchset Bundle", **_content(_BUNDLE)},
                                  **_errors(400, 401, 403)}},
            "post": _post("Upload a new SCR version (the patient's registered practice)", "scrUpload", _UPLOAD,
                          created, 400, 401, 403, 409, 415)},
        f"{SCR_BASE}/$setPermission": {"post": _post(
            "Record the patient's consent preference (setPermissions: Yes/No/Ask, B0020, the registered practice or "
            "a relationship self-claimed in the episode) or their permission to view in this episode of care "
            "(permissionToView: Yes/No)", "scrSetPermission", _PARAMETERS, created,
            400, 401, 403, 415)},
        f"{SCR_BASE}/AuditEvent": {"post": _post(
            "Raise a privacy alert: self-claimed relationship (type 1) or access without permission (type 2)",
            "scrAlert", _AUDIT_EVENT, {"201": {"description": "The alert", **_content(_AUDIT_EVENT)}},
            400, 401, 403, 415)},
        f"{SCR_BASE}/alerts": {"get": {
            "summary": "Privacy officers: the alert queue of your organisation (B0015 all, B0016 self-claims)",
            "operationId": "scrAlertQueue",
            "parameters": [*HEADERS,
                _query("status", False, {"type": "string", "enum": ["open", "acknowledged", "all"]}, "Default open"),
                _query("_count", False, {"type": "integer", "minimum": 1, "maximum": 500}, "Default 100")],
            "responses": {"200": {"description": "Bundle of AuditEvent", **_content(_BUNDLE)},
                          **_errors(400, 401, 403)}}},
        f"{SCR_BASE}/alerts/{{id}}/$acknowledge": {"post": _post(
            "Privacy officers: acknowledge an alert (who and when are recorded)", "scrAlertAcknowledge",
            {"type": "object", "properties": {"resourceType": {"type": "string", "enum": ["Parameters"]},
                                              "parameter": {"type": "array", "items": {"type": "object"}}}},
            {"200": {"description": "The acknowledged alert", **_content(_AUDIT_EVENT)}},
            400, 401, 403, 404, 409, 415, required=False,
            extra=[{"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}])},
    }
