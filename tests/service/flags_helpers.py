"""Shared by the flags tests: request bodies, the IG's examples, and a conformance check against the IG profiles.

``check_conformance`` checks what can be checked without a FHIR validator: the PatientFlag profile's required
elements and bindings, the contained FlagConsent / FlagCondition / ProgrammeFlag / FlagProvenance profiles (required
elements, code systems and codes from ``resources/flags/codes.json``), and FHIR's own rules the shape relies on
(contained resources referenced, no nested contained, no clinicalStatus on an entered-in-error Condition).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from app.nhs_number import NHS_NUMBER_SYSTEM, is_valid
from app.service.flags import codes as fc

CODES = fc.load_codes()
EXAMPLES = Path(__file__).parent / "data" / "flags_ig_examples.json"
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
REMOVE_SYSTEM = CODES.removal_reason.system


def ig_examples() -> dict[str, dict[str, Any]]:
    doc = json.loads(EXAMPLES.read_text(encoding="utf-8"))
    return {r["id"]: r for r in doc["resources"]}


def consent(role: str = "001", *, summary: str | None = None, purpose: str = "RACONSENT") -> dict[str, Any]:
    doc: dict[str, Any] = {"resourceType": "Consent", "status": "active",
                           "policyRule": {"coding": [{"system": CODES.proxy_role.system, "code": role}]},
                           "provision": {"purpose": [{"system": CODES.consent_purpose.system, "code": purpose}]}}
    if summary:
        doc["extension"] = [{"url": fc.EXT_CONSENT_CREATE, "valueAnnotation": {"text": summary}}]
    return doc


def impairment(code: str, note: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"resourceType": "Condition",
                           "code": {"coding": [{"system": CODES.impairment.system, "code": code}]}}
    if note:
        doc["note"] = [{"text": note}]
    return doc


def adjustment(category: str, code: str | None = None, *, text: str | None = None,
               note: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {}
    if code:
        concept["coding"] = [{"system": fc.SNOMED, "code": code}]
    if text:
        concept["text"] = text
    doc: dict[str, Any] = {"resourceType": "Flag", "status": "active", "code": concept, "category": [
        {"coding": [{"system": CODES.adjustment_category.system, "code": category}]}]}
    if note:
        doc["extension"] = [{"url": fc.EXT_FLAG_NOTES, "valueAnnotation": {"text": note}}]
    return doc


BSL = "204331000000107"  # British Sign Language interpreter needed (category 002)
EASYREAD = "796161000000101"  # Requires information in Easyread (category 004)


def flag_body(nhs: str = "9000000009", *, contained: list[dict[str, Any]] | None = None,
              notes: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resourceType": "Flag", "status": "active",
        "code": {"coding": [{"system": fc.CATEGORY_SYSTEM, "code": "NRAF"}]},
        "subject": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs}},
        "contained": contained if contained is not None else [
            consent(), impairment("2"), impairment("5"), adjustment("002", BSL), adjustment("004", EASYREAD)]}
    if notes:
        doc["extension"] = [{"url": fc.EXT_FLAG_NOTES, "valueAnnotation": {"text": notes}}]
    return doc


def removal(nhs: str = "9000000009", reason: str = "DoesntApply", comment: str = "No longer applies"
            ) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [{"name": "removeRARecord", "part": [
        {"name": "nhsNumber", "valueString": nhs},
        {"name": "removalReason", "valueCodeableConcept": {"coding": [{"system": REMOVE_SYSTEM, "code": reason}]}},
        {"name": "supportingComment", "valueString": comment}]}]}


def ig_patient_flag(nhs: str = "9912003888") -> dict[str, Any]:
    """The IG's RA record example (PatientFlag + Consent + Conditions + adjustment Flags) as one body: the
    details contained (their own nested provenance dropped, as FHIR requires), the patient by NHS number."""
    ex = ig_examples()
    body = copy.deepcopy(ex["RAPatientFlagExample1"])
    details = []
    for name in ("RAConsentExample1", "RAConditionExample1", "RAConditionExample2", "RAFlagExample1",
                 "RAFlagExample2"):
        item = copy.deepcopy(ex[name])
        item.pop("contained", None)
        details.append(item)
    body["contained"] = [*body.get("contained", []), *details]
    body["subject"] = {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs}}
    return body


# --- conformance -----------------------------------------------------------------------------------------------


def _codes_of(concept: dict[str, Any] | None) -> set[tuple[str, str]]:
    return {(c.get("system"), c.get("code")) for c in (concept or {}).get("coding", [])}


def _has(concepts: list[dict[str, Any]], table: fc.CodeTable) -> list[str]:
    return [code for c in concepts for system, code in _codes_of(c) if system == table.system]


def check_conformance(flag: dict[str, Any]) -> list[str]:
    """Problems with ``flag`` against the PatientFlag profile and its contained profiles ([] = conformant)."""
    problems: list[str] = []

    def need(ok: object, what: str) -> None:
        if not ok:
            problems.append(what)

    need(flag.get("resourceType") == "Flag", "resourceType Flag")
    need(FHIR_ID.match(str(flag.get("id", ""))), "id is a FHIR id")
    meta = flag.get("meta", {})
    need(fc.PROFILE_PATIENT_FLAG in meta.get("profile", []), "meta.profile PatientFlag")
    need(str(meta.get("versionId", "")).isdigit(), "meta.versionId")
    need(INSTANT.match(str(meta.get("lastUpdated", ""))), "meta.lastUpdated instant")
    need(flag.get("status") in ("active", "inactive", "entered-in-error"), "status")
    need((fc.CATEGORY_SYSTEM, "NRAF") in _codes_of(flag.get("code")), "code from PatientFlagCategory (required)")
    need(all(s != fc.CATEGORY_SYSTEM or c in CODES.category.codes for s, c in _codes_of(flag.get("code"))),
         "code in PatientFlagCategory")
    ident = flag.get("subject", {}).get("identifier", {})
    need(ident.get("system") == NHS_NUMBER_SYSTEM and is_valid(ident.get("value")), "subject NHS number")
    need(INSTANT.match(str(flag.get("period", {}).get("start", ""))), "period.start")
    contained = flag.get("contained", [])
    ids = [c.get("id") for c in contained]
    need(len(ids) == len(set(ids)) and all(FHIR_ID.match(str(i)) for i in ids), "contained ids unique")
    need(all("contained" not in c for c in contained), "no nested contained")
    provenances = [c for c in contained if c.get("resourceType") == "Provenance"]
    need(len(provenances) == 1, "contained provenance 1..1")
    for p in provenances:
        need(fc.PROFILE_PROVENANCE in p.get("meta", {}).get("profile", []), "provenance profile")
        need(p.get("target") == [{"reference": "#"}], "provenance targets the flag")
        need(INSTANT.match(str(p.get("recorded", ""))), "provenance.recorded")
        agent = (p.get("agent") or [{}])[0]
        need(agent.get("who", {}).get("identifier", {}).get("value"), "provenance agent.who")
        need(agent.get("who", {}).get("type", "Practitioner") == "Practitioner", "agent.who Practitioner")
        need(agent.get("onBehalfOf", {}).get("identifier", {}).get("value"), "provenance agent.onBehalfOf")
        need(_codes_of(p.get("activity")) <= {(fc.DATA_OPERATION, a) for a in ("CREATE", "UPDATE", "DELETE",
                                                                                   "NULLIFY")}, "activity")
    refs = {e["valueReference"]["reference"] for e in flag.get("extension", []) if e.get("url") == fc.EXT_FLAG_DETAIL}
    need(refs == {f"#{c['id']}" for c in contained if c.get("resourceType") != "Provenance"},
         "every detail referenced by flag-detail and every flag-detail resolves")
    for ext in flag.get("extension", []):
        if ext.get("url") == fc.EXT_FLAG_NOTES:
            need(ext.get("valueAnnotation", {}).get("text"), "flagNotes valueAnnotation")
    for c in contained:
        kind = c.get("resourceType")
        if kind == "Consent":
            problems += [f"Consent: {p}" for p in _consent_problems(c)]
        elif kind == "Condition":
            problems += [f"Condition {c.get('id')}: {p}" for p in _condition_problems(c)]
        elif kind == "Flag":
            problems += [f"Flag {c.get('id')}: {p}" for p in _programme_problems(c)]
        elif kind != "Provenance":
            problems.append(f"unexpected contained {kind}")
    return problems


def _consent_problems(c: dict[str, Any]) -> list[str]:
    out = []
    if fc.PROFILE_CONSENT not in c.get("meta", {}).get("profile", []):
        out.append("profile")
    if c.get("status") not in ("active", "inactive", "entered-in-error"):
        out.append("status")
    if not c.get("scope") or not c.get("category"):
        out.append("scope and category (base Consent 1..1, 1..*)")
    if "NRAF" not in [code for cat in c.get("category", []) for s, code in _codes_of(cat) if s == fc.CATEGORY_SYSTEM]:
        out.append("category NRAF")
    if len(c.get("policy", [])) != 1 or not c["policy"][0].get("uri"):
        out.append("policy 1..1 with uri")
    roles = _has([c.get("policyRule", {})], CODES.proxy_role)
    if not roles or any(r not in CODES.proxy_role.codes for r in roles):
        out.append("policyRule from FlagProxyRole")
    purposes = [p for p in c.get("provision", {}).get("purpose", []) if p.get("system") == CODES.consent_purpose.system]
    if len(purposes) != 1 or purposes[0].get("code") not in CODES.consent_purpose.codes:
        out.append("provision.purpose 1..1 from FlagConsentPurpose")
    if len(c.get("performer", [])) > 1:
        out.append("performer ..1")
    return out


def _condition_problems(c: dict[str, Any]) -> list[str]:
    out = []
    if fc.PROFILE_CONDITION not in c.get("meta", {}).get("profile", []):
        out.append("profile")
    cats = c.get("category", [])
    if "NRAF" not in [code for s, code in set().union(*map(_codes_of, cats)) if s == fc.CATEGORY_SYSTEM]:
        out.append("category[patientFlag] NRAF 1..")
    if not set(_has(cats, CODES.condition_category)) & set(CODES.condition_category.codes):
        out.append("category[conditionCategory] 1..")
    codes = _has([c.get("code", {})], CODES.impairment)
    if len(codes) != 1 or codes[0] not in CODES.impairment.codes:
        out.append("code from RA-ConditionCode")
    if "clinicalStatus" in c and "verificationStatus" in c:
        out.append("con-5: no clinicalStatus when entered-in-error")
    if not c.get("subject"):
        out.append("subject 1..1")
    return out


def _programme_problems(c: dict[str, Any]) -> list[str]:
    out = []
    if fc.PROFILE_PROGRAMME_FLAG not in c.get("meta", {}).get("profile", []):
        out.append("profile")
    cats = c.get("category", [])
    if "NRAF" not in [code for s, code in set().union(*map(_codes_of, cats)) if s == fc.CATEGORY_SYSTEM]:
        out.append("category[patientFlag] NRAF 1..")
    cat = _has(cats, CODES.adjustment_category)
    if len(cat) != 1 or cat[0] not in CODES.adjustment_category.codes:
        out.append("category[programmeFlag] from RA-FlagCategory 1..")
    snomed = [code for s, code in _codes_of(c.get("code")) if s == fc.SNOMED]
    if cat and cat[0] != "011" and (len(snomed) != 1 or snomed[0] not in CODES.adjustment.codes):
        out.append("code from RA-FlagCode")
    if not snomed and not c.get("code", {}).get("text"):
        out.append("code 1..1 (coding or text)")
    if c.get("status") not in ("active", "inactive", "entered-in-error") or not c.get("subject"):
        out.append("status and subject 1..1")
    return out
