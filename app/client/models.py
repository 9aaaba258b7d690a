"""Typed results of the Spine service calls the client makes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# National RBAC activity codes that decide what the client offers a role (the service decides what it allows).
SEARCH_PATIENTS = "B0264"
UPDATE_DEMOGRAPHICS = "B0825"
VIEW_SCR = "B0370"
SCR_EMERGENCY_ACCESS = "B0168"
SCR_LEGAL_OVERRIDE = "B0082"
RECORD_CONSENT = "B0020"  # the patient's consent preference for their SCR
CPIS_NOTIFY = "B0107"  # view child protection information and notify (unscheduled care)
CPIS_SCHEDULED = "B0170"  # view it without notifying (scheduled care)
RECORD_FLAGS = "B0360"  # reasonable adjustment flags: record, change, remove
PRIVACY_OFFICER_ACTIVITIES = ("B0015", "B0016")


@dataclass(frozen=True, slots=True)
class Role:
    urid: str  # the role profile id, sent as NHSD-Session-URID
    org_ods: str
    org_name: str
    role_code: str
    role_name: str
    activities: tuple[str, ...]

    @property
    def can_search(self) -> bool:
        return SEARCH_PATIENTS in self.activities

    @property
    def can_edit_demographics(self) -> bool:
        return UPDATE_DEMOGRAPHICS in self.activities

    @property
    def can_view_scr(self) -> bool:
        return VIEW_SCR in self.activities

    @property
    def can_open_scr_in_emergency(self) -> bool:
        return SCR_EMERGENCY_ACCESS in self.activities

    @property
    def can_override_scr_legally(self) -> bool:
        return SCR_LEGAL_OVERRIDE in self.activities and self.can_view_scr

    @property
    def can_record_consent(self) -> bool:
        return RECORD_CONSENT in self.activities

    @property
    def can_view_cpis_notifying(self) -> bool:
        return CPIS_NOTIFY in self.activities

    @property
    def can_view_cpis_scheduled(self) -> bool:
        return CPIS_SCHEDULED in self.activities

    @property
    def can_record_flags(self) -> bool:
        return RECORD_FLAGS in self.activities

    @property
    def privacy_officer(self) -> bool:
        return any(a in self.activities for a in PRIVACY_OFFICER_ACTIVITIES)

    @property
    def clinical(self) -> bool:
        """Roles that may see clinical content (SCR viewing or flag recording rights stand for it)."""
        return self.can_view_scr or self.can_record_flags


@dataclass(frozen=True, slots=True)
class Login:
    token: str
    expires_at: datetime
    user_id: str
    user_name: str
    roles: tuple[Role, ...]
    role: Role | None = None  # the role the session is bound to (named at login); None: select one, once


@dataclass(frozen=True, slots=True)
class Challenge:
    nonce: str
    expires_at: datetime
    audience: str  # the service the card's signature will name


@dataclass(frozen=True, slots=True)
class Auth:
    """What every clinical call carries: the session's bearer token and the selected role (URID)."""

    token: str
    urid: str

    def __repr__(self) -> str:  # never print the token (logs, tracebacks)
        return f"Auth(token=<hidden>, urid={self.urid!r})"
