"""SQLite schema, as numbered migrations. Times are ISO-8601 UTC text with microseconds (fixed width, so they
sort and compare as text); dates ISO text; booleans 0/1; JSON as text."""

# SQL text here is assembled only from this package's constants; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from app.service.cpis import schema as schema_cpis
from app.service.flags import schema as schema_flags
from app.service.pds import schema as schema_pds
from app.service.scr import schema as schema_scr
from app.service.store.audit_chain import GENESIS
from app.service.store.migrations import Migration

_INITIAL = (
    *schema_pds.SQLITE,
    """CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL)""",
    """CREATE TABLE user_cards (
        card_uuid TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE)""",
    "CREATE INDEX user_cards_user ON user_cards (user_id)",
    """CREATE TABLE user_certificates (
        fingerprint TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE)""",
    "CREATE INDEX user_certificates_user ON user_certificates (user_id)",
    """CREATE TABLE role_profiles (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        org_ods TEXT NOT NULL,
        org_name TEXT NOT NULL,
        role_code TEXT NOT NULL,
        role_name TEXT NOT NULL,
        activity_codes TEXT NOT NULL)""",
    "CREATE INDEX role_profiles_user ON role_profiles (user_id)",
    """CREATE TABLE challenges (
        nonce TEXT PRIMARY KEY,
        cert_fingerprint TEXT NOT NULL,
        user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL)""",
    "CREATE INDEX challenges_expiry ON challenges (expires_at)",
    """CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL)""",
    "CREATE INDEX sessions_user ON sessions (user_id)",
    "CREATE INDEX sessions_expiry ON sessions (expires_at)",
    """CREATE TABLE idempotency (
        request_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        status INTEGER NOT NULL,
        headers TEXT NOT NULL,
        body BLOB NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (request_id, user_id))""",
    "CREATE INDEX idempotency_created ON idempotency (created_at)",
    """CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        user_id TEXT NOT NULL,
        role_profile_id TEXT NOT NULL,
        org TEXT NOT NULL,
        action TEXT NOT NULL,
        nhs_number TEXT,
        request_id TEXT NOT NULL,
        outcome TEXT NOT NULL,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL)""",
    "CREATE INDEX audit_log_nhs ON audit_log (nhs_number, seq)",
    "CREATE INDEX audit_log_user ON audit_log (user_id, seq)",
    "CREATE INDEX audit_log_at ON audit_log (at)",
    """CREATE TABLE audit_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_seq INTEGER NOT NULL,
        last_hash TEXT NOT NULL)""",
    f"INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, 0, '{GENESIS}')",
)

# A session remembers the certificate it was opened with, so that revoking that certificate ends it. Sessions
# opened before this version name no certificate: they are ended, and their users log in again.
_SESSION_CERTIFICATE = (
    "ALTER TABLE sessions ADD COLUMN cert_issuer TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE sessions ADD COLUMN cert_serial TEXT NOT NULL DEFAULT ''",
    "CREATE INDEX sessions_certificate ON sessions (cert_issuer, cert_serial)",
    "DELETE FROM sessions",
)

# A stored answer remembers a SHA-256 of the request it answers (method, path, query, body), so that a repeat of
# its X-Request-ID is replayed only for that same request. Answers stored before this version have no hash ('')
# and match no request: a repeat of their id is refused, never replayed (they expire with the retention window).
_REQUEST_HASH = (
    "ALTER TABLE idempotency ADD COLUMN request_hash TEXT NOT NULL DEFAULT ''",
)

# A session is bound to one role profile (URID), chosen once (at session creation or by one follow-up call);
# until then it serves no request. A challenge no longer names a user: the service looks the user up only after
# the card's signature has verified, so the challenge answers alike for every certificate. Open challenges and
# sessions are dropped (their users log in again).
_SESSION_ROLE = (
    "DROP TABLE challenges",
    """CREATE TABLE challenges (
        nonce TEXT PRIMARY KEY,
        cert_fingerprint TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL)""",
    "CREATE INDEX challenges_expiry ON challenges (expires_at)",
    "ALTER TABLE sessions ADD COLUMN role_profile_id TEXT NOT NULL DEFAULT ''",
    "DELETE FROM sessions",
)

# Users are also registered by the NHS user UUID (12 digits) their card certificates carry in the subject, so a
# renewed or replacement card (new key, new certificate) logs in as the same user. One UUID belongs to one user.
_NHS_IDENTITY = (
    """CREATE TABLE user_nhs_ids (
        nhs_uuid TEXT PRIMARY KEY CHECK (length(nhs_uuid) = 12),
        user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE)""",
    "CREATE INDEX user_nhs_ids_user ON user_nhs_ids (user_id)",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial", _INITIAL),
    Migration(2, "summary care record", schema_scr.SQLITE),
    Migration(3, "cp-is", schema_cpis.SQLITE),
    Migration(4, "reasonable adjustment flags", schema_flags.SQLITE),
    Migration(5, "session login certificate", _SESSION_CERTIFICATE),
    Migration(6, "idempotency request hash", _REQUEST_HASH),
    Migration(7, "session role, challenges without a user", _SESSION_ROLE),
    Migration(8, "users by NHS user UUID", _NHS_IDENTITY),
)
