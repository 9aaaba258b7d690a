"""The storage interface for CP-IS: child protection plans, access events and the durable notification outbox.

A ``typing.Protocol``: what CP-IS needs of the store
(``app.service.storage`` implements it); the common rules in ``app/service/store/base.py`` apply.
Methods that change data take ``audit`` entries (and an ``answer`` where the request is idempotent) and commit
them in the same transaction as the change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from app.service.store.rows import Answer, AuditEntry


@dataclass(frozen=True, slots=True)
class LocalAuthority:
    """A responsible local authority. ``webhook_url`` None: notifications go to the service's own inbox.
    ``secret`` signs its notifications (HMAC); kept when the authority is put again without one."""

    code: str
    name: str
    team: str
    office_hours: str
    out_of_hours: str
    webhook_url: str | None = None
    secret: str = ""


@dataclass(frozen=True, slots=True)
class CpisPlan:
    id: str
    nhs_number: str
    plan_type: str  # CPP | LAC | UCPP (unborn child, on the pregnant woman's record)
    la_code: str
    start_date: date
    end_date: date | None = None


@dataclass(frozen=True, slots=True)
class AccessEvent:
    """One unscheduled access to a patient's CP-IS information (the access history)."""

    id: str
    nhs_number: str
    at: datetime
    user_id: str
    user_name: str
    role_profile_id: str
    role_code: str
    role_name: str
    org_ods: str
    org_name: str
    request_id: str


@dataclass(frozen=True, slots=True)
class Notification:
    """An Access to Service Notification for one local authority; ``id`` is its idempotency key."""

    id: str
    la_code: str
    nhs_number: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AccessWrite:
    """What one unscheduled access commits: the event, its notifications, its audit records (and answer)."""

    event: AccessEvent
    notifications: tuple[Notification, ...] = ()
    audit: tuple[AuditEntry, ...] = ()
    answer: Answer | None = None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: str
    access_id: str
    la_code: str
    nhs_number: str
    payload: dict[str, Any]
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    claim_token: str | None
    delivered_at: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class StuckNotifications:
    """Undelivered notifications that have failed too often or waited too long: how many, the oldest's creation
    time, and the most attempts any of them has had."""

    count: int = 0
    oldest: datetime | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class InboxItem:
    id: str
    la_code: str
    received_at: datetime
    payload: dict[str, Any]


class CpisStore(Protocol):
    # --- reference data and plans ---------------------------------------------------------------------------

    def put_local_authorities(self, items: Iterable[LocalAuthority]) -> int:
        """Insert or update; an empty ``secret`` keeps the stored one (a new authority gets a random one)."""

    def local_authority(self, code: str) -> LocalAuthority | None: ...

    def put_cpis_plans(self, plans: Iterable[CpisPlan]) -> int:
        """Insert or replace plans in bulk (seeding); returns how many were written."""

    def cpis_plans(self, nhs_number: str, *, ended_on_or_after: date) -> list[tuple[CpisPlan, LocalAuthority]]:
        """The patient's plans that are open or ended on/after the date, with their authority; newest first."""

    # --- access events and the outbox -----------------------------------------------------------------------

    def record_cpis_accesses(self, items: Sequence[AccessWrite], *, now: datetime | None = None) -> list[bool]:
        """ONE transaction for all ``items`` (group commit): each access event and its notifications' outbox rows,
        then every item's audit records LAST. An event id already stored (a retried request) adds no event and no
        notification (False for that item). All or nothing."""

    def record_cpis_access(self, event: AccessEvent, notifications: Sequence[Notification], *,
                           audit: Sequence[AuditEntry] = (), answer: Answer | None = None,
                           now: datetime | None = None) -> bool:
        """One access: its event, outbox rows and audit records (and ``answer``) in one transaction."""

    def cpis_access_history(self, nhs_number: str, *, limit: int = 25) -> list[AccessEvent]:
        """Most recent first."""

    def cpis_outbox_due(self, *, now: datetime | None = None) -> bool:
        """Cheap read: is any undelivered notification due (so a deliverer need not take the write lock)?"""

    def claim_cpis_notifications(self, token: str, *, lease_seconds: float, limit: int = 10,
                                 now: datetime | None = None) -> list[OutboxItem]:
        """Claim due undelivered notifications for ``lease_seconds`` (other claimers skip them meanwhile; a
        claimer that dies leaves them due again when the lease runs out). Counts the attempt."""

    def finish_cpis_notifications(self, token: str, *, delivered: Sequence[str] = (),
                                  failed: Sequence[tuple[str, str, datetime]] = (), now: datetime | None = None
                                  ) -> int:
        """In one transaction: mark ``delivered`` keys delivered (whoever claimed them), and for ``failed``
        ``(key, error, retry_at)`` still claimed with ``token``, schedule the retry. Returns rows changed."""

    def finish_cpis_notification(self, key: str, token: str, *, delivered: bool, error: str | None = None,
                                 retry_at: datetime | None = None, now: datetime | None = None) -> bool:
        """One notification: delivered, or (still holding the claim ``token``) retried at ``retry_at``."""

    def stuck_cpis_notifications(self, *, attempts: int, created_before: datetime) -> StuckNotifications:
        """Undelivered notifications whose last of at least ``attempts`` attempts failed, or created before
        ``created_before`` (a cheap read for the health check and the deliverer's alarm)."""

    def cpis_notifications(self, *, nhs_number: str | None = None) -> list[OutboxItem]:
        """Outbox rows (operations and tests), oldest first."""

    # --- the service's own local-authority inbox ------------------------------------------------------------

    def receive_cpis_notification(self, key: str, la_code: str, payload: dict[str, Any], *,
                                  now: datetime | None = None) -> bool:
        """Store a received notification once per key: True if new, False for a duplicate."""

    def cpis_inbox(self, la_code: str, *, limit: int = 100) -> list[InboxItem]:
        """Most recent first."""
