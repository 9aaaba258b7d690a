"""CP-IS (Child Protection Information Sharing) calls: plans and the last unscheduled accesses, typed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from app.client.api import SpineApi
from app.client.models import Auth
from app.protocol import CPIS_BASE, NHS_NUMBER_SYSTEM

UNSCHEDULED_HEADER = "IsUnscheduledAccessEvent"
PLAN_NAMES = {"342191000000101": "Child Protection Plan", "764841000000100": "Looked After Child",
              "818901000000100": "Unborn Child Protection Plan"}


@dataclass(frozen=True, slots=True)
class CpisPlan:
    plan_type: str
    active: bool
    start: date | None
    end: date | None
    authority: str
    authority_code: str
    team: str
    office_hours: str
    out_of_hours: str


@dataclass(frozen=True, slots=True)
class CpisAccess:
    at: datetime | None
    user_name: str
    role_name: str
    organisation: str


@dataclass(frozen=True, slots=True)
class CpisResult:
    plans: tuple[CpisPlan, ...]
    accesses: tuple[CpisAccess, ...]
    note: str = ""  # what the service says about this access (e.g. not notified)


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _phone(telecom: list[dict[str, Any]], hours: str) -> str:
    for item in telecom:
        if any(e.get("valueCode") == hours for e in item.get("extension") or ()):
            return str(item.get("value") or "")
    return ""


def parse_care_team(resource: dict[str, Any]) -> CpisPlan:
    coding = ((resource.get("category") or [{}])[0].get("coding") or [{}])[0]
    org = (resource.get("managingOrganization") or [{}])[0]
    period = resource.get("period") or {}
    telecom = resource.get("telecom") or []
    return CpisPlan(plan_type=PLAN_NAMES.get(str(coding.get("code")), str(coding.get("display") or "Plan")),
                    active=resource.get("status") == "active", start=_date(period.get("start")),
                    end=_date(period.get("end")), authority=str(org.get("display") or ""),
                    authority_code=str((org.get("identifier") or {}).get("value") or ""),
                    team=str(resource.get("name") or ""), office_hours=_phone(telecom, "office-hours"),
                    out_of_hours=_phone(telecom, "out-of-hours"))


def parse_access(resource: dict[str, Any]) -> CpisAccess:
    contained = resource.get("contained") or ()
    role: dict[str, Any] = next((c for c in contained if c.get("resourceType") == "PractitionerRole"), {})
    try:
        at = datetime.fromisoformat(str(resource.get("recorded")))
    except ValueError:
        at = None
    return CpisAccess(at, str((role.get("practitioner") or {}).get("display") or ""),
                      str(((role.get("code") or [{}])[0]).get("text") or ""),
                      str((role.get("organization") or {}).get("display") or ""))


class Cpis:
    def __init__(self, client: SpineApi, auth: Auth) -> None:
        self._client, self._auth = client, auth

    def view(self, nhs_number: str, *, unscheduled: bool) -> CpisResult:
        """The plans (an unscheduled view by a notifying role notifies the local authority) and recent accesses."""
        params = [("patient:identifier", f"{NHS_NUMBER_SYSTEM}|{nhs_number}")]
        doc, _ = self._client.fhir("GET", f"{CPIS_BASE}/CareTeam", self._auth, params=params,
                                   headers={UNSCHEDULED_HEADER: "true" if unscheduled else "false"})
        plans, notes = [], []
        for entry in doc.get("entry") or ():
            resource = entry.get("resource") or {}
            if resource.get("resourceType") == "CareTeam":
                plans.append(parse_care_team(resource))
            elif resource.get("resourceType") == "OperationOutcome":
                notes += [str(i.get("diagnostics") or "") for i in resource.get("issue") or ()]
        history, _ = self._client.fhir("GET", f"{CPIS_BASE}/AuditEvent", self._auth, params=params)
        accesses = tuple(parse_access(e.get("resource") or {}) for e in history.get("entry") or ()
                         if (e.get("resource") or {}).get("resourceType") == "AuditEvent")
        return CpisResult(tuple(plans), accesses, " ".join(n for n in notes if n))
