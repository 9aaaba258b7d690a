"""OpenAPI paths for CP-IS (merged into the service's document by ``openapi.py``).

The FHIR paths follow NHS's draft CP-IS FHIR R4 API (``/cpis/FHIR/R4``); the local-authority inbox is Spine
Desk's own: the default webhook that Access to Service Notifications are delivered to, and its listing.
"""

from __future__ import annotations

from typing import Any

from app.protocol import CPIS_BASE
from app.service.cpis.rules import IDEMPOTENCY_HEADER, INBOX_PATH, SIGNATURE_HEADER, UNSCHEDULED_HEADER

_IDENTIFIER = {"name": "patient:identifier", "in": "query", "required": True,
               "description": "https://fhir.nhs.uk/Id/nhs-number|{NHS number} (a bare NHS number is accepted); an "
                              "NHS number failing the modulus 11 check is 400 INVALID_SEARCH_DATA",
               "schema": {"type": "string", "example": "https://fhir.nhs.uk/Id/nhs-number|9000000009"}}
_UNSCHEDULED = {"name": UNSCHEDULED_HEADER, "in": "header", "required": False,
                "description": "true (default) = unscheduled care: a B0107 role's access is recorded in the access "
                               "history and the responsible local authority is sent an Access to Service "
                               "Notification; false = scheduled care: neither. A B0170-only role is never "
                               "notified (the Bundle then carries an information OperationOutcome). Any other "
                               "value: 400 PRECONDITION_FAILED",
                "schema": {"type": "string", "enum": ["true", "false"]}}
_BUNDLE = {"type": "object", "required": ["resourceType", "type", "total"],
           "properties": {"resourceType": {"type": "string", "enum": ["Bundle"]},
                          "type": {"type": "string", "enum": ["searchset"]},
                          "total": {"type": "integer", "minimum": 0},
                          "entry": {"type": "array", "items": {"type": "object"}}}}


def paths() -> dict[str, Any]:
    from app.service.core.openapi import SESSION_HEADERS, _errors, _json  # openapi.py imports this module

    code = {"name": "code", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 20},
            "description": "The local authority's ODS-like code (resources/cpis/local_authorities.json)"}
    count = {"name": "_count", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}
    return {
        f"{CPIS_BASE}/CareTeam": {"get": {
            "summary": "A patient's child protection plans (CP-IS)", "operationId": "cpisCareTeam",
            "description": "Plans (CareTeam: category = SNOMED CT from England-ChildProtectionPlan: child protection "
                           "plan, looked after child, unborn child protection plan on the pregnant woman's record), "
                           "open or ended within 12 months, with the responsible local authority's team (name), "
                           "office-hours (telecom rank 1) and out-of-hours (rank 2) numbers. No plan: total 0. "
                           "Activities B0107 (unscheduled, notifies) or B0170 (scheduled, never notifies).",
            "parameters": [*SESSION_HEADERS, _IDENTIFIER, _UNSCHEDULED],
            "responses": {"200": {"description": "searchset Bundle of CareTeam", **_json(_BUNDLE)},
                          **_errors(400, 401, 403)}}},
        f"{CPIS_BASE}/AuditEvent": {"get": {
            "summary": "The last 25 unscheduled accesses to a patient's CP-IS information",
            "operationId": "cpisAuditEvent",
            "description": "AuditEvent per access (recorded; the accessing PractitionerRole contained: user, role, "
                           "organisation), most recent first. Activities B0107 or B0170.",
            "parameters": [*SESSION_HEADERS, _IDENTIFIER],
            "responses": {"200": {"description": "searchset Bundle of AuditEvent", **_json(_BUNDLE)},
                          **_errors(400, 401, 403)}}},
        INBOX_PATH: {
            "post": {
                "summary": "The built-in local-authority inbox: receive an Access to Service Notification",
                "operationId": "cpisInboxReceive",
                "description": "The default webhook. Machine to machine: authenticated by the HMAC-SHA256 "
                               f"signature ({SIGNATURE_HEADER}: sha256=hex over the key, a newline and the body, "
                               "keyed with the authority's secret). Each key is stored once: 201 new, 200 "
                               "duplicate (dropped).",
                "parameters": [code,
                               {"name": IDEMPOTENCY_HEADER, "in": "header", "required": True,
                                "schema": {"type": "string", "format": "uuid"}},
                               {"name": SIGNATURE_HEADER, "in": "header", "required": True,
                                "schema": {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"}}],
                "requestBody": {"required": True, **_json({"type": "object", "required": ["id", "localAuthority"]},
                                                          "application/json")},
                "responses": {"201": {"description": "stored", **_json({"type": "object"}, "application/json")},
                              "200": {"description": "duplicate, dropped",
                                      **_json({"type": "object"}, "application/json")},
                              **_errors(400, 401)}},
            "get": {
                "summary": "List the notifications the built-in inbox received for a local authority",
                "operationId": "cpisInboxList",
                "description": "Activity B0015 (privacy officer: the people who review access to patient data in "
                               "this service), in a role AT this local authority (the role profile's ODS code is "
                               "{code}; any other organisation: 403); audited with the NHS numbers listed. Most "
                               "recent first.",
                "parameters": [*SESSION_HEADERS, code, count],
                "responses": {"200": {"description": "notifications", **_json({"type": "object"},
                                                                              "application/json")},
                              **_errors(400, 401, 403)}}},
    }
