"""The coded data of the Reasonable Adjustment Flag (Patient Flags model): systems, profiles and code tables.

The tables come from ``resources/flags/codes.json`` (extracted from NHS England's Reasonable Adjustments IG and,
for removal reasons, the retired RA Flag API). What the client needs too (the category, the extensions a draft
carries, SNOMED CT, the code tables and :func:`load_codes`, which reads them once, when first asked) is
``app.flag_rules``'s, re-exported here; the rest (profiles and systems only the FHIR shapes name) is the service's.
Everything takes a :class:`FlagCodes` so the rules stay pure and testable.
"""

from __future__ import annotations

from app.flag_rules import CATEGORY_SYSTEM as CATEGORY_SYSTEM
from app.flag_rules import CODES_FILE as CODES_FILE
from app.flag_rules import EXT_CONSENT_CREATE as EXT_CONSENT_CREATE
from app.flag_rules import EXT_FLAG_NOTES as EXT_FLAG_NOTES
from app.flag_rules import NRAF as NRAF
from app.flag_rules import SNOMED as SNOMED
from app.flag_rules import SNOMED_ALIASES as SNOMED_ALIASES
from app.flag_rules import CodeTable as CodeTable
from app.flag_rules import FlagCodes as FlagCodes
from app.flag_rules import load_codes as load_codes
from app.flag_rules import parse_codes as parse_codes

_ENGLAND = "https://fhir.nhs.uk/England"
PROFILE_PATIENT_FLAG = f"{_ENGLAND}/StructureDefinition/PatientFlag"
PROFILE_PROGRAMME_FLAG = f"{_ENGLAND}/StructureDefinition/ProgrammeFlag"
PROFILE_CONDITION = f"{_ENGLAND}/StructureDefinition/FlagCondition"
PROFILE_CONSENT = f"{_ENGLAND}/StructureDefinition/FlagConsent"
PROFILE_PROVENANCE = f"{_ENGLAND}/StructureDefinition/FlagProvenance"
EXT_CONSENT_REMOVE = f"{_ENGLAND}/StructureDefinition/Extension-ConsentRemoveSummary"
EXT_FLAG_DETAIL = "http://hl7.org/fhir/StructureDefinition/flag-detail"
# the retired RA Flag API's removal-reason extension (removalReason + supportingComment), kept for removals
EXT_REMOVAL = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-RARecord-RemovalReason-1"
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
