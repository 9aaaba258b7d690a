"""Reading what clients send to the flags service: Flag bodies, search parameters and removal Parameters.

Every problem is a ``FhirError`` naming the element (``expression``) and saying what to send instead. A Flag body
is a PatientFlag (code NRAF) with its details contained: exactly one Consent (FlagConsent), Conditions for the
impairments (FlagCondition) and Flags for the adjustments (ProgrammeFlag). Server-owned parts (``meta``,
provenance, ``period``, the flag-detail references) are ignored on input and written by the service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.nhs_number import NHS_NUMBER_SYSTEM, is_valid
from app.service.core.outcome import FhirError, additional_properties, invalid_search_data, quote_value
from app.service.flags.codes import (
    CATEGORY_SYSTEM,
    EXT_CONSENT_CREATE,
    EXT_CONSENT_REMOVE,
    EXT_FLAG_DETAIL,
    EXT_FLAG_NOTES,
    LEGACY_CATEGORY_SYSTEM,
    NRAF,
    SNOMED_ALIASES,
    FlagCodes,
)
from app.service.flags.model import (
    ACTIVE,
    BESPOKE,
    BEST_INTEREST,
    CONSENT_GIVEN,
    OTHER_IMPAIRMENT,
    PREFER_NOT_TO_SAY,
    STATUSES,
    Adjustment,
    Consent,
    Impairment,
    RaContent,
    Removal,
)

MAX_TEXT = 1000  # characters in one free-text item
MAX_ITEMS = 50  # impairments or adjustments in one record
FLAG_KEYS = frozenset({"resourceType", "id", "meta", "text", "contained", "extension", "status", "category", "code",
                       "subject", "period"})
SEARCH_PARAMS = frozenset({"patient", "category", "status", "code", "_include"})
MEDIA_TYPES = frozenset({"application/fhir+json", "application/json"})


def bad(what: str, problem: str, *, code: str = "INVALID_VALUE") -> FhirError:
    return FhirError(code, f"Invalid value in '{what}': {problem}", expression=what)


def missing(what: str, hint: str) -> FhirError:
    return FhirError("MISSING_VALUE", f"Missing value - '{what}': {hint}", expression=what)


def check_content_type(value: str | None) -> None:
    media = (value or "").split(";", 1)[0].strip().lower()
    if media not in MEDIA_TYPES:
        raise FhirError("UNSUPPORTED_MEDIA_TYPE", f"Content-Type '{quote_value(value or '')}' is not supported; "
                        "send the body as application/fhir+json", status=415)


# --- small readers -------------------------------------------------------------------------------------------


def _obj(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(where, "expected a JSON object")
    return value


def _list(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad(where, "expected a JSON array")
    return value


def _text(value: object, where: str, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise missing(where, "give a short text")
        return None
    if not isinstance(value, str) or not value.strip():
        raise bad(where, "expected a non-empty string")
    if len(value) > MAX_TEXT:
        raise bad(where, f"text longer than {MAX_TEXT} characters")
    return value.strip()


def _codings(concept: object, where: str) -> list[dict[str, Any]]:
    concept = _obj(concept, where) if concept is not None else {}
    codings = _list(concept.get("coding"), f"{where}.coding")
    for i, c in enumerate(codings):
        _obj(c, f"{where}.coding[{i}]")
        for key in ("system", "code", "display"):
            if key in c and not isinstance(c[key], str):
                raise bad(f"{where}.coding[{i}].{key}", "expected a string")
    return codings


def _code_in(concepts: Sequence[object], systems: frozenset[str], where: str) -> tuple[str, dict[str, Any]] | None:
    """The first coding (and where it is) from one of ``systems`` among CodeableConcepts."""
    for i, concept in enumerate(concepts):
        for j, c in enumerate(_codings(concept, f"{where}[{i}]")):
            if c.get("system") in systems:
                return f"{where}[{i}].coding[{j}].code", c
    return None


def _known(table_codes: Mapping[str, str], code: object, where: str, name: str) -> str:
    if not isinstance(code, str) or code not in table_codes:
        allowed = ", ".join(table_codes) if len(table_codes) <= 12 else "the codes of the value set"
        raise bad(where, f"unknown {name} code '{quote_value(code)}'; use one of {allowed}")
    return code


def _check_nraf(concepts: Sequence[object], codes: FlagCodes, where: str) -> None:
    found = _code_in(concepts, frozenset({CATEGORY_SYSTEM}), where)
    if found is not None and found[1].get("code") != NRAF:
        code = _known(codes.category.codes, found[1].get("code"), found[0], "patient flag category")
        raise bad(found[0], f"this service records Reasonable Adjustment flags (NRAF) only, not {code}")


def _annotation(ext: dict[str, Any], where: str) -> str | None:
    value = _obj(ext.get("valueAnnotation"), f"{where}.valueAnnotation")
    return _text(value.get("text"), f"{where}.valueAnnotation.text", required=True)


def _status(value: object, where: str) -> None:
    if value is not None and value != ACTIVE:
        raise bad(where, f"'{quote_value(value)}' cannot be recorded; records are created and updated as active "
                  "(remove a record with POST $removerarecord)")


# --- Flag bodies ---------------------------------------------------------------------------------------------


def subject_nhs(body: object) -> str | None:
    """The NHS number a Flag body is about (best effort, for the audit record before validation)."""
    try:
        return _subject(_obj(body, "Flag").get("subject"))
    except FhirError:
        return None


def _subject(subject: object) -> str:
    where = "Flag.subject"
    if subject is None:
        raise missing(f"{where}.identifier", f"name the patient by NHS number ({NHS_NUMBER_SYSTEM})")
    subject = _obj(subject, where)
    identifier = subject.get("identifier")
    if identifier is not None:
        identifier = _obj(identifier, f"{where}.identifier")
        if identifier.get("system") != NHS_NUMBER_SYSTEM:
            raise bad(f"{where}.identifier.system", f"the patient must be identified by {NHS_NUMBER_SYSTEM}")
        value = identifier.get("value")
    else:
        reference = subject.get("reference")
        value = reference.rsplit("/", 1)[-1] if isinstance(reference, str) and "/Patient/" in f"/{reference}" else None
        if value is None:
            raise missing(f"{where}.identifier", f"name the patient by NHS number ({NHS_NUMBER_SYSTEM})")
    if not isinstance(value, str) or not is_valid(value):
        raise FhirError("INVALID_RESOURCE_ID", f"'{quote_value(value)}' is not a valid NHS number (ten digits "
                        "with a correct modulus 11 check digit)", expression=f"{where}.identifier.value")
    return value


def parse_flag(body: object, codes: FlagCodes, *, flag_id: str | None = None) -> tuple[str, RaContent]:
    """The patient's NHS number and the record's content from a PatientFlag body; raises ``FhirError``."""
    if not isinstance(body, dict) or body.get("resourceType") != "Flag":
        raise FhirError("INVALID_VALUE", "The body must be a FHIR Flag resource (resourceType 'Flag')",
                        expression="Flag.resourceType")
    extra = sorted(k for k in body if k not in FLAG_KEYS)
    if extra:
        raise additional_properties(extra)
    if flag_id is not None and body.get("id") not in (None, flag_id):
        raise bad("Flag.id", f"'{quote_value(body.get('id'))}' does not match the flag in the URL ({flag_id})")
    _status(body.get("status"), "Flag.status")
    _check_nraf(_list(body.get("category"), "Flag.category"), codes, "Flag.category")
    if body.get("code") is not None:
        _check_nraf([body["code"]], codes, "Flag.code")
    nhs = _subject(body.get("subject"))
    notes = None
    for i, ext in enumerate(_list(body.get("extension"), "Flag.extension")):
        where = f"Flag.extension[{i}]"
        url = _obj(ext, where).get("url")
        if url == EXT_FLAG_NOTES:
            notes = _annotation(ext, where)
        elif url != EXT_FLAG_DETAIL:  # detail references are the service's to write
            raise bad(f"{where}.url", f"unknown extension '{quote_value(url)}'")
    consents, impairments, adjustments = [], [], []
    for i, item in enumerate(_list(body.get("contained"), "Flag.contained")):
        where = f"Flag.contained[{i}]"
        kind = _obj(item, where).get("resourceType")
        if kind == "Consent":
            consents.append(parse_consent(item, codes, where))
        elif kind == "Condition":
            impairments.append(parse_impairment(item, codes, where))
        elif kind == "Flag":
            adjustments.append(parse_adjustment(item, codes, where))
        elif kind != "Provenance":  # provenance is the service's to write
            raise bad(f"{where}.resourceType", f"'{quote_value(kind)}' cannot be part of a flag; contain a "
                      "Consent, Conditions (impairments) and Flags (adjustments)")
    if not consents:
        raise missing("Flag.contained.Consent", "a flag needs the consent to record it: contain a Consent with "
                      "policyRule (FlagProxyRole: 001 patient, 002 best-interest decision, 003 attorney or "
                      "deputy, 004 parental responsibility)")
    if len(consents) > 1:
        raise bad("Flag.contained.Consent", "contain exactly one Consent", code="TOO_MANY_VALUES_SUBMITTED")
    if len(impairments) > MAX_ITEMS or len(adjustments) > MAX_ITEMS:
        raise bad("Flag.contained", f"at most {MAX_ITEMS} impairments and {MAX_ITEMS} adjustments",
                  code="TOO_MANY_VALUES_SUBMITTED")
    impairment_codes = [i.code for i in impairments]
    if len(set(impairment_codes)) != len(impairment_codes):
        raise bad("Flag.contained.Condition", "each impairment group may be recorded once")
    if PREFER_NOT_TO_SAY in impairment_codes and len(impairments) > 1:
        raise bad("Flag.contained.Condition", "'Patient would prefer not to say' cannot be recorded with other "
                  "impairments")
    return nhs, RaContent(consents[0], tuple(impairments), tuple(adjustments), notes)


def parse_consent(item: dict[str, Any], codes: FlagCodes, where: str) -> Consent:
    _status(item.get("status"), f"{where}.status")
    _check_nraf(_list(item.get("category"), f"{where}.category"), codes, f"{where}.category")
    role = _code_in([item.get("policyRule")], frozenset({codes.proxy_role.system}), f"{where}.policyRule")
    if role is None:
        raise missing(f"{where}.policyRule", f"say who consented: a coding from {codes.proxy_role.system}")
    proxy = _known(codes.proxy_role.codes, role[1].get("code"), role[0], "consent (FlagProxyRole)")
    provision = _obj(item.get("provision") or {}, f"{where}.provision")
    # provision.purpose is a list of Codings (not CodeableConcepts)
    purposes = _codings({"coding": provision.get("purpose")}, f"{where}.provision.purpose")
    purpose = next(((f"{where}.provision.purpose[{i}].code", c) for i, c in enumerate(purposes)
                    if c.get("system") == codes.consent_purpose.system), None)
    if purpose is None:
        raise missing(f"{where}.provision.purpose", f"give the consent's purpose ({codes.consent_purpose.system}"
                      f"|{CONSENT_GIVEN})")
    code = _known(codes.consent_purpose.codes, purpose[1].get("code"), purpose[0], "consent purpose")
    if code != CONSENT_GIVEN:
        raise bad(purpose[0], "a flag can only be recorded with consent (RACONSENT); when the patient dissents "
                  "or revokes consent, record no flag, or remove the existing one with POST $removerarecord")
    summary = None
    for i, ext in enumerate(_list(item.get("extension"), f"{where}.extension")):
        url = _obj(ext, f"{where}.extension[{i}]").get("url")
        if url == EXT_CONSENT_CREATE:
            summary = _annotation(ext, f"{where}.extension[{i}]")
        elif url != EXT_CONSENT_REMOVE:
            raise bad(f"{where}.extension[{i}].url", f"unknown extension '{quote_value(url)}'")
    if proxy == BEST_INTEREST and summary is None:
        raise missing(f"{where}.extension.createSummary", "a best-interest decision (Mental Capacity Act 2005) "
                      f"needs a summary of how it was reached ({EXT_CONSENT_CREATE})")
    performer = None
    if item.get("performer") is not None:
        performers = _list(item.get("performer"), f"{where}.performer")
        if len(performers) > 1:
            raise bad(f"{where}.performer", "at most one performer", code="TOO_MANY_VALUES_SUBMITTED")
        if performers:
            performer = _text(_obj(performers[0], f"{where}.performer[0]").get("display"),
                              f"{where}.performer[0].display")
    return Consent(proxy, summary, performer)


def parse_impairment(item: dict[str, Any], codes: FlagCodes, where: str) -> Impairment:
    clinical = _code_in([item.get("clinicalStatus")], frozenset({"http://terminology.hl7.org/CodeSystem/"
                                                                  "condition-clinical"}), f"{where}.clinicalStatus")
    if clinical is not None and clinical[1].get("code") != "active":
        raise bad(clinical[0], "impairments are recorded as active")
    categories = _list(item.get("category"), f"{where}.category")
    _check_nraf(categories, codes, f"{where}.category")
    found = _code_in(categories, frozenset({codes.condition_category.system}), f"{where}.category")
    if found is not None:
        _known(codes.condition_category.codes, found[1].get("code"), found[0], "condition category")
    code = _code_in([item.get("code")], frozenset({codes.impairment.system}), f"{where}.code")
    if code is None:
        raise missing(f"{where}.code", f"code the impairment group from {codes.impairment.system}")
    group = _known(codes.impairment.codes, code[1].get("code"), code[0], "impairment (RA-ConditionCode)")
    notes = _list(item.get("note"), f"{where}.note")
    note = _text(_obj(notes[0], f"{where}.note[0]").get("text"), f"{where}.note[0].text") if notes else None
    note = note or _text(_obj(item.get("code"), f"{where}.code").get("text"), f"{where}.code.text")
    if group == OTHER_IMPAIRMENT and note is None:
        raise missing(f"{where}.note", "'Other (please specify)' needs the impairment described in note[0].text")
    return Impairment(group, note)


def parse_adjustment(item: dict[str, Any], codes: FlagCodes, where: str) -> Adjustment:
    _status(item.get("status"), f"{where}.status")
    categories = _list(item.get("category"), f"{where}.category")
    _check_nraf(categories, codes, f"{where}.category")
    found = _code_in(categories, frozenset({codes.adjustment_category.system}), f"{where}.category")
    if found is None:
        raise missing(f"{where}.category", f"give the adjustment category from {codes.adjustment_category.system}")
    category = _known(codes.adjustment_category.codes, found[1].get("code"), found[0], "adjustment category")
    concept = _obj(item.get("code") or {}, f"{where}.code")
    text = _text(concept.get("text"), f"{where}.code.text")
    snomed = _code_in([concept], SNOMED_ALIASES, f"{where}.code")
    code = display = None
    if snomed is not None:
        code = snomed[1].get("code")
        if category == BESPOKE:
            if not isinstance(code, str) or not code.isdigit() or not 6 <= len(code) <= 18:
                raise bad(snomed[0], f"'{quote_value(code)}' is not a SNOMED CT concept id")
            display = _text(snomed[1].get("display"), f"{snomed[0][:-5]}.display")
        else:
            code = _known(codes.adjustment.codes, code, snomed[0], "adjustment (RA-FlagCode value set)")
            display = codes.adjustment.codes[code]
    elif category != BESPOKE or text is None:
        raise missing(f"{where}.code", "code the adjustment in SNOMED CT from the RA-FlagCode value set (a "
                      "bespoke adjustment (011) may instead be described in code.text)")
    note = None
    for i, ext in enumerate(_list(item.get("extension"), f"{where}.extension")):
        url = _obj(ext, f"{where}.extension[{i}]").get("url")
        if url != EXT_FLAG_NOTES:
            raise bad(f"{where}.extension[{i}].url", f"unknown extension '{quote_value(url)}'")
        note = _annotation(ext, f"{where}.extension[{i}]")
    return Adjustment(category, code, display, text, note)


# --- search and removal --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlagSearch:
    nhs_number: str
    statuses: tuple[str, ...] | None  # None: every status
    nraf: bool  # False: the category/code asked for holds no NRAF flags (answer: an empty Bundle)


def _single(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise invalid_search_data(f"{name} may be given once (use commas for alternatives)")
    return values[0]


def _tokens(value: str, name: str, codes: FlagCodes) -> set[str]:
    found = set()
    for token in value.split(","):
        system, _, code = token.rpartition("|")
        if system not in ("", CATEGORY_SYSTEM, LEGACY_CATEGORY_SYSTEM) or code not in codes.category.codes:
            raise invalid_search_data(f"{name} '{quote_value(token)}' is not a patient flag category; use "
                                      f"{CATEGORY_SYSTEM}|NRAF")
        found.add(code)
    return found


def parse_search(query: Mapping[str, list[str]], codes: FlagCodes) -> FlagSearch:
    extra = sorted(k for k in query if k not in SEARCH_PARAMS)
    if extra:
        raise additional_properties(extra)
    patient = _single(query, "patient")
    if patient is None or patient == "":
        raise FhirError("MISSING_VALUE", "Missing value - 'patient': give the patient's NHS number, e.g. "
                        f"patient={NHS_NUMBER_SYSTEM}|9000000009", issue_code="structure")
    system, _, nhs = patient.rpartition("|")
    if system not in ("", NHS_NUMBER_SYSTEM) or not is_valid(nhs):
        raise FhirError("INVALID_RESOURCE_ID", f"patient '{quote_value(patient)}' is not a valid NHS number")
    nraf = True
    for name in ("category", "code"):
        value = _single(query, name)
        if value is not None and NRAF not in _tokens(value, name, codes):
            nraf = False
    statuses = None
    if (status := _single(query, "status")) is not None:
        statuses = tuple(dict.fromkeys(status.split(",")))
        unknown = [s for s in statuses if s not in STATUSES]
        if unknown:
            raise invalid_search_data(f"status '{quote_value(unknown[0])}' is not one of {', '.join(STATUSES)}")
    include = _single(query, "_include")
    if include is not None and include != "Flag:detail":
        raise invalid_search_data(f"_include '{quote_value(include)}' is not supported; use Flag:detail")
    return FlagSearch(nhs, statuses, nraf)


def parse_removal(body: object, codes: FlagCodes) -> tuple[str, Removal]:
    """``POST $removerarecord``'s Parameters: nhsNumber, removalReason, supportingComment (the retired RA Flag
    API's shape: parts of one ``removeRARecord`` parameter; flat parameters are accepted too)."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise FhirError("INVALID_VALUE", "The body must be a FHIR Parameters resource", expression="Parameters")
    params = _list(body.get("parameter"), "Parameters.parameter")
    if len(params) == 1 and isinstance(params[0], dict) and "part" in params[0]:
        params = _list(params[0]["part"], "Parameters.parameter[0].part")
    values: dict[str, dict[str, Any]] = {}
    for i, p in enumerate(params):
        name = _obj(p, f"Parameters.parameter[{i}]").get("name")
        if name not in ("nhsNumber", "removalReason", "supportingComment") or name in values:
            raise bad(f"Parameters.parameter[{i}].name", f"'{quote_value(name)}' is unexpected or repeated; send "
                      "nhsNumber, removalReason and supportingComment once each")
        values[name] = p
    nhs_part = values.get("nhsNumber", {})
    nhs = nhs_part.get("valueString", (nhs_part.get("valueIdentifier") or {}).get("value"))
    if nhs is None:
        raise missing("Parameters.nhsNumber", "give the patient's NHS number as valueString")
    if not isinstance(nhs, str) or not is_valid(nhs):
        raise FhirError("INVALID_RESOURCE_ID", f"nhsNumber '{quote_value(nhs)}' is not a valid NHS number",
                        expression="Parameters.nhsNumber")
    reason = _code_in([values.get("removalReason", {}).get("valueCodeableConcept")],
                      frozenset({codes.removal_reason.system}), "Parameters.removalReason")
    if reason is None:
        raise missing("Parameters.removalReason", f"give the reason from {codes.removal_reason.system} "
                      f"({', '.join(codes.removal_reason.codes)})")
    code = _known(codes.removal_reason.codes, reason[1].get("code"), "Parameters.removalReason", "removal reason")
    comment = _text(values.get("supportingComment", {}).get("valueString"), "Parameters.supportingComment",
                    required=True)
    return nhs, Removal(code, comment)
