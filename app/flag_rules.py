"""The Reasonable Adjustment Flag's facts both ends apply: its coded data (systems, extensions, the code tables of
``resources/flags/codes.json``), the codes the rules name, the limits, and the rules a draft is checked against.

The service (reading what clients send, ``app.service``) and its client (checking a draft before sending it,
``app.client``) both import this module, so neither imports the other and a rule is written once. How a broken rule
is told (a FHIR OperationOutcome naming the element; a sentence for the user) stays with each side.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from app.resources_path import resource

CODES_FILE = resource("flags", "codes.json")  # source tree or frozen build

_ENGLAND = "https://fhir.nhs.uk/England"
CATEGORY_SYSTEM = f"{_ENGLAND}/CodeSystem/PatientFlagCategory"
NRAF = "NRAF"  # the Reasonable Adjustment flag's category
EXT_FLAG_NOTES = f"{_ENGLAND}/StructureDefinition/Extension-FlagNotes"
EXT_CONSENT_CREATE = f"{_ENGLAND}/StructureDefinition/Extension-ConsentCreateSummary"
SNOMED = "http://snomed.info/sct"
SNOMED_ALIASES = frozenset({SNOMED, "https://snomed.info/sct"})  # the IG's own examples use https

# who consented (FlagProxyRole): the patient; a best-interest decision under the Mental Capacity Act 2005;
# a lasting power of attorney / court-appointed deputy; parental responsibility
PATIENT_CONSENT, BEST_INTEREST, ATTORNEY_OR_DEPUTY, PARENTAL = "001", "002", "003", "004"
CONSENT_GIVEN = "RACONSENT"  # RA-ConsentPurpose: the only purpose a flag is recorded under
OTHER_IMPAIRMENT, PREFER_NOT_TO_SAY = "10", "12"  # RA-ConditionCode
BESPOKE = "011"  # RA-FlagCategory: an adjustment that may be described in text instead of coded

MAX_TEXT = 1000  # characters in one free-text item
MAX_ITEMS = 50  # impairments or adjustments in one record


@dataclass(frozen=True, eq=False)  # hashed by identity: loaded once
class CodeTable:
    system: str
    codes: Mapping[str, str]  # code -> display

    def coding(self, code: str) -> dict[str, str]:
        return {"system": self.system, "code": code, "display": self.codes[code]}


@dataclass(frozen=True, eq=False)
class FlagCodes:
    category: CodeTable  # PatientFlagCategory: NRAF, CP-IS, FGM
    impairment: CodeTable  # RA-ConditionCode: the impairment groups
    condition_category: CodeTable  # RA-ConditionCategory
    consent_purpose: CodeTable  # RA-ConsentPurpose
    adjustment_category: CodeTable  # RA-FlagCategory: the adjustment categories
    proxy_role: CodeTable  # FlagProxyRole: who consented
    adjustment: CodeTable  # RA-FlagCode value set: SNOMED CT adjustment codes
    removal_reason: CodeTable  # RA-RemovalReason


def parse_codes(doc: Mapping[str, object]) -> FlagCodes:
    def table(name: str) -> CodeTable:
        entry = doc[name]
        if not isinstance(entry, dict) or not isinstance(entry.get("codes"), dict):
            raise ValueError(f"{CODES_FILE}: {name} must have a system and codes")
        return CodeTable(str(entry["system"]), MappingProxyType(dict(entry["codes"])))

    return FlagCodes(table("PatientFlagCategory"), table("RA-ConditionCode"), table("RA-ConditionCategory"),
                     table("RA-ConsentPurpose"), table("RA-FlagCategory"), table("FlagProxyRole"),
                     table("RA-FlagCode"), table("RA-RemovalReason"))


@lru_cache(maxsize=2)
def load_codes(path: Path = CODES_FILE) -> FlagCodes:
    """The code tables, read once when first asked (never at import time)."""
    with path.open(encoding="utf-8") as handle:
        return parse_codes(json.load(handle))


# --- the rules a record is checked against ------------------------------------------------------------------


def needs_consent_summary(proxy_role: str) -> bool:
    """A best-interest decision (Mental Capacity Act 2005) needs a summary of how it was reached."""
    return proxy_role == BEST_INTEREST


def needs_impairment_note(group: str) -> bool:
    """'Other (please specify)' needs the impairment described."""
    return group == OTHER_IMPAIRMENT


def repeated_groups(groups: Sequence[str]) -> bool:
    """Each impairment group may be recorded once."""
    return len(set(groups)) != len(groups)


def prefer_not_to_say_with_others(groups: Sequence[str]) -> bool:
    """'Patient would prefer not to say' cannot be recorded with other impairment groups."""
    return PREFER_NOT_TO_SAY in groups and len(groups) > 1


def text_too_long(text: str) -> bool:
    return len(text) > MAX_TEXT
