"""The coded data of the Reasonable Adjustment Flag (Patient Flags model): systems, profiles and code tables.

The tables come from ``resources/flags/codes.json`` (extracted from NHS England's Reasonable Adjustments IG and,
for removal reasons, the retired RA Flag API). :func:`load_codes` reads it once, when first asked (never at
import time); everything else takes a :class:`FlagCodes` so the rules stay pure and testable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from app.resources_path import resource

CODES_FILE = resource("flags", "codes.json")

_ENGLAND = "https://fhir.nhs.uk/England"
CATEGORY_SYSTEM = f"{_ENGLAND}/CodeSystem/PatientFlagCategory"
NRAF = "NRAF"
PROFILE_PATIENT_FLAG = f"{_ENGLAND}/StructureDefinition/PatientFlag"
PROFILE_PROGRAMME_FLAG = f"{_ENGLAND}/StructureDefinition/ProgrammeFlag"
PROFILE_CONDITION = f"{_ENGLAND}/StructureDefinition/FlagCondition"
PROFILE_CONSENT = f"{_ENGLAND}/StructureDefinition/FlagConsent"
PROFILE_PROVENANCE = f"{_ENGLAND}/StructureDefinition/FlagProvenance"
EXT_FLAG_NOTES = f"{_ENGLAND}/StructureDefinition/Extension-FlagNotes"
EXT_CONSENT_CREATE = f"{_ENGLAND}/StructureDefinition/Extension-ConsentCreateSummary"
EXT_CONSENT_REMOVE = f"{_ENGLAND}/StructureDefinition/Extension-ConsentRemoveSummary"
EXT_FLAG_DETAIL = "http://hl7.org/fhir/StructureDefinition/flag-detail"
# the retired RA Flag API's removal-reason extension (removalReason + supportingComment), kept for removals
EXT_REMOVAL = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-RARecord-RemovalReason-1"
SNOMED = "http://snomed.info/sct"
SNOMED_ALIASES = frozenset({SNOMED, "https://snomed.info/sct"})  # the IG's own examples use https
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
OBSERVATION_VALUE = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
SDS_USER = "https://fhir.nhs.uk/Id/sds-user-id"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
RBAC_ROLE = "https://fhir.nhs.uk/CodeSystem/NHSDigital-SDS-JobRoleCode"
CONSENT_POLICY = {"authority": "https://www.gov.uk/", "uri": "https://www.gov.uk/government/uploads/system/"
                  "uploads/attachment_data/file/535024/data-security-review.pdf"}
# Retired STU3 category system: accepted in searches so that the legacy API's queries still work.
LEGACY_CATEGORY_SYSTEM = "https://fhir.nhs.uk/STU3/CodeSystem/RARecord-FlagCategory-1"


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
    removal_reason: CodeTable


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
    with path.open(encoding="utf-8") as handle:
        return parse_codes(json.load(handle))
