"""Reasonable Adjustment Flags as FHIR R4 resources, shaped by NHS England's Patient Flags IG.

A record is one PatientFlag (``code`` and ``category`` NRAF) whose details are contained and referenced by
``flag-detail`` extensions: the Consent (FlagConsent), one Condition per impairment group (FlagCondition), one
Flag per adjustment (ProgrammeFlag), plus the FlagProvenance of the change that made this version (who, in which
role, for which organisation, when, and what: create / revise / remove / nullify). The store keeps this full
resource per version; :func:`withheld_view` is what a role without clinical access gets: that the flag exists,
its status, dates and provenance, never its content, marked ``meta.security`` REDACTED with a narrative saying so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.nhs_number import NHS_NUMBER_SYSTEM
from app.service.core.etag import etag
from app.service.flags.codes import (
    CONDITION_CLINICAL,
    CONSENT_POLICY,
    CONSENT_SCOPE,
    DATA_OPERATION,
    EXT_CONSENT_CREATE,
    EXT_CONSENT_REMOVE,
    EXT_FLAG_DETAIL,
    EXT_FLAG_NOTES,
    EXT_REMOVAL,
    NRAF,
    OBSERVATION_VALUE,
    ODS,
    PROFILE_CONDITION,
    PROFILE_CONSENT,
    PROFILE_PATIENT_FLAG,
    PROFILE_PROGRAMME_FLAG,
    PROFILE_PROVENANCE,
    RBAC_ROLE,
    SDS_USER,
    SNOMED,
    FlagCodes,
)
from app.service.flags.model import (
    ACTIVE,
    ENTERED_IN_ERROR,
    RaContent,
    Recorder,
    Removal,
)

ACTIVITIES = {"CREATE": "create", "UPDATE": "revise", "DELETE": "remove", "NULLIFY": "nullify"}
REDACTED = {"system": OBSERVATION_VALUE, "code": "REDACTED", "display": "redacted"}
WITHHELD_TEXT = ("Reasonable Adjustment Flag: content withheld. Your role may see that this flag exists but not "
                 "its impairments, adjustments or consent; a clinical role is needed to see them.")
WITHHELD_NARRATIVE = {"status": "generated",
                      "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{WITHHELD_TEXT}</p></div>'}


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def patient_ref(nhs: str) -> dict[str, Any]:
    return {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs}}


def _nraf(codes: FlagCodes) -> dict[str, Any]:
    return {"coding": [codes.category.coding(NRAF)]}


def provenance(recorder: Recorder, activity: str) -> dict[str, Any]:
    return {
        "resourceType": "Provenance", "id": "provenance", "meta": {"profile": [PROFILE_PROVENANCE]},
        "target": [{"reference": "#"}], "recorded": iso(recorder.at),
        "activity": {"coding": [{"system": DATA_OPERATION, "code": activity, "display": ACTIVITIES[activity]}]},
        "agent": [{
            "role": [{"coding": [{"system": RBAC_ROLE, "code": recorder.role_code, "display": recorder.role_name}]}],
            "who": {"type": "Practitioner", "identifier": {"system": SDS_USER, "value": recorder.user_id},
                    "display": recorder.user_name},
            "onBehalfOf": {"type": "Organization", "identifier": {"system": ODS, "value": recorder.org_ods},
                           "display": recorder.org_name}}]}


def _consent(content: RaContent, nhs: str, status: str, removal: Removal | None, codes: FlagCodes,
             created: datetime) -> dict[str, Any]:
    consent = content.consent
    extension = []
    if consent.summary:
        extension.append({"url": EXT_CONSENT_CREATE, "valueAnnotation": {"text": consent.summary}})
    if removal is not None and removal.comment:
        extension.append({"url": EXT_CONSENT_REMOVE, "valueAnnotation": {"text": removal.comment}})
    doc: dict[str, Any] = {"resourceType": "Consent", "id": "consent", "meta": {"profile": [PROFILE_CONSENT]}}
    if extension:
        doc["extension"] = extension
    doc |= {"status": status, "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
            "category": [_nraf(codes)], "patient": patient_ref(nhs), "dateTime": iso(created)}
    if consent.performer:
        doc["performer"] = [{"display": consent.performer}]
    doc |= {"policy": [dict(CONSENT_POLICY)], "policyRule": {"coding": [codes.proxy_role.coding(consent.proxy_role)]},
            "provision": {"purpose": [codes.consent_purpose.coding("RACONSENT")]}}
    return doc


def _impairments(content: RaContent, nhs: str, status: str, codes: FlagCodes) -> list[dict[str, Any]]:
    out = []
    for n, item in enumerate(content.impairments, 1):
        doc: dict[str, Any] = {"resourceType": "Condition", "id": f"impairment-{n}",
                               "meta": {"profile": [PROFILE_CONDITION]}}
        if status == ENTERED_IN_ERROR:  # FHIR: no clinicalStatus on an entered-in-error condition
            doc["verificationStatus"] = {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "entered-in-error"}]}
        else:
            doc["clinicalStatus"] = {"coding": [{"system": CONDITION_CLINICAL,
                                                 "code": "active" if status == ACTIVE else "inactive"}]}
        doc |= {"category": [_nraf(codes), {"coding": [codes.condition_category.coding("issue")]}],
                "code": {"coding": [codes.impairment.coding(item.code)]}, "subject": patient_ref(nhs)}
        if item.note:
            doc["note"] = [{"text": item.note}]
        out.append(doc)
    return out


def _adjustments(content: RaContent, nhs: str, status: str, codes: FlagCodes) -> list[dict[str, Any]]:
    out = []
    for n, item in enumerate(content.adjustments, 1):
        doc: dict[str, Any] = {"resourceType": "Flag", "id": f"adjustment-{n}",
                               "meta": {"profile": [PROFILE_PROGRAMME_FLAG]}}
        if item.note:
            doc["extension"] = [{"url": EXT_FLAG_NOTES, "valueAnnotation": {"text": item.note}}]
        code: dict[str, Any] = {}
        if item.code:
            code["coding"] = [{"system": SNOMED, "code": item.code, **({"display": item.display}
                                                                       if item.display else {})}]
        if item.text:
            code["text"] = item.text
        doc |= {"status": status, "category": [_nraf(codes), {"coding": [codes.adjustment_category.coding(
            item.category)]}], "code": code, "subject": patient_ref(nhs)}
        out.append(doc)
    return out


def render_flag(*, flag_id: str, nhs: str, version: int, content: RaContent, recorder: Recorder, activity: str,
                created: datetime, codes: FlagCodes, removal: Removal | None = None) -> dict[str, Any]:
    """The full PatientFlag for one version (what the store keeps and clinical roles see)."""
    status = removal.status if removal is not None else ACTIVE
    consent = _consent(content, nhs, status, removal, codes, created)
    impairments = _impairments(content, nhs, status, codes)
    adjustments = _adjustments(content, nhs, status, codes)
    extension: list[dict[str, Any]] = []
    if content.notes:
        extension.append({"url": EXT_FLAG_NOTES, "valueAnnotation": {"text": content.notes}})
    for detail in (consent, *impairments, *adjustments):
        extension.append({"url": EXT_FLAG_DETAIL, "valueReference": {"reference": f"#{detail['id']}",
                                                                     "type": detail["resourceType"]}})
    if removal is not None:
        parts: list[dict[str, Any]] = [{"url": "removalReason", "valueCodeableConcept": {
            "coding": [codes.removal_reason.coding(removal.reason)]}}]
        if removal.comment:
            parts.append({"url": "supportingComment", "valueString": removal.comment})
        extension.append({"url": EXT_REMOVAL, "extension": parts})
    period = {"start": iso(created)} | ({"end": iso(recorder.at)} if removal is not None else {})
    return {
        "resourceType": "Flag", "id": flag_id,
        "meta": {"versionId": str(version), "lastUpdated": iso(recorder.at), "profile": [PROFILE_PATIENT_FLAG]},
        "contained": [provenance(recorder, activity), consent, *impairments, *adjustments],
        "extension": extension,
        "status": status, "category": [_nraf(codes)], "code": _nraf(codes), "subject": patient_ref(nhs),
        "period": period,
    }


def removal_activity(removal: Removal) -> str:
    return "NULLIFY" if removal.status == ENTERED_IN_ERROR else "DELETE"


def withheld_view(resource: dict[str, Any]) -> dict[str, Any]:
    """What a role without clinical access sees: the flag exists (status, dates, provenance), content withheld."""
    meta = dict(resource.get("meta", {}))
    meta["security"] = [dict(REDACTED)]
    out: dict[str, Any] = {"resourceType": "Flag", "id": resource["id"], "meta": meta,
                           "text": dict(WITHHELD_NARRATIVE),
                           "contained": [c for c in resource.get("contained", [])
                                         if c.get("resourceType") == "Provenance"]}
    for key in ("status", "category", "code", "subject", "period"):
        if key in resource:
            out[key] = resource[key]
    return out


def is_withheld(resource: dict[str, Any]) -> bool:
    return any(s.get("code") == "REDACTED" for s in resource.get("meta", {}).get("security", []))


def view(resource: dict[str, Any], content: bool) -> dict[str, Any]:
    return resource if content else withheld_view(resource)


def searchset(entries: list[tuple[str, dict[str, Any]]], self_url: str) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries),
            "link": [{"relation": "self", "url": self_url}],
            "entry": [{"fullUrl": url, "resource": res, "search": {"mode": "match"}} for url, res in entries]}


def history(entries: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """A history Bundle, newest first; each entry says which request made that version."""
    out = []
    for url, res in entries:
        version = res["meta"]["versionId"]
        method = "POST" if version == "1" else "PUT"
        out.append({"fullUrl": url, "resource": res,
                    "request": {"method": method, "url": "Flag" if method == "POST" else f"Flag/{res['id']}"},
                    "response": {"status": "201" if method == "POST" else "200", "etag": etag(version),
                                 "lastModified": res["meta"]["lastUpdated"]}})
    return {"resourceType": "Bundle", "type": "history", "total": len(out), "entry": out}
