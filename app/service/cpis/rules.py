"""CP-IS rules: the search parameter, the ``IsUnscheduledAccessEvent`` header, who notifies, which plans show,
and the Access to Service Notification (pure: no I/O).

Who notifies (``decide_access``), per the national RBAC activities (B0107 "View CP-IS information, unscheduled
care, sends an Access to Service Notification"; B0170 "View CP-IS information, scheduled care, no notification"):

===================  ===============================  ==========================================================
role holds           IsUnscheduledAccessEvent         result
===================  ===============================  ==========================================================
B0107 (only)         true / omitted                   unscheduled: access history + notification to the LA(s)
B0107 (not B0170)    false                            STILL unscheduled: access history + notification; the
                                                      audit record says ``unscheduled_by_role``
B0170 (only)         false                            scheduled: view only
B0170 (only)         true / omitted                   view only, NOT notified (the role cannot send notifications);
                                                      the response Bundle carries an information OperationOutcome
                                                      saying so and the audit record says ``unscheduled_denied``
B0107 and B0170      true / omitted / false           the header decides (true/omitted notifies)
neither              any                              403 ACCESS_DENIED (RBAC, before this table)
===================  ===============================  ==========================================================

Only B0170 allows a view without a notification: a role with B0107 but not B0170 is unscheduled care, so every
view it makes is an unscheduled access whatever the header claims (the header is the client's word; the role is
the organisation's). It is not refused either: refusing would keep a child's plan from the emergency clinician.

A B0170-only role is not refused (most clients omit the header, and the default is true): refusing would stop
scheduled-care staff seeing a child's plan; the user is told that the local authority was not notified.

Which plans: open plans and plans ended within the last 12 months. The access history and notifications are for
patients with at least one plan shown: a lookup that finds no plan records no access event (the ordinary audit
record still holds it). Notifications go to the authorities of OPEN plans, one per authority per access.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from app.nhs_number import NHS_NUMBER_SYSTEM, is_valid
from app.service.core.outcome import FhirError

UNSCHEDULED_HEADER = "IsUnscheduledAccessEvent"
PATIENT_PARAM = "patient:identifier"
INBOX_PATH = "/cpis/local-authority/{code}/notifications"  # the service's own local-authority inbox
NOTIFY, SCHEDULED = "B0107", "B0170"
HISTORY_LIMIT = 25
PLAN_TYPES: Mapping[str, tuple[str, str]] = {  # stored key -> SNOMED CT (England-ChildProtectionPlan ValueSet)
    "CPP": ("342191000000101", "Subject to child protection plan"),
    "LAC": ("764841000000100", "Looked after child"),
    "UCPP": ("818901000000100", "Unborn child subject to child protection plan"),
}
_NAMESPACE = uuid.UUID("6f0c3b1e-2f57-4c51-9d0e-6a1c3f1c2b7d")  # Spine Desk CP-IS ids


def invalid_search(reason: str) -> FhirError:
    return FhirError("INVALID_SEARCH_DATA", reason, issue_code="invalid")


def precondition_failed(reason: str) -> FhirError:
    return FhirError("PRECONDITION_FAILED", reason, status=400, issue_code="invalid")


def lenient_nhs_number(query: Mapping[str, list[str]]) -> str | None:
    """The NHS number a request names, if it names a valid one (for the audit record of a denial)."""
    values = query.get(PATIENT_PARAM) or []
    if len(values) != 1:
        return None
    value = values[0].rsplit("|", 1)[-1]
    return value if is_valid(value) else None


def parse_patient(query: Mapping[str, list[str]]) -> str:
    """``patient:identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}`` (a bare NHS number is accepted too)."""
    unknown = sorted(set(query) - {PATIENT_PARAM})
    if unknown:
        raise invalid_search(f"Invalid search data provided - unknown parameter '{unknown[0][:40]}'; the only "
                             f"parameter is '{PATIENT_PARAM}'")
    values = query.get(PATIENT_PARAM) or []
    if len(values) != 1:
        raise invalid_search(f"Invalid search data provided - give '{PATIENT_PARAM}' exactly once, as "
                             f"{NHS_NUMBER_SYSTEM}|<NHS number>")
    system, _, value = values[0].rpartition("|")
    if system not in ("", NHS_NUMBER_SYSTEM):
        raise invalid_search(f"Invalid search data provided - the identifier system must be {NHS_NUMBER_SYSTEM}")
    if not is_valid(value):
        raise invalid_search("Invalid NHS number - check the ten digits (the last is a modulus 11 check digit)")
    return value


def parse_unscheduled(value: str | None) -> bool:
    """The header's value; omitted means true."""
    if value is None:
        return True
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise precondition_failed(f"Missing or invalid header parameter - {UNSCHEDULED_HEADER} must be 'true' or "
                                  "'false'")
    return lowered == "true"


@dataclass(frozen=True, slots=True)
class AccessMode:
    unscheduled_requested: bool
    notify: bool
    reason: str  # for the audit record and the user


def decide_access(activities: Sequence[str], unscheduled_requested: bool) -> AccessMode:
    """See the module table. The caller has already checked that the role holds B0107 or B0170."""
    if not unscheduled_requested:
        if SCHEDULED in activities:  # only B0170 may view without notifying
            return AccessMode(False, False, "scheduled")
        return AccessMode(False, True, "unscheduled_by_role")  # unscheduled care cannot opt out by a header
    if NOTIFY in activities:
        return AccessMode(True, True, "unscheduled")
    return AccessMode(True, False, "unscheduled_denied")


def window_start(today: date) -> date:
    """Plans that ended on or after this date are still shown (12 months back; 29 Feb → 28 Feb)."""
    try:
        return today.replace(year=today.year - 1)
    except ValueError:
        return today.replace(year=today.year - 1, day=28)


def is_open(end: date | None, today: date) -> bool:
    return end is None or end >= today


def access_id(user_id: str, request_id: str) -> str:
    """One access per user and X-Request-ID: a retried request is the same access (and the same notification)."""
    return str(uuid.uuid5(_NAMESPACE, f"access:{user_id}:{request_id}"))


def notification_id(access: str, la_code: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"asn:{access}:{la_code}"))


def notification_payload(key: str, la_code: str, nhs_number: str, at: datetime, who: Mapping[str, str],
                         plan_ids: Sequence[str]) -> dict[str, Any]:
    """The Access to Service Notification a local authority receives (Spine Desk's JSON; see the OpenAPI)."""
    return {"resourceType": "AccessToServiceNotification", "id": key, "localAuthority": la_code,
            "patient": {"system": NHS_NUMBER_SYSTEM, "value": nhs_number}, "accessedAt": at.isoformat(),
            "accessedBy": dict(who), "plans": list(plan_ids)}


def backoff_seconds(attempts: int, *, base: float = 1.0, cap: float = 300.0) -> float:
    """Delay before the next delivery attempt after ``attempts`` failed ones: 1, 2, 4, … seconds, capped."""
    return min(cap, base * 2 ** max(0, attempts - 1))


def retry_at(now: datetime, attempts: int) -> datetime:
    return now + timedelta(seconds=backoff_seconds(attempts))


SIGNATURE_HEADER = "X-CPIS-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def sign(secret: str, key: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with the authority's secret over the idempotency key, a newline and the body."""
    return "sha256=" + hmac.new(secret.encode(), key.encode() + b"\n" + body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, key: str, body: bytes, signature: str | None) -> bool:
    return bool(secret) and signature is not None and hmac.compare_digest(sign(secret, key, body), signature)
