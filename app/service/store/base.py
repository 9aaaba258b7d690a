"""The one storage interface the service layer uses, and the small records it exchanges besides ``rows.py``.

Everything that several service processes must share lives in the database behind this interface: patients
(read here; PDS's own protocol writes and searches them), users and role profiles, login challenges, sessions,
idempotency records and the audit chain. Two implementations exist (``SQLiteStore``, ``PostgresStore`` in
``app.service.storage``, which implement every feature's protocol too); ``open_store(url)`` picks one. Every
method is thread-safe; every write is one database transaction. Times are timezone-aware UTC ``datetime``s; a ``now``
argument (tests) defaults to the current time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol

from .audit_seal import AuditSeal
from .rows import AuditEntry, AuditRecord, PatientJson, PatientRow


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
    nhs_uuids: tuple[str, ...] = ()  # 12-digit NHS user UUIDs (the subject identity of NHS card certificates)


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
    # SHA-256 (hex) of the request answered (method, path, query, body): a repeat of the id must be that request.
    # Empty for an answer stored before the hash was kept (schema version 6): such a row matches no request.
    request_hash: str = ""


class AuditVerification(NamedTuple):
    """Result of walking the audit chain: ``ok, checked, first_bad_seq, reason``, then ``checkpoint`` (the newest
    published checkpoint the records matched, as ``(seq, at, host)``; None when none was found) and ``needs_key``
    (the chain is keyed and no key, or another key, was given: it could not be checked)."""

    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str
    checkpoint: tuple[int, str, str] | None = None
    needs_key: bool = False


class Store(Protocol):
    """What the core of the service layer needs of storage (each feature's own needs are its protocol, e.g.
    ``app.service.scr.store.ScrStore``). See the module docstring for the common rules."""

    audit_seal: AuditSeal | None = None  # the audit key and checkpoint log (``use_audit_seal``)
    chain_name: str = "audit"  # names the audit chain's folder in a shared checkpoint folder (the database's name)

    def stalled(self) -> float | None:
        """Seconds the oldest database call still in progress has been waiting, once that is past half of the
        store's bound on one wait (``None``: nothing is stuck). ``GET /_status`` reports it."""
        return None

    # --- patients -------------------------------------------------------------------------------------------

    def get_patient(self, nhs_number: str) -> PatientRow | None:
        """The stored row, superseded or invalidated ones included (the domain decides what they mean)."""

    def get_patient_json(self, nhs_number: str) -> PatientJson | None:
        """Like ``get_patient`` but with the resource as stored JSON text (reads serve it without re-encoding)."""

    # --- users and role profiles ----------------------------------------------------------------------------

    def add_user(self, user_id: str, name: str, *, card_uuids: Iterable[str] = (),
                 cert_fingerprints: Iterable[str] = (), nhs_uuids: Iterable[str] = ()) -> User:
        """Raises ``AlreadyExists`` for a used id, card UUID, fingerprint or NHS user UUID (``ValueError`` for an
        NHS user UUID that is not 12 digits)."""

    def add_credentials(self, user_id: str, *, card_uuids: Iterable[str] = (),
                        cert_fingerprints: Iterable[str] = (), nhs_uuids: Iterable[str] = ()) -> User:
        """Link more cards/certificates/NHS user UUIDs to an existing user (``NotFound``, ``AlreadyExists``; an
        NHS user UUID that is already this user's is left as it is)."""

    def get_user(self, user_id: str) -> User | None: ...

    def list_users(self, *, include_inactive: bool = True) -> list[User]: ...

    def deactivate_user(self, user_id: str) -> User:
        """Mark the user inactive and revoke all their sessions, atomically (``NotFound``)."""

    def user_by_card_uuid(self, card_uuid: str) -> User | None: ...

    def user_by_nhs_uuid(self, nhs_uuid: str) -> User | None: ...

    def user_by_cert_fingerprint(self, fingerprint: str) -> User | None: ...

    def add_role_profile(self, profile: RoleProfile) -> RoleProfile:
        """``NotFound`` if the user does not exist, ``AlreadyExists`` if the URID is taken."""

    def remove_role_profile(self, profile_id: str) -> None:
        """``NotFound`` if there is no such role profile."""

    def get_role_profile(self, profile_id: str) -> RoleProfile | None: ...

    # --- login challenges and sessions ----------------------------------------------------------------------

    def create_challenge(self, nonce: str, cert_fingerprint: str, expires_at: datetime,
                         *, now: datetime | None = None) -> Challenge: ...

    def consume_challenge(self, nonce: str, *, now: datetime | None = None) -> Challenge | None:
        """Delete and return the challenge; None if unknown, already consumed or expired. Exactly one racer wins."""

    def create_session(self, token_hash: str, user_id: str, expires_at: datetime, *, now: datetime | None = None,
                       cert_issuer: str = "", cert_serial: str = "", role_profile_id: str = "") -> Session:
        """A session for ``user_id``; ``cert_issuer`` / ``cert_serial`` name the certificate it was opened with,
        so that the session ends when that certificate is revoked; ``role_profile_id`` the role it is bound to
        (empty: none yet, see ``bind_session_role``). The caller checks that the role is the user's."""

    def bind_session_role(self, token_hash: str, role_profile_id: str, *, now: datetime | None = None) -> str | None:
        """Bind a live session that has no role yet to ``role_profile_id`` if that role profile is its user's;
        atomically, so of two racers one wins. Returns the role the session is bound to afterwards (``""``: still
        none, because the role is not the user's); ``None`` if the session is not live."""

    def get_session(self, token_hash: str, *, now: datetime | None = None) -> Session | None:
        """None if unknown, revoked or expired."""

    def session_principal(self, token_hash: str, role_profile_id: str, *, now: datetime | None = None
                          ) -> SessionPrincipal | None:
        """For a live session of an active user: the user (with only the named role, if it is the session's role
        and still theirs), that role profile (else ``None``), the session's login certificate and the role it is
        bound to. ``None`` overall if the session or user is not live. One round trip in the SQL stores: this is
        on every request's path."""

    def revoke_session(self, token_hash: str) -> bool:
        """True if a session was revoked."""

    def revoke_all_sessions_for_user(self, user_id: str) -> int: ...

    def live_session_certificates(self, *, now: datetime | None = None) -> list[tuple[str, str]]:
        """The distinct ``(cert_issuer, cert_serial)`` of live sessions opened with a certificate."""

    def end_sessions_for_certificates(self, certificates: Iterable[tuple[str, str]]) -> int:
        """End every session opened with one of these ``(cert_issuer, cert_serial)``; returns how many."""

    # --- request-id idempotency -----------------------------------------------------------------------------

    def remember(self, request_id: str, user_id: str, method: str, path: str, status: int,
                 headers: Iterable[tuple[str, str]], body: bytes, *, now: datetime | None = None,
                 request_hash: str = "") -> StoredResponse:
        """Insert-or-get: store this response unless one is already stored for ``(request_id, user_id)``, and
        return whichever is stored. When two processes race, both get the first one committed: send that."""

    def recall(self, request_id: str, user_id: str) -> StoredResponse | None: ...

    def claim(self, request_id: str, user_id: str, method: str, path: str, *, now: datetime | None = None,
              lease_seconds: float = 3.0, request_hash: str = "") -> StoredResponse | None:
        """Claim a request id before doing the work (insert a status-0 placeholder): ``None`` if this caller owns
        it now, else the stored response (status 0: the owner is still working). ``remember`` completes it. An
        unanswered claim older than ``lease_seconds`` was abandoned (its process died) and is taken over. The
        claim keeps ``request_hash`` (the request's fingerprint); a completed answer keeps its claim's."""

    def release(self, request_id: str, user_id: str) -> None:
        """Remove an unfinished claim."""

    # --- audit ----------------------------------------------------------------------------------------------

    def append_audit(self, entry: AuditEntry) -> AuditRecord:
        """Chain and commit one record; it is durable when this returns."""

    def append_audit_many(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        """Chain and commit a batch in ONE transaction (group commit); all durable when this returns."""

    def verify_audit(self) -> AuditVerification:
        """Walk the chain from seq 1 to the chain head, recompute every hash (keyed ones with the audit key) and
        compare the records with the checkpoints published outside the database."""

    def use_audit_seal(self, seal: AuditSeal | None) -> None:
        """Key the chain with ``seal.key`` from the next record on and publish checkpoints to its log."""

    def check_audit_key(self) -> None:
        """``AuditKeyError`` if this store's key cannot continue the chain (keyed with another key, or no key)."""

    def query_audit(self, *, nhs_number: str | None = None, user_id: str | None = None,
                    since: datetime | None = None, until: datetime | None = None, action: str | None = None,
                    org: str | None = None, limit: int = 100) -> list[AuditRecord]:
        """Newest first; ``since`` inclusive, ``until`` exclusive; ``org``: only records made under roles of that
        organisation (the record's ``org``)."""

    # --- housekeeping ---------------------------------------------------------------------------------------

    def purge_expired(self, *, now: datetime | None = None, idempotency_ttl_seconds: float = 86400,
                      batch: int = 500) -> int:
        """Delete challenges and sessions expired at ``now`` and idempotency records (stored answers) created
        more than ``idempotency_ttl_seconds`` before it, at most ``batch`` rows per transaction so no lock is held
        long; returns how many rows went. Run periodically by ``app.service.core.housekeeping.Purger``."""

    def schema_version(self) -> int: ...

    def close(self) -> None:
        """Close every connection; the store cannot be used afterwards."""

    def __enter__(self) -> Store: ...

    def __exit__(self, *exc: object) -> None: ...
