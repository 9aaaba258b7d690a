"""Recording a Reasonable Adjustment flag (Patient Flags model): the draft the client edits, its checks, the FHIR
body, and the calls — create (POST), change (PUT with ``If-Match``), remove with a reason (``$removerarecord``).

The checks apply the flag's shared rules (:mod:`app.flag_rules`, the service's "Validation" in
docs/decisions/flags-api.md) so the user hears about a problem before anything is sent; the service stays the judge.
A version conflict raises :class:`app.errors.RecordChanged`: nothing is overwritten. The code tables are the
service's own data file (``resources/flags/codes.json``), read by :func:`app.flag_rules.load_codes`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from app.client.api import SpineApi
from app.client.models import Auth
from app.errors import RecordChanged, ServiceRejected
from app.flag_rules import (
    ATTORNEY_OR_DEPUTY,
    BESPOKE,
    BEST_INTEREST,
    CONSENT_GIVEN,
    EXT_CONSENT_CREATE,
    EXT_FLAG_NOTES,
    MAX_TEXT,
    NRAF,
    PARENTAL,
    PATIENT_CONSENT,
    SNOMED,
    SNOMED_ALIASES,
    FlagCodes,
    load_codes,
    needs_consent_summary,
    needs_impairment_note,
    prefer_not_to_say_with_others,
    repeated_groups,
    text_too_long,
)
from app.protocol import FLAGS_BASE, NHS_NUMBER_SYSTEM

_ETAG = re.compile(r'W/"(\d+)"')


@dataclass(frozen=True, slots=True)
class ImpairmentEntry:
    code: str  # RA-ConditionCode
    note: str = ""


@dataclass(frozen=True, slots=True)
class AdjustmentEntry:
    category: str  # RA-FlagCategory
    code: str = ""  # RA-FlagCode (SNOMED CT); a bespoke adjustment (011) may have text only
    text: str = ""
    note: str = ""


@dataclass(frozen=True)
class FlagDraft:
    consent: str = ""  # FlagProxyRole: 001 patient, 002 best-interest decision, 003 attorney or deputy
    consent_summary: str = ""  # how a best-interest decision was reached (required for 002)
    consent_by: str = ""  # the attorney or deputy (the Consent's performer)
    impairments: tuple[ImpairmentEntry, ...] = ()
    adjustments: tuple[AdjustmentEntry, ...] = ()
    notes: str = ""


@dataclass(frozen=True)
class EditableFlag:
    flag_id: str
    nhs_number: str
    version: int
    draft: FlagDraft = field(default_factory=FlagDraft)


def draft_problems(draft: FlagDraft, codes: FlagCodes) -> list[str]:
    """What must change before this can be recorded (empty when it can be sent)."""
    problems = []
    if draft.consent not in (PATIENT_CONSENT, BEST_INTEREST, ATTORNEY_OR_DEPUTY, PARENTAL):
        problems.append("Say who consented to recording the flag: the patient, a best-interest decision, or an "
                        "attorney or deputy.")
    if needs_consent_summary(draft.consent) and not draft.consent_summary.strip():
        problems.append("A best-interest decision (Mental Capacity Act 2005) needs a summary of how it was reached.")
    if draft.consent == ATTORNEY_OR_DEPUTY and not draft.consent_by.strip():
        problems.append("Name the attorney or deputy who consented.")
    if not draft.impairments and not draft.adjustments:
        problems.append("Choose at least one impairment group or adjustment.")
    groups = [i.code for i in draft.impairments]
    if repeated_groups(groups):
        problems.append("Each impairment group can be chosen once.")
    if prefer_not_to_say_with_others(groups):
        problems.append("'Patient would prefer not to say' cannot be recorded with other impairment groups.")
    for i in draft.impairments:
        if i.code not in codes.impairment.codes:
            problems.append(f"Unknown impairment group '{i.code}'.")
        if needs_impairment_note(i.code) and not i.note.strip():
            problems.append("'Other (please specify)': describe the impairment.")
    for n, a in enumerate(draft.adjustments, 1):
        if a.category not in codes.adjustment_category.codes:
            problems.append(f"Adjustment {n}: choose its category.")
        elif a.category == BESPOKE and not (a.code or a.text.strip()):
            problems.append(f"Adjustment {n}: describe the bespoke adjustment.")
        elif a.category != BESPOKE and a.code not in codes.adjustment.codes:
            problems.append(f"Adjustment {n}: choose the adjustment from the list.")
    texts = [draft.consent_summary, draft.consent_by, draft.notes, *(i.note for i in draft.impairments),
             *(t for a in draft.adjustments for t in (a.text, a.note))]
    if any(text_too_long(t) for t in texts):
        problems.append(f"Each text can be at most {MAX_TEXT} characters.")
    return problems


def _nraf(codes: FlagCodes) -> dict[str, Any]:
    return {"coding": [codes.category.coding(NRAF)]}


def _note(text: str) -> list[dict[str, Any]]:
    return [{"url": EXT_FLAG_NOTES, "valueAnnotation": {"text": text.strip()}}] if text.strip() else []


def flag_body(nhs: str, draft: FlagDraft, codes: FlagCodes, *, flag_id: str | None = None) -> dict[str, Any]:
    """The PatientFlag to send (the service writes meta, provenance, period and the detail references)."""
    subject = {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs}}
    consent: dict[str, Any] = {"resourceType": "Consent", "status": "active", "category": [_nraf(codes)],
                               "policyRule": {"coding": [codes.proxy_role.coding(draft.consent)]},
                               "provision": {"purpose": [codes.consent_purpose.coding(CONSENT_GIVEN)]}}
    if draft.consent_summary.strip():
        consent["extension"] = [{"url": EXT_CONSENT_CREATE, "valueAnnotation": {"text": draft.consent_summary.strip()}}]
    if draft.consent_by.strip():
        consent["performer"] = [{"display": draft.consent_by.strip()}]
    contained: list[dict[str, Any]] = [consent]
    for i in draft.impairments:
        condition: dict[str, Any] = {"resourceType": "Condition", "category": [_nraf(codes)],
                                     "code": {"coding": [codes.impairment.coding(i.code)]}, "subject": subject}
        if i.note.strip():
            condition["note"] = [{"text": i.note.strip()}]
        contained.append(condition)
    for a in draft.adjustments:
        code: dict[str, Any] = {}
        if a.code:
            code["coding"] = [{"system": SNOMED, "code": a.code, "display": codes.adjustment.codes.get(a.code, "")}]
        if a.text.strip():
            code["text"] = a.text.strip()
        item = {"resourceType": "Flag", "status": "active",
                "category": [_nraf(codes), {"coding": [codes.adjustment_category.coding(a.category)]}],
                "code": code, "subject": subject}
        if extension := _note(a.note):
            item["extension"] = extension
        contained.append(item)
    body: dict[str, Any] = {"resourceType": "Flag", **({"id": flag_id} if flag_id else {}), "contained": contained,
                            "status": "active", "category": [_nraf(codes)], "code": _nraf(codes), "subject": subject}
    if extension := _note(draft.notes):
        body["extension"] = extension
    return body


def _code(concept: Any, system: str) -> str:
    for coding in (concept or {}).get("coding") or ():
        if coding.get("system") == system:
            return str(coding.get("code") or "")
    return ""


def _annotation(extensions: Any, url: str) -> str:
    for ext in extensions or ():
        if ext.get("url") == url:
            return str((ext.get("valueAnnotation") or {}).get("text") or "")
    return ""


def draft_from_resource(resource: dict[str, Any], codes: FlagCodes) -> FlagDraft:
    """What a stored flag says, as a draft to edit (clinical roles' full view)."""
    contained = resource.get("contained") or []
    consent: dict[str, Any] = next((c for c in contained if c.get("resourceType") == "Consent"), {})
    impairments = tuple(ImpairmentEntry(_code(c.get("code"), codes.impairment.system),
                                        " ".join(n.get("text", "") for n in c.get("note") or ()))
                        for c in contained if c.get("resourceType") == "Condition")
    adjustments = []
    for c in contained:
        if c.get("resourceType") != "Flag":
            continue
        category = next((x for x in (_code(cat, codes.adjustment_category.system) for cat in c.get("category") or ())
                         if x), "")
        concept = c.get("code") or {}
        systems = (SNOMED, *sorted(SNOMED_ALIASES - {SNOMED}))
        snomed = next((code for system in systems if (code := _code(concept, system))), "")
        adjustments.append(AdjustmentEntry(category, snomed, str(concept.get("text") or ""),
                                           _annotation(c.get("extension"), EXT_FLAG_NOTES)))
    return FlagDraft(consent=_code(consent.get("policyRule"), codes.proxy_role.system),
                     consent_summary=_annotation(consent.get("extension"), EXT_CONSENT_CREATE),
                     consent_by=str(((consent.get("performer") or [{}])[0]).get("display") or ""),
                     impairments=impairments, adjustments=tuple(adjustments),
                     notes=_annotation(resource.get("extension"), EXT_FLAG_NOTES))


def _version(etag: str | None, resource: dict[str, Any]) -> int:
    match = _ETAG.fullmatch((etag or "").strip())
    return int(match.group(1)) if match else int((resource.get("meta") or {}).get("versionId") or 0)


def _conflict(exc: ServiceRejected, nhs: str) -> BaseException:
    return RecordChanged(nhs) if exc.status == 409 and exc.code == "RESOURCE_VERSION_MISMATCH" else exc


class FlagEditClient:
    """The service calls that edit a flag: the writes a role with ``flags.create`` / ``flags.update`` /
    ``flags.remove`` may make, and the read a change starts from."""

    def __init__(self, client: SpineApi, auth: Auth, codes: FlagCodes | None = None) -> None:
        self._client, self._auth = client, auth
        self.codes = codes or load_codes()

    def _editable(self, doc: Any, etag: str | None, nhs: str) -> EditableFlag:
        return EditableFlag(str(doc.get("id") or ""), nhs, _version(etag, doc), draft_from_resource(doc, self.codes))

    def read(self, flag_id: str, nhs: str) -> EditableFlag:
        """The flag as it is now (its version is what a change will be sent against)."""
        doc, etag = self._client.fhir("GET", f"{FLAGS_BASE}/Flag/{flag_id}", self._auth)
        return self._editable(doc, etag, nhs)

    def create(self, nhs: str, draft: FlagDraft) -> EditableFlag:
        doc, etag = self._client.fhir("POST", f"{FLAGS_BASE}/Flag", self._auth, body=flag_body(nhs, draft, self.codes),
                                      headers={"Content-Type": "application/fhir+json"})
        return self._editable(doc, etag, nhs)

    def update(self, flag: EditableFlag, draft: FlagDraft) -> EditableFlag:
        """PUT with ``If-Match`` for the version read: a change made meanwhile raises ``RecordChanged``."""
        try:
            doc, etag = self._client.fhir(
                "PUT", f"{FLAGS_BASE}/Flag/{flag.flag_id}", self._auth,
                body=flag_body(flag.nhs_number, draft, self.codes, flag_id=flag.flag_id),
                headers={"Content-Type": "application/fhir+json", "If-Match": f'W/"{flag.version}"'})
        except ServiceRejected as exc:
            raise _conflict(exc, flag.nhs_number) from exc
        return self._editable(doc, etag, flag.nhs_number)

    def remove(self, flag: EditableFlag, reason: str, comment: str) -> None:
        """``$removerarecord``: kept as history with the reason (DoesntApply or Error) and the comment."""
        body = {"resourceType": "Parameters", "parameter": [
            {"name": "nhsNumber", "valueString": flag.nhs_number},
            {"name": "removalReason", "valueCodeableConcept": {"coding": [self.codes.removal_reason.coding(reason)]}},
            {"name": "supportingComment", "valueString": comment.strip()}]}
        try:
            self._client.fhir("POST", f"{FLAGS_BASE}/$removerarecord", self._auth, body=body,
                              headers={"Content-Type": "application/fhir+json", "If-Match": f'W/"{flag.version}"'})
        except ServiceRejected as exc:
            raise _conflict(exc, flag.nhs_number) from exc
