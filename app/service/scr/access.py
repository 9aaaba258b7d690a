"""Who may see a patient's Summary Care Record, and what a privacy alert grants. Pure rules, no I/O.

An **episode** is one user, in one role profile, caring for one patient: ``(user id, role profile id, NHS
number)``. What it holds expires ``episode_hours`` after it was recorded (default 12 h, one long shift;
the service setting ``scr_episode_hours`` changes it). Recording again replaces the episode's grant of that kind.

Viewing (GET /Bundle) needs, in this order:

1. the role's activity B0370 (checked by RBAC before anything else);
2. the patient has not opted out (consent "No": no clinical content, whatever else holds; "Yes" is "Ask");
3. a legitimate relationship: the patient's registered practice in PDS is the role's organisation, or the
   episode holds a self-claimed one (POST /AuditEvent type 1, which alerts the privacy officer);
4. a basis for seeing it without asking again: permission to view given in this episode (POST
   /$setPermission ``permissionToView`` Yes), or an override recorded in this episode with a reason and an
   alert — emergency (B0168; subtypes 4 and 5), or legal (B0082; public interest, statute, court order).
   A refusal recorded in the episode is overridden only by a legal override: emergency access is for a
   patient who cannot be asked, not for one who said no.

Recording the patient's consent preference (POST /$setPermission ``setPermissions``) needs the role's activity
B0020 and the same legitimate relationship as step 3: the registered practice, or a relationship self-claimed in
this episode — the explicit route, audited and alerted when claimed (an opted-out patient cannot be claimed, so
only their practice can record a new preference for them). Every change, allowed or refused, is audited.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.service.scr.fhir import ALERT_REASONS, ALERT_TYPES, forbidden, invalid
from app.service.scr.store import ScrGrant

VIEW, EMERGENCY, LEGAL_OVERRIDE, RECORD_CONSENT = "B0370", "B0168", "B0082", "B0020"
OFFICER_ALL, OFFICER_SELF_CLAIM = "B0015", "B0016"
DEFAULT_EPISODE_HOURS = 12.0
OPTED_OUT = "No"
NOT_PERMITTED = {(1, 5), (2, 4), (2, 6)}
MAX_REASON = 1000


def effective_consent(stored: str | None) -> str:
    """"No" (opted out) or "Ask": "Yes" is legacy and means "Ask"; nothing recorded means "Ask"."""
    return OPTED_OUT if stored == OPTED_OUT else "Ask"


OPTED_OUT_TEXT = ("This patient has opted out of having a Summary Care Record (consent preference 'No'), so no "
                  "clinical content can be shown. Use other sources, such as the patient, their GP practice or "
                  "their own records.")


@dataclass(frozen=True)
class Episode:
    """What the caller's episode holds now (only unexpired grants)."""

    self_claimed: bool = False
    permission: bool | None = None  # True given, False refused, None not asked
    emergency: bool = False
    legal: bool = False
    claim_alert: str | None = None  # the privacy alert the self-claimed relationship raised

    @classmethod
    def of(cls, grants: Iterable[ScrGrant]) -> Episode:
        kinds = {g.kind: g for g in grants}
        ptv, lr = kinds.get("ptv"), kinds.get("lr")
        return cls(self_claimed=lr is not None, permission=ptv.granted if ptv else None,
                   emergency="emergency" in kinds, legal="legal" in kinds, claim_alert=lr.alert_id if lr else None)


@dataclass(frozen=True)
class Access:
    relationship: str  # "registered-practice" | "self-claimed"
    basis: str  # "permission" | "emergency" | "legal-override"


def relationship(role_org: str, gp_ods: str | None, episode: Episode) -> str | None:
    if gp_ods is not None and gp_ods.upper() == role_org.upper():
        return "registered-practice"
    return "self-claimed" if episode.self_claimed else None


def decide_view(*, consent: str | None, role_org: str, gp_ods: str | None, episode: Episode) -> Access:
    """The basis for showing the SCR, or a ``ScrError`` 403 whose text says why not and what to do."""
    if effective_consent(consent) == OPTED_OUT:
        raise forbidden(OPTED_OUT_TEXT, reason="opted-out")
    lr = relationship(role_org, gp_ods, episode)
    if lr is None:
        raise forbidden("You have no legitimate relationship with this patient: they are not registered with "
                        f"your organisation ({role_org}). If you are caring for them, self-claim a relationship "
                        "(POST /AuditEvent, type 1); your privacy officer will be alerted.", reason="no-relationship")
    if episode.legal:
        return Access(lr, "legal-override")
    if episode.permission is True:
        return Access(lr, "permission")
    if episode.permission is False:
        raise forbidden("The patient refused permission to view their Summary Care Record in this episode of "
                        "care. Only a legal override (public interest, statute or court order) can set that aside.",
                        reason="permission-refused")
    if episode.emergency:
        return Access(lr, "emergency")
    raise forbidden("Permission to view is needed: ask the patient and record their answer (POST /$setPermission, "
                    "permissionToView). If they cannot be asked and it is an emergency, record emergency access "
                    "with a reason (POST /AuditEvent, type 2 subtype 5); your privacy officer will be alerted.",
                    reason="no-permission")


def decide_consent(*, role_org: str, gp_ods: str | None, episode: Episode) -> str:
    """The legitimate relationship under which the caller records the patient's consent preference (the one the
    viewing rules use), or a ``ScrError`` 403. The caller has checked activity B0020."""
    lr = relationship(role_org, gp_ods, episode)
    if lr is None:
        raise forbidden("You have no legitimate relationship with this patient, so you cannot record their consent "
                        f"preference: they are not registered with your organisation ({role_org}). If you are "
                        "caring for them, self-claim a relationship first (POST /AuditEvent, type 1); your privacy "
                        "officer will be alerted. A patient who has opted out can record a new preference only with "
                        "their registered practice.", reason="no-relationship")
    return lr


# --- privacy alerts (POST /AuditEvent) ------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertClaim:
    """A validated alert: the patient, type and subtype, the user's reason and what it grants the episode."""

    nhs_number: str
    alert_type: int
    subtype: int
    reason: str

    @property
    def grants(self) -> tuple[str, ...]:
        kinds = ("lr",) if self.alert_type == 1 else ()
        if self.subtype in (4, 5):
            kinds += ("emergency",)
        elif self.subtype in (1, 2, 3):
            kinds += ("legal",)
        return kinds

    @property
    def activity(self) -> str:
        """The activity the role must hold, besides B0370."""
        if "emergency" in self.grants:
            return EMERGENCY
        return LEGAL_OVERRIDE if "legal" in self.grants else VIEW


def _code(value: object, field: str, allowed: dict[int, str]) -> int:
    text = value.get("code") if isinstance(value, dict) else None
    if not isinstance(text, str | int) or isinstance(text, bool) or str(text) not in {str(k) for k in allowed}:
        raise invalid(f"{field}.code must be one of {', '.join(str(k) for k in allowed)}")
    return int(text)


def alert_patient(body: object) -> str | None:
    """The NHS number an AuditEvent names (the agent whose identifier system is the NHS number), unchecked."""
    agents = body.get("agent") if isinstance(body, dict) else None
    for agent in agents if isinstance(agents, list) else []:
        who = agent.get("who") if isinstance(agent, dict) else None
        ident = who.get("identifier") if isinstance(who, dict) else None
        if isinstance(ident, dict) and ident.get("system") == "https://fhir.nhs.uk/Id/nhs-number":
            value = ident.get("value")
            return value if isinstance(value, str) else None
    return None


def parse_alert(body: object, is_valid_nhs: object) -> AlertClaim:
    """Check an AuditEvent body against the SCR specification's rules (type/subtype table, NHS number in the
    agent list) and Spine Desk's (an override needs a reason)."""
    if not isinstance(body, dict) or body.get("resourceType") != "AuditEvent":
        raise invalid("The body must be a FHIR AuditEvent resource (resourceType 'AuditEvent').")
    alert_type = _code(body.get("type"), "type", ALERT_TYPES)
    subtypes = body.get("subtype")
    if not isinstance(subtypes, list) or len(subtypes) != 1:
        raise invalid("subtype must hold exactly one SCR-AlertReason coding.")
    subtype = _code(subtypes[0], "subtype", ALERT_REASONS)
    if (alert_type, subtype) in NOT_PERMITTED:
        raise invalid(f"Alert type {alert_type} with subtype {subtype} is not a permitted combination (not "
                      "permitted: 1/5, 2/4, 2/6). An emergency self-claim is type 1 subtype 4; an emergency access "
                      "with a relationship is type 2 subtype 5.")
    nhs = alert_patient(body)
    if not isinstance(nhs, str) or not callable(is_valid_nhs) or not is_valid_nhs(nhs):
        raise invalid("NHS number missing or invalid: name the patient in agent[].who.identifier with system "
                      "https://fhir.nhs.uk/Id/nhs-number.")
    reason = body.get("outcomeDesc")
    reason = reason.strip() if isinstance(reason, str) else ""
    claim = AlertClaim(nhs, alert_type, subtype, reason[:MAX_REASON])
    if set(claim.grants) & {"emergency", "legal"} and not claim.reason:
        raise invalid("A reason is required for access without the patient's permission: say why in outcomeDesc "
                      "(for example 'Patient unconscious on arrival; needed current medication').")
    return claim


def check_alert_allowed(claim: AlertClaim, activities: Iterable[str], *, consent: str | None, role_org: str,
                        gp_ods: str | None, episode: Episode) -> None:
    held = set(activities)
    if claim.activity not in held:
        what = {EMERGENCY: "emergency access (B0168)", LEGAL_OVERRIDE: "a legal override (B0082)"}.get(
            claim.activity, "viewing the SCR (B0370)")
        raise forbidden(f"Your role may not record {what}. Ask someone whose role allows it, or your "
                        "registration authority to add the activity.", reason="activity")
    if effective_consent(consent) == OPTED_OUT:
        raise forbidden(OPTED_OUT_TEXT, reason="opted-out")
    if claim.alert_type == 2 and relationship(role_org, gp_ods, episode) is None:
        raise forbidden("An access alert (type 2) needs a legitimate relationship first. With no relationship, "
                        "self-claim one: type 1 (subtype 4 in an emergency).", reason="no-relationship")


def officer_alert_types(activities: Iterable[str]) -> tuple[int, ...]:
    """B0015 receives every privacy alert; B0016 only self-claimed relationship alerts (type 1)."""
    held = set(activities)
    if OFFICER_ALL in held:
        return (1, 2)
    return (1,) if OFFICER_SELF_CLAIM in held else ()
