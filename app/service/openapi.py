"""The service's own OpenAPI 3.0 document, served at ``/openapi.json``.

PDS paths, parameters, headers and error codes follow NHS's PDS FHIR R4 specification; the login endpoints
and the audit query are Spine Desk's own. Schemathesis runs against this document in the test suite.
"""

from __future__ import annotations

from typing import Any

from app import __version__
from app.protocol import AUTH_CHALLENGE_PATH, AUTH_ROLE_PATH, AUTH_SESSION_PATH, PDS_BASE
from app.service import openapi_cpis, openapi_flags, openapi_scr

NHS_NUMBER = {"type": "string", "pattern": "^[0-9]{10}$", "example": "9000000009"}
OUTCOME = {"type": "object", "required": ["resourceType", "issue"],
           "properties": {"resourceType": {"type": "string", "enum": ["OperationOutcome"]},
                          "issue": {"type": "array", "minItems": 1, "items": {"type": "object"}}}}
PATIENT = {"type": "object", "required": ["resourceType", "id"],
           "properties": {"resourceType": {"type": "string", "enum": ["Patient"]}, "id": NHS_NUMBER}}
BUNDLE = {"type": "object", "required": ["resourceType"],
          "properties": {"resourceType": {"type": "string", "enum": ["Bundle", "OperationOutcome"]}}}


def _header(name: str, required: bool, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": required, "schema": schema, "description": description}


SESSION_HEADERS = [
    _header("Authorization", True, {"type": "string", "pattern": "^Bearer .+$"},
            "Bearer token from POST /auth/session"),
    _header("NHSD-Session-URID", True, {"type": "string"},
            "The role profile id the session is bound to (chosen at login)"),
    _header("X-Request-ID", True, {"type": "string", "format": "uuid"},
            "A UUID; repeating it repeats the same request (state-changing requests are replayed, not redone)"),
    _header("X-Correlation-ID", False, {"type": "string"}, "Echoed back"),
]


def _json(schema: dict[str, Any], media: str = "application/fhir+json") -> dict[str, Any]:
    return {"content": {media: {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "OperationOutcome", **_json(OUTCOME)} for c in codes}


def document() -> dict[str, Any]:
    search_params = [{"name": n, "in": "query", "required": False, "schema": s} for n, s in [
        ("family", {"type": "string"}), ("given", {"type": "array", "items": {"type": "string"}}),
        ("gender", {"type": "string", "enum": ["male", "female", "other", "unknown"]}),
        ("birthdate", {"type": "array",
                       "items": {"type": "string", "pattern": "^(eq|ge|le)?[0-9]{4}-[0-9]{2}-[0-9]{2}$"}}),
        ("death-date", {"type": "array", "items": {"type": "string"}}), ("address-postalcode", {"type": "string"}),
        ("general-practitioner", {"type": "string"}), ("email", {"type": "string"}), ("phone", {"type": "string"}),
        ("_fuzzy-match", {"type": "boolean"}), ("_exact-match", {"type": "boolean"}), ("_history", {"type": "boolean"}),
        ("_max-results", {"type": "integer", "minimum": 1, "maximum": 50})]]
    for p in search_params:
        if p["schema"].get("type") == "array":
            p["style"], p["explode"] = "form", True
    nhs_path = [{"name": "id", "in": "path", "required": True, "schema": NHS_NUMBER}]
    b64 = {"type": "string", "format": "byte"}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Spine Desk service layer", "version": __version__,
                 "description": "Training-mode Spine services. PDS follows NHS's PDS FHIR R4 API."},
        "paths": {
            AUTH_CHALLENGE_PATH: {"post": {
                "summary": "Ask for a login challenge for a card certificate", "operationId": "authChallenge",
                "requestBody": {"required": True, **_json({"type": "object", "required": ["certificate"],
                                                          "properties": {"certificate": b64}}, "application/json")},
                "responses": {"200": {"description": "nonce, and the audience (the service's public base URL) the "
                                      "card's signature must name; the same answer for every readable certificate",
                                      **_json({"type": "object", "required": ["nonce", "expires_at", "audience"]},
                                              "application/json")},
                    **_errors(400, 401, 429, 503)}}},
            AUTH_SESSION_PATH: {
                "post": {"summary": "Exchange the card's signature over the challenge for a session",
                         "operationId": "authSession",
                         "requestBody": {"required": True, **_json({"type": "object",
                                                                    "required": ["nonce", "signature", "certificate"],
                                                                    "properties": {"nonce": {"type": "string"},
                                                                                   "signature": b64,
                                                                                   "certificate": b64,
                                                                                   "urid": {"type": "string"}}},
                                                                   "application/json")},
                         "responses": {"201": {"description": "session", **_json(
                             {"type": "object", "required": ["token", "role_profiles"]}, "application/json")},
                             **_errors(400, 401, 403, 429, 503)}},
                "delete": {"summary": "Log out (revoke the session)", "operationId": "authLogout",
                           "parameters": [SESSION_HEADERS[0]],
                           "responses": {"204": {"description": "revoked"}, **_errors(401)}}},
            AUTH_ROLE_PATH: {"post": {
                "summary": "Bind the session to one of its user's role profiles, once (if the login named none)",
                "operationId": "authSelectRole", "parameters": [SESSION_HEADERS[0]],
                "requestBody": {"required": True, **_json({"type": "object", "required": ["urid"],
                                                          "properties": {"urid": {"type": "string"}}},
                                                         "application/json")},
                "responses": {"200": {"description": "the role the session is bound to", **_json(
                    {"type": "object", "required": ["role"]}, "application/json")}, **_errors(400, 401, 403, 503)}}},
            f"{PDS_BASE}/Patient": {"get": {
                "summary": "Search for patients", "operationId": "searchPatient",
                "parameters": SESSION_HEADERS + search_params,
                "responses": {"200": {"description": "Bundle, or OperationOutcome for too many matches",
                                      **_json(BUNDLE)}, **_errors(400, 401, 403)}}},
            f"{PDS_BASE}/Patient/{{id}}": {
                "get": {"summary": "Retrieve a patient", "operationId": "getPatient",
                        "parameters": SESSION_HEADERS + nhs_path,
                        "responses": {"200": {"description": "Patient", **_json(PATIENT)},
                                      **_errors(400, 401, 403, 404)}},
                "patch": {"summary": "Update a patient", "operationId": "updatePatient",
                          "parameters": SESSION_HEADERS + nhs_path + [
                              _header("If-Match", True, {"type": "string", "pattern": '^W/"[0-9]+"$'}, "ETag read")],
                          "requestBody": {"required": True, **_json(
                              {"type": "object", "required": ["patches"],
                               "properties": {"patches": {"type": "array", "items": {"type": "object"}}}},
                              "application/json-patch+json")},
                          "responses": {"200": {"description": "Patient", **_json(PATIENT)},
                                        **_errors(400, 401, 403, 404, 409, 412)}}},
            f"{PDS_BASE}/Patient/{{id}}/RelatedPerson": {"get": {
                "summary": "A patient's related people", "operationId": "getRelatedPerson",
                "parameters": SESSION_HEADERS + nhs_path,
                "responses": {"200": {"description": "Bundle", **_json(BUNDLE)}, **_errors(400, 401, 403, 404)}}},
            "/audit/records": {"get": {
                "summary": "Query the audit trail (privacy officers)", "operationId": "queryAudit",
                "description": "Activity B0015 or B0016. Only records of accesses made under roles of the "
                               "officer's own organisation (the role profile's ODS code) are returned, whatever "
                               "the parameters; a role with no organisation: 403.",
                "parameters": SESSION_HEADERS + [
                    {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                    for n in ("patient", "user", "action", "since", "until", "_count")],
                "responses": {"200": {"description": "records", **_json({"type": "object"}, "application/json")},
                              **_errors(400, 401, 403)}}},
            "/_status": {"get": {"summary": "Health", "operationId": "status", "responses": {
                "200": {"description": "up", **_json({"type": "object"}, "application/json")}, **_errors(503)}}},
            **openapi_scr.paths(), **openapi_cpis.paths(), **openapi_flags.paths(),
        },
    }
