"""Summary Care Record calls: find the latest SCR, record permission to view or a privacy alert, read it (typed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from app.client.api import SpineApi
from app.client.models import Auth
from app.errors import ServiceRejected
from app.protocol import NHS_NUMBER_SYSTEM, SCR_BASE

ACS_SYSTEM = "https://fhir.nhs.uk/CodeSystem/SCR-ACSPermission"
ALERT_TYPE_SYSTEM = "https://fhir.nhs.uk/CodeSystem/SCR-AlertType"
ALERT_REASON_SYSTEM = "https://fhir.nhs.uk/CodeSystem/SCR-AlertReason"
SCR_TYPE = "http://snomed.info/sct|196981000000101"
FHIR_JSON = {"Content-Type": "application/fhir+json"}
SELF_CLAIM, ACCESS_ALERT = 1, 2
EMERGENCY_SELF_CLAIM, EMERGENCY, OTHER = 4, 5, 6
# legal overrides (SCR-AlertReason 1-3): what the user chooses, in the words of docs/decisions/scr.md
LEGAL_REASONS = {1: "In the public interest", 2: "Required by statute", 3: "Required by a court order"}
# the patient's consent preference for their SCR (setPermissions): what each code means to the user
CONSENT_PREFERENCES = {"Ask": "Ask me each time (permission asked in every episode of care)",
                       "No": "Opted out: no Summary Care Record is to be shown",
                       "Yes": "Consents to viewing (recorded as Yes; viewers still ask in each episode)"}


@dataclass(frozen=True, slots=True)
class ScrIndex:
    scr_id: str | None  # None: the patient has no SCR
    consent: str  # Yes / No / Ask as stored (Yes is treated as Ask)
    refused: str = ""  # the service's explanation when it will not show one (e.g. opted out)


@dataclass(frozen=True, slots=True)
class Allergy:
    description: str
    reaction: str
    severity: str
    recorded: date | None


@dataclass(frozen=True, slots=True)
class Medication:
    kind: str  # acute | repeat | discontinued
    product: str
    dose: str
    quantity: str
    when: date | None


@dataclass(frozen=True, slots=True)
class ScrRecord:
    allergies: tuple[Allergy, ...]
    medications: tuple[Medication, ...]
    additional: tuple[tuple[str, str, date | None], ...]  # (kind, description, date)
    author: str = ""
    created: datetime | None = None


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _text(concept: dict[str, Any] | None) -> str:
    concept = concept or {}
    return str(concept.get("text") or ((concept.get("coding") or [{}])[0]).get("display") or "")


_MED_KIND = {"completed": "acute", "active": "repeat", "stopped": "discontinued"}
_EXTRA = {"Condition": ("Problem", "recordedDate"), "Procedure": ("Treatment", "performedDateTime"),
          "Immunization": ("Immunisation", "occurrenceDateTime")}


def parse_record(bundle: dict[str, Any]) -> ScrRecord:
    allergies, meds, extra = [], [], []
    author, created = "", None
    for entry in bundle.get("entry") or ():
        res = entry.get("resource") or {}
        kind = res.get("resourceType")
        if kind == "AllergyIntolerance":
            reaction = (res.get("reaction") or [{}])[0]
            substance = _text(reaction.get("substance"))
            name = _text(res.get("code"))
            allergies.append(Allergy(f"{name}: {substance}" if substance and substance.lower() not in name.lower()
                                     else name,
                                     " ".join(m.get("text", "") for m in reaction.get("manifestation") or ()),
                                     str(reaction.get("severity") or ""), _date(res.get("recordedDate"))))
        elif kind == "MedicationStatement":
            notes = " ".join(n.get("text", "") for n in res.get("note") or ())
            meds.append(Medication(_MED_KIND.get(str(res.get("status")), str(res.get("status"))),
                                   _text(res.get("medicationCodeableConcept")),
                                   " ".join(d.get("text", "") for d in res.get("dosage") or ()),
                                   notes.removeprefix("Quantity: "), _date(res.get("effectiveDateTime"))))
        elif kind in _EXTRA:
            label, field = _EXTRA[kind]
            extra.append((label, _text(res.get("code") or res.get("vaccineCode")), _date(res.get(field))))
        elif kind == "Composition":
            author = str(((res.get("author") or [{}])[0]).get("display") or "")
            try:
                created = datetime.fromisoformat(str(res.get("date")))
            except ValueError:
                created = None
    return ScrRecord(tuple(allergies), tuple(meds), tuple(extra), author, created)


@dataclass(frozen=True, slots=True)
class PrivacyAlert:
    id: str
    at: datetime | None
    kind: str  # "Create LR (Self Claimed)" / "Access Alert"
    reason_code: str  # e.g. "Access made in an emergency"
    reason: str  # the user's own words
    nhs_number: str
    user_name: str
    role_name: str
    acknowledged: bool


def parse_alert(res: dict[str, Any]) -> PrivacyAlert:
    nhs, user, role = "", "", ""
    for agent in res.get("agent") or ():
        ident = (agent.get("who") or {}).get("identifier") or {}
        if ident.get("system") == NHS_NUMBER_SYSTEM:
            nhs = str(ident.get("value") or "")
        elif agent.get("requestor"):
            user = str((agent.get("who") or {}).get("display") or "")
            role = str(((agent.get("role") or [{}])[0]).get("text") or "")
    try:
        at = datetime.fromisoformat(str(res.get("recorded")))
    except ValueError:
        at = None
    acknowledged = any(str(e.get("url", "")).endswith("AlertAcknowledgement") for e in res.get("extension") or ())
    return PrivacyAlert(id=str(res.get("id") or ""), at=at, kind=str((res.get("type") or {}).get("display") or ""),
                        reason_code=str(((res.get("subtype") or [{}])[0]).get("display") or ""),
                        reason=str(res.get("outcomeDesc") or ""), nhs_number=nhs, user_name=user, role_name=role,
                        acknowledged=acknowledged)


class Scr:
    def __init__(self, client: SpineApi, auth: Auth) -> None:
        self._client, self._auth = client, auth

    def index(self, nhs_number: str) -> ScrIndex:
        try:
            doc, _ = self._client.fhir("GET", f"{SCR_BASE}/DocumentReference", self._auth, params=[
                ("patient", f"{NHS_NUMBER_SYSTEM}|{nhs_number}"), ("type", SCR_TYPE)])
        except ServiceRejected as exc:
            if exc.status == 403 and "opted out" in exc.message:
                return ScrIndex(None, "No", exc.message)
            raise
        for entry in doc.get("entry") or ():
            res = entry.get("resource") or {}
            if res.get("resourceType") == "DocumentReference":
                label = ((res.get("securityLabel") or [{}])[0].get("coding") or [{}])[0]
                return ScrIndex(str((res.get("masterIdentifier") or {}).get("value") or res.get("id")),
                                str(label.get("code") or "Ask"))
        return ScrIndex(None, "Ask")

    def record_permission(self, nhs_number: str, given: bool) -> None:
        body = {"resourceType": "Parameters", "parameter": [{"name": "permissionToView", "part": [
            {"name": "nhsNumber", "valueString": nhs_number},
            {"name": "permissionCode", "valueCoding": {"system": ACS_SYSTEM, "code": "Yes" if given else "No"}}]}]}
        self._client.fhir("POST", f"{SCR_BASE}/$setPermission", self._auth, body=body, headers=FHIR_JSON)

    def set_consent_preference(self, nhs_number: str, code: str, *, self_claim: bool) -> None:
        """The patient's consent preference for their SCR (Yes / No / Ask); needs B0020 (Record Patient Consent) and
        a legitimate relationship. ``self_claim`` (a patient registered elsewhere) first self-claims one, which
        alerts the privacy officer. A patient who has opted out cannot be claimed: only their practice, or an
        episode that claimed the relationship before, can record their new preference."""
        if code not in CONSENT_PREFERENCES:
            raise ValueError(f"unknown consent preference {code!r}")
        if self_claim:
            self.alert(nhs_number, SELF_CLAIM, OTHER, "Self-claimed legitimate relationship: recording the "
                       "patient's consent preference")
        body = {"resourceType": "Parameters", "parameter": [{"name": "setPermissions", "part": [
            {"name": "nhsNumber", "valueString": nhs_number},
            {"name": "permissionCode", "valueCoding": {"system": ACS_SYSTEM, "code": code}}]}]}
        self._client.fhir("POST", f"{SCR_BASE}/$setPermission", self._auth, body=body, headers=FHIR_JSON)

    def alert(self, nhs_number: str, alert_type: int, subtype: int, reason: str) -> None:
        """A privacy alert (self-claimed relationship, or emergency access) — the privacy officer sees it."""
        body = {"resourceType": "AuditEvent",
                "type": {"system": ALERT_TYPE_SYSTEM, "code": str(alert_type)},
                "subtype": [{"system": ALERT_REASON_SYSTEM, "code": str(subtype)}],
                "action": "R", "recorded": datetime.now(UTC).isoformat(timespec="seconds"), "outcome": "0",
                "agent": [{"who": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs_number}},
                           "requestor": False}],
                "source": {"observer": {"display": "Spine Desk"}},
                "outcomeDesc": reason}
        self._client.fhir("POST", f"{SCR_BASE}/AuditEvent", self._auth, body=body, headers=FHIR_JSON)

    def read(self, scr_id: str, nhs_number: str) -> ScrRecord:
        doc, _ = self._client.fhir("GET", f"{SCR_BASE}/Bundle", self._auth, params=[
            ("composition.identifier", scr_id),
            ("composition.subject:Patient.identifier", f"{NHS_NUMBER_SYSTEM}|{nhs_number}")])
        return parse_record(doc)

    def alerts(self, status: str = "open") -> tuple[PrivacyAlert, ...]:
        """The privacy officer's queue for their organisation (open, acknowledged or all)."""
        doc, _ = self._client.fhir("GET", f"{SCR_BASE}/alerts", self._auth, params=[("status", status)])
        return tuple(parse_alert(e.get("resource") or {}) for e in doc.get("entry") or ())

    def acknowledge(self, alert_id: str, note: str = "") -> None:
        body = {"resourceType": "Parameters", "parameter": [{"name": "note", "valueString": note}] if note else []}
        self._client.fhir("POST", f"{SCR_BASE}/alerts/{alert_id}/$acknowledge", self._auth, body=body,
                          headers=FHIR_JSON)

    def open_with_permission(self, nhs_number: str, scr_id: str, *, registered_here: bool) -> ScrRecord:
        if not registered_here:
            self.alert(nhs_number, SELF_CLAIM, OTHER, "Self-claimed legitimate relationship: caring for the patient")
        self.record_permission(nhs_number, True)
        return self.read(scr_id, nhs_number)

    def open_in_emergency(self, nhs_number: str, scr_id: str, reason: str, *, registered_here: bool) -> ScrRecord:
        if registered_here:
            self.alert(nhs_number, ACCESS_ALERT, EMERGENCY, reason)
        else:
            self.alert(nhs_number, SELF_CLAIM, EMERGENCY_SELF_CLAIM, reason)
        return self.read(scr_id, nhs_number)

    def open_under_legal_override(self, nhs_number: str, scr_id: str, basis: int, reason: str, *,
                                  registered_here: bool) -> ScrRecord:
        """B0082: a legal override (public interest, statute, court order) with the user's reason; the only thing
        that sets aside the patient's refusal in this episode. Alerts the privacy officer (type 1 also self-claims
        the relationship when the patient is registered elsewhere)."""
        if basis not in LEGAL_REASONS:
            raise ValueError(f"unknown legal basis {basis!r}")
        self.alert(nhs_number, ACCESS_ALERT if registered_here else SELF_CLAIM, basis, reason)
        return self.read(scr_id, nhs_number)
