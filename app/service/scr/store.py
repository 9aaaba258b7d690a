"""The storage interface for the Summary Care Record: documents, consent, permissions to view, alerts.

A ``typing.Protocol``: what the Summary Care Record needs of the store
(``app.service.storage`` implements it); the common rules in ``app/service/store/base.py`` apply.
Methods that change data take ``audit`` entries (and an ``answer`` where the request is idempotent) and commit
them in the same transaction as the change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from app.service.store.rows import Answer, AuditEntry

DEFAULT_CONSENT = "Ask"  # no preference recorded: permission to view must be asked


@dataclass(frozen=True, slots=True)
class ScrDocument:
    """One uploaded SCR version: ``id`` is the Composition identifier (upper-case UUID)."""

    id: str
    nhs_number: str
    created_at: datetime
    bundle: dict[str, Any]  # the FHIR document Bundle as uploaded
    author_user: str
    author_org: str
    replaces: str | None = None


@dataclass(frozen=True, slots=True)
class ScrRecord:
    """A patient's SCR state: consent as stored (Yes / No / Ask) and the latest document, if any."""

    nhs_number: str
    consent: str
    latest: ScrDocument | None


@dataclass(frozen=True, slots=True)
class ScrView:
    """What a read needs, without decoding the document: consent, the latest id and the latest document's
    ``entry`` array as JSON text (``entries`` items)."""

    consent: str
    latest_id: str | None
    entries_json: str | None
    entries: int


@dataclass(frozen=True, slots=True)
class ScrGrant:
    """What an episode (user, role profile, patient) holds of one ``kind``: ptv, lr, emergency or legal."""

    user_id: str
    role_profile_id: str
    nhs_number: str
    kind: str
    granted: bool
    reason: str
    request_id: str
    granted_at: datetime
    expires_at: datetime
    alert_id: str | None = None


@dataclass(frozen=True, slots=True)
class ScrAlert:
    """A privacy-officer alert: who, in which role and organisation, which patient, why and when."""

    id: str
    created_at: datetime
    user_id: str
    user_name: str
    role_profile_id: str
    role_name: str
    org: str
    nhs_number: str
    alert_type: int  # 1 Create LR (self-claimed), 2 Access Alert
    alert_subtype: int  # 1..6, SCR-AlertReason
    reason: str
    request_id: str
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_role: str | None = None
    acknowledgement_note: str | None = None


class ScrConsentRefused(Exception):
    """The patient's consent is "No": nothing may be stored or granted for them."""


class ScrLatestMoved(Exception):
    """An upload named a version that is no longer the latest; ``latest`` is the current one."""

    def __init__(self, latest: str | None) -> None:
        super().__init__(f"the latest SCR is {latest}")
        self.latest = latest


class AlertAcknowledged(Exception):
    """The alert was acknowledged already; ``alert`` is it, with who acknowledged it and when."""

    def __init__(self, alert: ScrAlert) -> None:
        super().__init__(f"alert {alert.id} was acknowledged already")
        self.alert = alert


class ScrStore(Protocol):
    def scr_record(self, nhs_number: str) -> ScrRecord | None:
        """Consent and latest document (one round trip); ``None`` when nothing is stored for the patient."""

    def scr_view(self, nhs_number: str) -> ScrView | None:
        """Like ``scr_record`` but the latest document's entries stay JSON text (the read path splices them)."""

    def put_scr_document(self, doc: ScrDocument, *, expected_latest: str | None,
                         audit: Sequence[AuditEntry] = (), answer: Answer | None = None) -> None:
        """Store a new version iff the latest is ``expected_latest`` (``None``: the patient has none yet).

        Raises ``ScrLatestMoved`` (latest moved), ``AlreadyExists`` (the id is used), ``ScrConsentRefused``
        (consent "No"); then nothing is written. The head row is locked for the compare-and-swap."""

    def set_scr_consent(self, nhs_number: str, consent: str, *, by: str, now: datetime,
                        audit: Sequence[AuditEntry] = (), answer: Answer | None = None) -> None:
        """Record the patient's consent preference (Yes / No / Ask)."""

    def scr_grants(self, user_id: str, role_profile_id: str, nhs_number: str, *, now: datetime
                   ) -> list[ScrGrant]:
        """The episode's grants that have not expired at ``now``."""

    def put_scr_grants(self, grants: Sequence[ScrGrant], *, alert: ScrAlert | None = None,
                       refuse_opted_out: str | None = None,
                       audit: Sequence[AuditEntry] = (), answer: Answer | None = None) -> ScrAlert | None:
        """Record grants (each replaces the episode's earlier grant of its kind) and the alert they raise.

        The alert is written at most once per (request id, user): returns the alert as stored (an earlier one
        for the same request if there was one). With ``refuse_opted_out`` (an NHS number) the patient's consent
        is checked in the same transaction and ``ScrConsentRefused`` raised when it is "No"."""

    def scr_alerts(self, *, org: str, types: Sequence[int], acknowledged: bool | None = None,
                   limit: int = 100) -> list[ScrAlert]:
        """Alerts raised at ``org`` of the given types, newest first; ``acknowledged`` filters when not None."""

    def get_scr_alert(self, alert_id: str) -> ScrAlert | None: ...

    def acknowledge_scr_alert(self, alert_id: str, *, by: str, role: str, note: str | None, now: datetime,
                              audit: Sequence[AuditEntry] = (), answer: Answer | None = None) -> ScrAlert:
        """Mark acknowledged (who, in which role, when, optional note); ``NotFound``; ``AlertAcknowledged``
        if someone acknowledged it first (nothing written)."""

    def put_scr_seed(self, consents: Sequence[tuple[str, str]], docs: Sequence[ScrDocument], *,
                     now: datetime) -> int:
        """Bulk-load seeded content: ``(nhs_number, consent)`` rows and documents (each becomes its patient's
        latest). Rows that exist are left alone (seeding twice is harmless). Returns documents written."""
