"""Parsing and checking SCR requests: query parameters, ``$setPermission`` parameters, uploaded documents.

Every rejection is a ``ScrError`` (400 ``invalid``, 415 ``not-supported``) in the SCR specification's
``details.text`` style, saying what was wrong and what to send instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.nhs_number import is_valid
from app.service.scr.fhir import ACS_SYSTEM, GP_SUMMARY, NHS_NUMBER_SYSTEM, ScrError, invalid

FHIR_JSON = "application/fhir+json"
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SCR_TYPE = f"{GP_SUMMARY['system']}|{GP_SUMMARY['code']}"
PERMISSION_CODES = ("Yes", "No", "Ask")


def check_content_type(value: str | None) -> None:
    media = (value or "").split(";", 1)[0].strip().lower()
    if media != FHIR_JSON:
        raise ScrError(415, f"Content type '{(value or '')[:80]}' not supported. Send the body as JSON with "
                       f"'Content-Type: {FHIR_JSON}'.", issue_code="not-supported")


MAX_DEPTH = 64  # FHIR resources nest a dozen levels; the stores' JSON encoders refuse a few hundred


def json_body(raw: bytes) -> Any:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise invalid("The body is not valid JSON (or nests too deeply).") from exc
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            _utf8(node)
            continue
        if depth > MAX_DEPTH:
            raise invalid(f"The body nests more than {MAX_DEPTH} levels deep; no FHIR resource does.")
        if isinstance(node, dict):
            for key in node:
                _utf8(key)
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list | str))
    return doc


def _utf8(text: str) -> None:
    if "\x00" in text:  # PostgreSQL text and jsonb cannot hold NUL
        raise invalid("The body holds a NUL character (\\u0000); remove it.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate escaped as \ud800: not Unicode text
        raise invalid("The body holds an invalid \\u escape (a lone surrogate); send UTF-8 text.") from exc


def _one(query: Mapping[str, list[str]], name: str, *, required: bool) -> str | None:
    values = query.get(name)
    if not values:
        if required:
            raise invalid(f"Missing query parameter '{name}'.")
        return None
    if len(values) > 1:
        raise invalid(f"Query parameter '{name}' may be given only once.")
    return values[0]


def _unknown(query: Mapping[str, list[str]], allowed: set[str]) -> None:
    extra = sorted(set(query) - allowed)
    if extra:
        raise invalid(f"Unsupported query parameter '{extra[0][:60]}'. Allowed: {', '.join(sorted(allowed))}.")


def nhs_identifier(value: str, name: str) -> str:
    """``https://fhir.nhs.uk/Id/nhs-number|9000000009`` → ``9000000009`` (400 for anything else)."""
    system, sep, nhs = value.partition("|")
    if not sep or system != NHS_NUMBER_SYSTEM:
        raise invalid(f"Invalid {name}: give the NHS number as '{NHS_NUMBER_SYSTEM}|<NHS number>'.")
    if not is_valid(nhs):
        raise invalid(f"Invalid NHS number in {name}: it must be 10 digits with a valid check digit.")
    return nhs


def parse_document_reference(query: Mapping[str, list[str]]) -> str:
    """GET /DocumentReference parameters; returns the NHS number."""
    _unknown(query, {"patient", "type", "_sort", "_count"})
    nhs = nhs_identifier(_one(query, "patient", required=True) or "", "patient")
    kind = _one(query, "type", required=False)
    if kind is not None and kind != SCR_TYPE:
        raise invalid(f"Invalid type: the only supported value is '{SCR_TYPE}'.")
    sort = _one(query, "_sort", required=False)
    if sort is not None and sort != "date":
        raise invalid("Invalid _sort: the only supported value is 'date'.")
    count = _one(query, "_count", required=False)
    if count is not None and count != "1":
        raise invalid("Invalid _count: the only supported value is 1.")
    return nhs


def parse_bundle_query(query: Mapping[str, list[str]]) -> tuple[str, str]:
    """GET /Bundle parameters; returns (SCR id upper-case, NHS number)."""
    _unknown(query, {"composition.identifier", "composition.subject:Patient.identifier"})
    scr_id = _one(query, "composition.identifier", required=True) or ""
    if not UUID_RE.match(scr_id):
        raise invalid("Invalid composition.identifier: it must be the SCR's UUID from GET /DocumentReference.")
    nhs = nhs_identifier(_one(query, "composition.subject:Patient.identifier", required=True) or "",
                         "composition.subject:Patient.identifier")
    return scr_id.upper(), nhs


# --- POST /$setPermission ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PermissionRequest:
    """``setPermissions`` (the specification's): the patient's consent preference Yes / No / Ask.
    ``permissionToView`` (Spine Desk's, same shape): the patient's answer in this episode, Yes or No."""

    kind: str  # "setPermissions" | "permissionToView"
    nhs_number: str
    code: str


def parse_permission(body: object) -> PermissionRequest:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise invalid("The body must be a FHIR Parameters resource (resourceType 'Parameters').")
    params = body.get("parameter")
    if not isinstance(params, list) or len(params) != 1 or not isinstance(params[0], dict):
        raise invalid("Parameters must hold exactly one parameter: 'setPermissions' or 'permissionToView'.")
    name, parts = params[0].get("name"), params[0].get("part")
    if name not in ("setPermissions", "permissionToView"):
        raise invalid("The parameter name must be 'setPermissions' (consent preference) or 'permissionToView' "
                      "(the patient's answer in this episode of care).")
    if not isinstance(parts, list) or len(parts) != 2 or not all(isinstance(p, dict) for p in parts):
        raise invalid("The parameter needs two parts: 'nhsNumber' and 'permissionCode'.")
    by_name = {p.get("name"): p for p in parts if isinstance(p.get("name"), str)}
    nhs = by_name.get("nhsNumber", {}).get("valueString")
    if not isinstance(nhs, str) or not is_valid(nhs):
        raise invalid("NHS number missing or invalid in part 'nhsNumber' (valueString, 10 digits).")
    coding = by_name.get("permissionCode", {}).get("valueCoding")
    code = coding.get("code") if isinstance(coding, dict) else None
    if not isinstance(coding, dict) or coding.get("system") != ACS_SYSTEM or code not in PERMISSION_CODES:
        raise invalid(f"permissionCode must be a valueCoding with system '{ACS_SYSTEM}' and code Yes, No or Ask.")
    if name == "permissionToView" and code == "Ask":
        raise invalid("permissionToView records the patient's answer: Yes (permission given) or No (refused).")
    return PermissionRequest(name, nhs, code)


# --- POST /Bundle ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    scr_id: str  # the Composition identifier, upper case
    nhs_number: str
    replaces: str | None  # Composition.relatesTo[code=replaces].targetIdentifier.value, upper case
    bundle: dict[str, Any]


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _entries(body: dict[str, Any]) -> list[dict[str, Any]]:
    entries = body.get("entry")
    if not isinstance(entries, list) or not entries:
        raise invalid("The Bundle has no entries: it needs at least a Composition and the Patient.")
    resources = []
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise invalid(f"entry[{i}] has no resource with a resourceType.")
        resources.append(resource)
    return resources


def _composition(resources: list[dict[str, Any]]) -> dict[str, Any]:
    found = [r for r in resources if r["resourceType"] == "Composition"]
    if len(found) != 1:
        raise invalid("The Bundle must hold exactly one Composition.")
    comp = found[0]
    # what an SCR cannot do without (NHS's own upload example has no title, though its schema lists one)
    missing = [k for k in ("identifier", "status", "type", "subject", "date") if k not in comp]
    if missing:
        raise invalid(f"The Composition lacks {', '.join(missing)}.")
    coding = comp["type"].get("coding") if isinstance(comp["type"], dict) else None
    if not isinstance(coding, list) or not coding or not isinstance(coding[0], dict) or \
            coding[0].get("code") != GP_SUMMARY["code"]:
        raise invalid(f"Composition.type must be SNOMED CT {GP_SUMMARY['code']} ({GP_SUMMARY['display']}).")
    if comp["status"] != "final":
        raise invalid("Composition.status must be 'final'.")
    if not isinstance(comp.get("author"), list) or not comp["author"]:
        raise invalid("The Composition needs an author (a PractitionerRole reference).")
    return comp


def parse_upload(body: object) -> Upload:
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle" or body.get("type") != "document":
        raise invalid("The body must be a FHIR Bundle of type 'document'.")
    for key in ("identifier", "timestamp"):
        if key not in body:
            raise invalid(f"The Bundle lacks {key}.")
    resources = _entries(body)
    comp = _composition(resources)
    ident = comp["identifier"].get("value") if isinstance(comp["identifier"], dict) else None
    if not isinstance(ident, str) or not UUID_RE.match(ident):
        raise invalid("Composition.identifier.value must be a UUID (the new SCR's id).")
    patients = [r for r in resources if r["resourceType"] == "Patient"]
    nhs_numbers = {str(i.get("value")) for p in patients for i in _list(p.get("identifier"))
                   if isinstance(i, dict) and i.get("system") == NHS_NUMBER_SYSTEM}
    if len(patients) != 1 or len(nhs_numbers) != 1:
        raise invalid("The Bundle must hold exactly one Patient with an NHS number identifier.")
    nhs = nhs_numbers.pop()
    if not isinstance(nhs, str) or not is_valid(nhs):
        raise invalid("The Patient's NHS number is invalid.")
    replaces = None
    for rel in _list(comp.get("relatesTo")):
        if isinstance(rel, dict) and rel.get("code") == "replaces":
            target = rel.get("targetIdentifier", {}).get("value") if isinstance(rel.get("targetIdentifier"),
                                                                                dict) else None
            if not isinstance(target, str) or not UUID_RE.match(target):
                raise invalid("Composition.relatesTo 'replaces' must name the current SCR's UUID.")
            replaces = target.upper()
    return Upload(ident.upper(), nhs, replaces, body)
