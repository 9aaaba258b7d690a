"""Summary Care Record FHIR R4 shapes, as NHS's SCR API specification gives them.

Errors: the SCR specification's issues carry ``details.text``; Spine Desk's also carry the Spine code in
``details.coding`` (same CodeableConcept), so that every service's errors can be told apart by code.
Resources: the DocumentReference search Bundle, the SCR searchset Bundle, privacy-alert AuditEvents.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from app.protocol import NHS_NUMBER_SYSTEM
from app.service.core.outcome import FhirError
from app.service.scr.store import ScrAlert, ScrDocument

SCR_ERROR_SYSTEM = "https://fhir.nhs.uk/CodeSystem/Spine-ErrorOrWarningCode"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
SDS_USER_SYSTEM = "https://fhir.nhs.uk/Id/sds-user-id"
SDS_ROLE_SYSTEM = "https://fhir.nhs.uk/Id/sds-role-profile-id"
SCR_UUID_SYSTEM = "https://fhir.nhs.uk/Id/nhsSCRUUID"
RFC4122 = "https://tools.ietf.org/html/rfc4122"
ACS_SYSTEM = "https://fhir.nhs.uk/CodeSystem/SCR-ACSPermission"
ALERT_TYPE_SYSTEM = "https://fhir.nhs.uk/CodeSystem/SCR-AlertType"
ALERT_REASON_SYSTEM = "https://fhir.nhs.uk/CodeSystem/SCR-AlertReason"
NOTIFICATION_URL = "https://fhir.nhs.uk/StructureDefinition/Extension-SCR-NotificationMessage"
ACK_URL = "https://spinedesk.invalid/fhir/StructureDefinition/Extension-SCR-AlertAcknowledgement"  # ours
SNOMED = "http://snomed.info/sct"
GP_SUMMARY = {"system": SNOMED, "code": "196981000000101", "display": "General Practice Summary"}
CARE_PROFESSIONAL_DOCUMENTATION = {"system": SNOMED, "code": "163171000000105",
                                   "display": "Care Professional Documentation"}
ALERT_TYPES = {1: "Create LR (Self Claimed)", 2: "Access Alert"}
ALERT_REASONS = {1: "Access made in the public interest", 2: "Access required by statute",
                 3: "Access required by Court Order", 4: "Self-Claim Emergency Access",
                 5: "Access made in an emergency", 6: "Other"}
_PATIENT_NS = uuid.UUID("6f3c1d4e-8a55-4b8e-9a43-2f7f5b1c0d11")
_DEFAULT_CODE = {400: "VALIDATION_ERROR", 401: "ACCESS_DENIED", 403: "ACCESS_DENIED", 404: "RESOURCE_NOT_FOUND",
                 409: "RESOURCE_VERSION_MISMATCH", 415: "UNSUPPORTED_MEDIA_TYPE"}


class ScrError(FhirError):
    """An SCR API error: HTTP status, FHIR issue type and the text the user reads (what happened, what to do)."""

    def __init__(self, status: int, text: str, *, issue_code: str | None = None, spine_code: str | None = None,
                 display: str | None = None, reason: str | None = None) -> None:
        super().__init__(spine_code or _DEFAULT_CODE.get(status, "VALIDATION_ERROR"), text, status=status,
                         issue_code=issue_code, display=display)
        self.text = text
        self.reason = reason  # a short stable code for the audit trail (never clinical content)

    @classmethod
    def from_fhir(cls, exc: FhirError) -> ScrError:
        return cls(exc.status, exc.diagnostics or exc.display, issue_code=exc.issue_code, spine_code=exc.spine_code,
                   display=exc.display)

    def to_outcome(self) -> dict[str, Any]:
        return {"resourceType": "OperationOutcome", "issue": [{
            "severity": "error", "code": self.issue_code,
            "details": {"coding": [{"system": SCR_ERROR_SYSTEM, "version": "1", "code": self.spine_code,
                                    "display": self.display}], "text": self.text}}]}


def invalid(text: str) -> ScrError:
    return ScrError(400, text, issue_code="invalid")


def forbidden(text: str, *, reason: str | None = None) -> ScrError:
    return ScrError(403, text, issue_code="forbidden", reason=reason)


@lru_cache(maxsize=1024)
def patient_resource_id(nhs_number: str) -> str:
    """A stable id for the Patient resource that stands for ``nhs_number`` inside SCR bundles."""
    return str(uuid.uuid5(_PATIENT_NS, nhs_number))


def bundle_url(base_url: str, scr_id: str, nhs_number: str) -> str:
    return (f"{base_url}/Bundle?composition.identifier={quote(scr_id)}"
            f"&composition.subject:Patient.identifier={NHS_NUMBER_SYSTEM}|{nhs_number}")


def document_reference_bundle(nhs_number: str, doc: ScrDocument | None, consent: str, *, base_url: str,
                              bundle_id: str) -> dict[str, Any]:
    """GET /DocumentReference: the latest SCR's id with the consent as stored (Yes / No / Ask) in
    ``securityLabel``; total 0 when the patient has none."""
    entries: list[dict[str, Any]] = []
    if doc is not None:
        patient_id = patient_resource_id(nhs_number)
        entries = [{
            "fullUrl": f"{base_url}/DocumentReference/{doc.id.lower()}",
            "resource": {
                "resourceType": "DocumentReference", "id": doc.id.lower(),
                "masterIdentifier": {"system": SCR_UUID_SYSTEM, "value": doc.id},
                "status": "current", "type": {"coding": [dict(GP_SUMMARY)]},
                "subject": {"reference": f"Patient/{patient_id}"},
                "date": doc.created_at.isoformat(timespec="seconds"),
                "securityLabel": [{"coding": [{"system": ACS_SYSTEM, "code": consent}]}],
                "content": [{"attachment": {"url": bundle_url(base_url, doc.id, nhs_number)}}],
                "context": {"event": [{"coding": [dict(GP_SUMMARY)]}]}},
            "search": {"mode": "match"}},
            {"fullUrl": patient_id, "resource": {"resourceType": "Patient", "id": patient_id, "identifier": [
                {"system": NHS_NUMBER_SYSTEM, "value": nhs_number}]}}]
    return {"resourceType": "Bundle", "id": bundle_id, "type": "searchset", "total": len(entries) // 2,
            "entry": entries}


def scr_bundle(doc: ScrDocument | None, *, bundle_id: str, now: datetime) -> dict[str, Any]:
    """GET /Bundle: the SCR's resources as a searchset (no entries for an out-of-date or unknown id)."""
    entries = list(doc.bundle.get("entry", [])) if doc is not None else []
    return {"resourceType": "Bundle", "id": bundle_id,
            "identifier": {"system": RFC4122, "value": bundle_id.upper()},
            "type": "searchset", "timestamp": now.isoformat(timespec="seconds"), "total": len(entries),
            "entry": entries}


def scr_bundle_json(entries_json: str | None, entries: int, *, bundle_id: str, now: datetime) -> bytes:
    """``scr_bundle`` with the stored entries spliced in as the JSON text the store holds (no decode/encode)."""
    head = scr_bundle(None, bundle_id=bundle_id, now=now)
    head["total"] = entries if entries_json else 0
    del head["entry"]
    text = json.dumps(head, separators=(",", ":"), ensure_ascii=False)
    return f'{text[:-1]},"entry":{entries_json or "[]"}}}'.encode()


def alert_resource(alert: ScrAlert, *, base_url: str) -> dict[str, Any]:
    """A queued privacy alert as an AuditEvent (the shape POST /AuditEvent takes), plus its acknowledgement."""
    extension: list[dict[str, Any]] = [{"url": NOTIFICATION_URL, "valueString": notification_text(alert)}]
    if alert.acknowledged_at is not None:
        parts = [{"url": "by", "valueString": alert.acknowledged_by or ""},
                 {"url": "role", "valueString": alert.acknowledged_role or ""},
                 {"url": "at", "valueDateTime": alert.acknowledged_at.isoformat(timespec="seconds")}]
        if alert.acknowledgement_note:
            parts.append({"url": "note", "valueString": alert.acknowledgement_note})
        extension.append({"url": ACK_URL, "extension": parts})
    return {
        "resourceType": "AuditEvent", "id": alert.id, "extension": extension,
        "type": {"system": ALERT_TYPE_SYSTEM, "code": str(alert.alert_type),
                 "display": ALERT_TYPES.get(alert.alert_type, "")},
        "subtype": [{"system": ALERT_REASON_SYSTEM, "code": str(alert.alert_subtype),
                     "display": ALERT_REASONS.get(alert.alert_subtype, "")}],
        "recorded": alert.created_at.isoformat(timespec="seconds"),
        "outcomeDesc": alert.reason,
        "agent": [
            {"who": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": alert.nhs_number}}, "requestor": False},
            {"who": {"identifier": {"system": ODS_SYSTEM, "value": alert.org}}, "requestor": False},
            {"who": {"identifier": {"system": SDS_USER_SYSTEM, "value": alert.user_id}, "display": alert.user_name},
             "role": [{"text": alert.role_name}], "requestor": True}],
        "source": {"observer": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhsSpineASID",
                                               "value": "spinedesk-training"}}},
        "entity": [{"what": {"identifier": {"value": alert.id}}}],
        "meta": {"source": f"{base_url}/alerts/{alert.id}"},
    }


def notification_text(alert: ScrAlert) -> str:
    what = "Self-claimed legitimate relationship" if alert.alert_type == 1 else "Permission to view override"
    return f"Alert: {what} {alert.id}"


def alerts_bundle(alerts: Sequence[ScrAlert], *, base_url: str, bundle_id: str) -> dict[str, Any]:
    return {"resourceType": "Bundle", "id": bundle_id, "type": "searchset", "total": len(alerts),
            "entry": [{"fullUrl": f"{base_url}/alerts/{a.id}", "resource": alert_resource(a, base_url=base_url),
                       "search": {"mode": "match"}} for a in alerts]}
