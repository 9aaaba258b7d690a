"""CP-IS FHIR R4 serialisation: CareTeam (a plan and its responsible local authority) and AuditEvent (an access)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from app.nhs_number import NHS_NUMBER_SYSTEM
from app.service.cpis.rules import PLAN_TYPES, is_open
from app.service.cpis.store import AccessEvent, CpisPlan, LocalAuthority

SNOMED = "http://snomed.info/sct"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
CONTACT_HOURS = "https://spinedesk.example/fhir/StructureDefinition/Extension-ContactHours"  # ours
AUDIT_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
              "display": "RESTful Operation"}


def _subject(nhs: str) -> dict[str, Any]:
    return {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs}}


def _phone(number: str, hours: str, rank: int) -> dict[str, Any]:
    return {"extension": [{"url": CONTACT_HOURS, "valueCode": hours}], "system": "phone", "value": number,
            "use": "work", "rank": rank}


def care_team(plan: CpisPlan, la: LocalAuthority, today: date) -> dict[str, Any]:
    code, display = PLAN_TYPES[plan.plan_type]
    period = {"start": plan.start_date.isoformat()}
    if plan.end_date is not None:
        period["end"] = plan.end_date.isoformat()
    return {
        "resourceType": "CareTeam", "id": plan.id,
        "status": "active" if is_open(plan.end_date, today) else "inactive",
        "category": [{"coding": [{"system": SNOMED, "code": code, "display": display}]}],
        "name": la.team,
        "subject": _subject(plan.nhs_number),
        "period": period,
        "managingOrganization": [{"identifier": {"system": ODS_SYSTEM, "value": la.code}, "display": la.name}],
        # office hours first (rank 1), then the out-of-hours (emergency duty) number
        "telecom": [_phone(la.office_hours, "office-hours", 1), _phone(la.out_of_hours, "out-of-hours", 2)],
    }


def information(text: str) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "information", "code": "informational",
                                                            "diagnostics": text}]}


def searchset(base_url: str, resources: Sequence[dict[str, Any]], timestamp: datetime,
              outcome: dict[str, Any] | None = None) -> dict[str, Any]:
    entries = [{"fullUrl": f"{base_url}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
               for r in resources]
    if outcome is not None:
        entries.append({"resource": outcome, "search": {"mode": "outcome"}})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "timestamp": timestamp.isoformat(),
                              "total": len(resources)}
    if entries:
        bundle["entry"] = entries
    return bundle


def audit_event(event: AccessEvent) -> dict[str, Any]:
    """An access, with the accessing PractitionerRole (user, role, organisation) contained."""
    role = {"resourceType": "PractitionerRole", "id": "role",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhsJobRoleCode", "value": event.role_code}],
            "practitioner": {"identifier": {"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": event.user_id},
                             "display": event.user_name},
            "organization": {"identifier": {"system": ODS_SYSTEM, "value": event.org_ods},
                             "display": event.org_name},
            "code": [{"text": event.role_name}]}
    return {
        "resourceType": "AuditEvent", "id": event.id, "contained": [role],
        "type": AUDIT_TYPE,
        "action": "R", "recorded": event.at.isoformat(), "outcome": "0",
        "agent": [{"who": {"reference": "#role", "display": event.user_name}, "requestor": True,
                   "role": [{"text": event.role_name}]}],
        "source": {"observer": {"identifier": {"system": ODS_SYSTEM, "value": event.org_ods},
                                "display": event.org_name}},
        "entity": [{"what": _subject(event.nhs_number)}],
    }
