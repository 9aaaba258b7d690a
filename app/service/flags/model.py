"""The Reasonable Adjustment Flag as the rules see it: what a clinician records, who recorded it, and removal.

One record per patient while active (the legacy API: "add consent details - doing this also creates the overall
record"): consent (required), impairments and adjustments (both optional), free-text notes. The FHIR shape
(a PatientFlag with its details contained) is ``app.service.flags.fhir``'s business.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

ACTIVE, INACTIVE, ENTERED_IN_ERROR = "active", "inactive", "entered-in-error"
STATUSES = (ACTIVE, INACTIVE, ENTERED_IN_ERROR)
# who consented (FlagProxyRole): the patient; a best-interest decision under the Mental Capacity Act 2005;
# a lasting power of attorney / court-appointed deputy; parental responsibility
PATIENT_CONSENT, BEST_INTEREST, ATTORNEY_OR_DEPUTY, PARENTAL = "001", "002", "003", "004"
OTHER_IMPAIRMENT, PREFER_NOT_TO_SAY = "10", "12"
BESPOKE = "011"
CONSENT_GIVEN = "RACONSENT"
REMOVED_IN_ERROR = "Error"  # removal reason meaning the record should never have existed


@dataclass(frozen=True, slots=True)
class Consent:
    proxy_role: str  # FlagProxyRole code
    summary: str | None = None  # required for a best-interest decision: how it was reached
    performer: str | None = None  # who consented on the patient's behalf (attorney, deputy, parent), as text


@dataclass(frozen=True, slots=True)
class Impairment:
    code: str  # RA-ConditionCode
    note: str | None = None  # required for "Other (please specify)"


@dataclass(frozen=True, slots=True)
class Adjustment:
    category: str  # RA-FlagCategory
    code: str | None = None  # SNOMED CT, from the RA-FlagCode value set (any SNOMED CT code for bespoke)
    display: str | None = None
    text: str | None = None  # free text (bespoke adjustments may have only this)
    note: str | None = None


@dataclass(frozen=True, slots=True)
class RaContent:
    """Everything only clinical roles may see."""

    consent: Consent
    impairments: tuple[Impairment, ...] = ()
    adjustments: tuple[Adjustment, ...] = ()
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class Recorder:
    """Provenance: who made a change, in which role, for which organisation, and when."""

    user_id: str
    user_name: str
    role_code: str
    role_name: str
    org_ods: str
    org_name: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Removal:
    reason: str  # RA-RemovalReason code
    comment: str | None = None

    @property
    def status(self) -> str:
        return ENTERED_IN_ERROR if self.reason == REMOVED_IN_ERROR else INACTIVE
