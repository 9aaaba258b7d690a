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
# Spine Desk's own activity code for the Local Smartcard Unlocker (resources/rbac.json, card.unblock): no public
# source gives NHS's national code, so a site maps its own roles onto it.
UNBLOCK_CARDS = "B1300"


class _Allows:
    """A right one national activity code grants: ``role.can_search`` is whether the role holds that code."""

    def __init__(self, activity: str) -> None:
        self.activity = activity

    def __get__(self, role: Role, owner: type | None = None) -> bool:
        return self.activity in role.activities


@dataclass(frozen=True, slots=True)
class Role:
    urid: str  # the role profile id, sent as NHSD-Session-URID
    org_ods: str
    org_name: str
    role_code: str
    role_name: str
    activities: tuple[str, ...]

    can_search = _Allows(SEARCH_PATIENTS)
    can_edit_demographics = _Allows(UPDATE_DEMOGRAPHICS)
    can_view_scr = _Allows(VIEW_SCR)
    can_open_scr_in_emergency = _Allows(SCR_EMERGENCY_ACCESS)
    can_record_consent = _Allows(RECORD_CONSENT)
    can_view_cpis_notifying = _Allows(CPIS_NOTIFY)
    can_view_cpis_scheduled = _Allows(CPIS_SCHEDULED)
    can_record_flags = _Allows(RECORD_FLAGS)
    can_unblock_cards = _Allows(UNBLOCK_CARDS)

    @property
    def can_override_scr_legally(self) -> bool:
        return SCR_LEGAL_OVERRIDE in self.activities and self.can_view_scr

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


@dataclass(frozen=True, slots=True)
class RenewalWindow:
    """The service's answer to "may this session's certificate be renewed now?" (it may, or it says why not)."""

    serial: int  # the session certificate's serial number
    not_after: datetime  # when it expires (UTC)
    renew_from: datetime  # the start of its renewal window (UTC)
    nonce: str = ""  # what the card's current key signs (renewal_message) to ask for the renewal, used once
    audience: str = ""  # the service the nonce is for

    def __repr__(self) -> str:
        return f"RenewalWindow(serial={self.serial:x}, not_after={self.not_after}, renew_from={self.renew_from})"
