"""The one storage interface the service layer uses, and the small records it exchanges besides ``rows.py``.

Everything that several service processes must share lives in the database behind this interface: patients,
users and role profiles, login challenges, sessions, idempotency records and the audit chain. Two
implementations exist (``SQLiteStore``, ``PostgresStore``); ``open_store(url)`` picks one. Every method is
thread-safe; every write is one database transaction. Times are timezone-aware UTC ``datetime``s; a ``now``
argument (tests) defaults to the current time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from .base_cpis import CpisStore
from .base_flags import FlagStore
from .base_scr import ScrStore
from .rows import Answer, AuditEntry, AuditRecord, PatientJson, PatientRow, SearchFilter


@dataclass(frozen=True, slots=True)
class RoleProfile:
    """A user's role at an organisation; ``id`` is the URID sent as ``NHSD-Session-URID``."""

    id: str
    user_id: str
    org_ods: str
    org_name: str
    role_code: str  # e.g. "S8000:G8000:R8001"
    role_name: str
    activity_codes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    active: bool = True
    card_uuids: tuple[str, ...] = ()  # lower case
    cert_fingerprints: tuple[str, ...] = ()  # lower-case hex, no colons (SHA-256 of the DER certificate)
    role_profiles: tuple[RoleProfile, ...] = ()


@dataclass(frozen=True, slots=True)
class Challenge:
    nonce: str
    cert_fingerprint: str  # the certificate it was issued for; no user: that is looked up after the signature
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Session:
    token_hash: str
    user_id: str
    created_at: datetime
    expires_at: datetime
    cert_issuer: str = ""  # the login certificate: its issuer's name (RFC 4514) and serial (lower-case hex);
    cert_serial: str = ""  # empty for a session not opened by a card login (tools, tests)
    role_profile_id: str = ""  # the role (URID) the session is bound to; empty until one is selected


class SessionPrincipal(NamedTuple):
    """A live session's user, the role it is bound to (``session_role``; empty: none selected yet), that role's
    profile when it is the one named and still the user's (else ``None``), and the login certificate."""

    user: User
    role: RoleProfile | None
    cert_issuer: str = ""
    cert_serial: str = ""
    session_role: str = ""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The response first sent for an ``X-Request-ID`` (per user), replayed for any repeat of that request."""

    request_id: str
    user_id: str
    method: str
    path: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    created_at: datetime


class AuditVerification(NamedTuple):
    """Result of walking the audit chain; unpacks as ``ok, checked, first_bad_seq, reason``."""

    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str


class Store(ScrStore, CpisStore, FlagStore, ABC):
    """Storage for the Spine service layer. See the module docstring for the common rules."""

    # --- patients -------------------------------------------------------------------------------------------

    @abstractmethod
    def get_patient(self, nhs_number: str) -> PatientRow | None:
        """The stored row, superseded or invalidated ones included (the domain decides what they mean)."""

    @abstractmethod
    def get_patient_json(self, nhs_number: str) -> PatientJson | None:
        """Like ``get_patient`` but with the resource as stored JSON text (reads serve it without re-encoding)."""

    @abstractmethod
    def put_patients(self, rows: Iterable[PatientRow], *, analyze: bool = True) -> int:
        """Insert or replace rows in bulk (seeding); returns how many were written. Streams large iterables.
        A large load refreshes the planner's statistics unless ``analyze`` is False (a caller loading many
        chunks calls :meth:`analyze` once at the end)."""

    @abstractmethod
    def analyze(self) -> None:
        """Refresh the query planner's statistics (after bulk loads)."""

    @abstractmethod
    def update_patient(self, nhs_number: str, expected_version: int, row: PatientRow, *,
                       audit: Sequence[AuditEntry] = (), answer: Answer | None = None) -> PatientRow:
        """Compare-and-swap: store ``row`` iff the stored version is ``expected_version``.

        ``row.version`` must be ``expected_version + 1`` (the domain bumps ``meta.versionId`` with it).
        ``audit`` records and the request's ``answer`` commit in the SAME transaction as the change, so a crash
        can never leave a change unaudited or a done change unanswered. Raises ``VersionConflict`` (stale) or
        ``NotFound`` (and then writes none of it).
        """

    @abstractmethod
    def search(self, f: SearchFilter) -> list[PatientRow]:
        """Pre-filtered candidates, at most ``f.limit``, in NHS-number order (the domain scores and ranks).

        Superseded and invalidated records never appear; restricted ones never when ``postcode`` or ``gp_ods``
        is set. Without ``fuzzy``: ``family`` (exact) / ``family_prefix``; with ``fuzzy``: the phonetic keys
        instead of those two. When more than ``limit`` rows match, which ``limit`` come back is unspecified: ask
        for one more than you can show to detect "too many matches".
        """

    @abstractmethod
    def related_persons(self, nhs_number: str) -> list[dict[str, Any]]:
        """The patient's FHIR RelatedPerson resources, in the order they were put.

        Kept in their own table, not inside the Patient resource: they are separate FHIR resources with their own
        ids, the stored Patient stays exactly the Patient, and changing them does not bump the Patient's version.
        """

    @abstractmethod
    def put_related_persons(self, items: Iterable[tuple[str, Sequence[dict[str, Any]]]]) -> int:
        """For each ``(nhs_number, resources)``, replace that patient's related persons; returns patients done."""

    # --- users and role profiles ----------------------------------------------------------------------------

    @abstractmethod
    def add_user(self, user_id: str, name: str, *, card_uuids: Iterable[str] = (),
                 cert_fingerprints: Iterable[str] = ()) -> User:
        """Raises ``AlreadyExists`` for a used id, card UUID or fingerprint."""

    @abstractmethod
    def add_credentials(self, user_id: str, *, card_uuids: Iterable[str] = (),
                        cert_fingerprints: Iterable[str] = ()) -> User:
        """Link more cards/certificates to an existing user (``NotFound``, ``AlreadyExists``)."""

    @abstractmethod
    def get_user(self, user_id: str) -> User | None: ...

    @abstractmethod
    def list_users(self, *, include_inactive: bool = True) -> list[User]: ...

    @abstractmethod
    def deactivate_user(self, user_id: str) -> User:
        """Mark the user inactive and revoke all their sessions, atomically (``NotFound``)."""

    @abstractmethod
    def user_by_card_uuid(self, card_uuid: str) -> User | None: ...

    @abstractmethod
    def user_by_cert_fingerprint(self, fingerprint: str) -> User | None: ...

    @abstractmethod
    def add_role_profile(self, profile: RoleProfile) -> RoleProfile:
        """``NotFound`` if the user does not exist, ``AlreadyExists`` if the URID is taken."""

    @abstractmethod
    def remove_role_profile(self, profile_id: str) -> None:
        """``NotFound`` if there is no such role profile."""

    @abstractmethod
    def get_role_profile(self, profile_id: str) -> RoleProfile | None: ...

    # --- login challenges and sessions ----------------------------------------------------------------------

    @abstractmethod
    def create_challenge(self, nonce: str, cert_fingerprint: str, expires_at: datetime,
                         *, now: datetime | None = None) -> Challenge: ...

    @abstractmethod
    def consume_challenge(self, nonce: str, *, now: datetime | None = None) -> Challenge | None:
        """Delete and return the challenge; None if unknown, already consumed or expired. Exactly one racer wins."""

    @abstractmethod
    def create_session(self, token_hash: str, user_id: str, expires_at: datetime, *, now: datetime | None = None,
                       cert_issuer: str = "", cert_serial: str = "", role_profile_id: str = "") -> Session:
        """A session for ``user_id``; ``cert_issuer`` / ``cert_serial`` name the certificate it was opened with,
        so that the session ends when that certificate is revoked; ``role_profile_id`` the role it is bound to
        (empty: none yet, see ``bind_session_role``). The caller checks that the role is the user's."""

    @abstractmethod
    def bind_session_role(self, token_hash: str, role_profile_id: str, *, now: datetime | None = None) -> str | None:
        """Bind a live session that has no role yet to ``role_profile_id`` if that role profile is its user's;
        atomically, so of two racers one wins. Returns the role the session is bound to afterwards (``""``: still
        none, because the role is not the user's); ``None`` if the session is not live."""

    @abstractmethod
    def get_session(self, token_hash: str, *, now: datetime | None = None) -> Session | None:
        """None if unknown, revoked or expired."""

    def session_principal(self, token_hash: str, role_profile_id: str, *, now: datetime | None = None
                          ) -> SessionPrincipal | None:
        """For a live session of an active user: the user (with only the named role, if it is the session's role
        and still theirs), that role profile (else ``None``), the session's login certificate and the role it is
        bound to. ``None`` overall if the session or user is not live. One round trip in the SQL stores: this is
        on every request's path."""
        session = self.get_session(token_hash, now=now)
        user = self.get_user(session.user_id) if session else None
        if session is None or user is None or not user.active:
            return None
        role = next((r for r in user.role_profiles if r.id == role_profile_id == session.role_profile_id), None)
        return SessionPrincipal(user, role, session.cert_issuer, session.cert_serial, session.role_profile_id)

    @abstractmethod
    def revoke_session(self, token_hash: str) -> bool:
        """True if a session was revoked."""

    @abstractmethod
    def revoke_all_sessions_for_user(self, user_id: str) -> int: ...

    @abstractmethod
    def live_session_certificates(self, *, now: datetime | None = None) -> list[tuple[str, str]]:
        """The distinct ``(cert_issuer, cert_serial)`` of live sessions opened with a certificate."""

    @abstractmethod
    def end_sessions_for_certificates(self, certificates: Iterable[tuple[str, str]]) -> int:
        """End every session opened with one of these ``(cert_issuer, cert_serial)``; returns how many."""

    # --- request-id idempotency -----------------------------------------------------------------------------

    @abstractmethod
    def remember(self, request_id: str, user_id: str, method: str, path: str, status: int,
                 headers: Iterable[tuple[str, str]], body: bytes, *, now: datetime | None = None
                 ) -> StoredResponse:
        """Insert-or-get: store this response unless one is already stored for ``(request_id, user_id)``, and
        return whichever is stored. When two processes race, both get the first one committed: send that."""

    @abstractmethod
    def recall(self, request_id: str, user_id: str) -> StoredResponse | None: ...

    @abstractmethod
    def claim(self, request_id: str, user_id: str, method: str, path: str, *, now: datetime | None = None,
              lease_seconds: float = 3.0) -> StoredResponse | None:
        """Claim a request id before doing the work (insert a status-0 placeholder): ``None`` if this caller owns
        it now, else the stored response (status 0: the owner is still working). ``remember`` completes it. An
        unanswered claim older than ``lease_seconds`` was abandoned (its process died) and is taken over."""

    @abstractmethod
    def release(self, request_id: str, user_id: str) -> None:
        """Remove an unfinished claim."""

    # --- audit ----------------------------------------------------------------------------------------------

    @abstractmethod
    def append_audit(self, entry: AuditEntry) -> AuditRecord:
        """Chain and commit one record; it is durable when this returns."""

    @abstractmethod
    def append_audit_many(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        """Chain and commit a batch in ONE transaction (group commit); all durable when this returns."""

    @abstractmethod
    def verify_audit(self) -> AuditVerification:
        """Walk the chain from seq 1 to the chain head and recompute every hash."""

    @abstractmethod
    def query_audit(self, *, nhs_number: str | None = None, user_id: str | None = None,
                    since: datetime | None = None, until: datetime | None = None, action: str | None = None,
                    org: str | None = None, limit: int = 100) -> list[AuditRecord]:
        """Newest first; ``since`` inclusive, ``until`` exclusive; ``org``: only records made under roles of that
        organisation (the record's ``org``)."""

    # --- housekeeping ---------------------------------------------------------------------------------------

    @abstractmethod
    def purge_expired(self, *, now: datetime | None = None, idempotency_ttl_seconds: float = 86400,
                      batch: int = 500) -> int:
        """Delete challenges and sessions expired at ``now`` and idempotency records (stored answers) created
        more than ``idempotency_ttl_seconds`` before it, at most ``batch`` rows per transaction so no lock is held
        long; returns how many rows went. Run periodically by ``app.service.housekeeping.Purger``."""

    @abstractmethod
    def schema_version(self) -> int: ...

    @abstractmethod
    def close(self) -> None:
        """Close every connection; the store cannot be used afterwards."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
