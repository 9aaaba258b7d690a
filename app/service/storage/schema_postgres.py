"""PostgreSQL schema, as numbered migrations. Times are timestamptz, dates date, booleans boolean, resources
jsonb; the audit ``details`` stay text so that the hashed canonical JSON is kept byte for byte. Search columns
use the "C" collation (the domain normalises them to upper-case ASCII) so that plain b-tree indexes serve both
equality and prefix ranges whatever the database's locale."""

# SQL text here is assembled only from this package's constants; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from app.service.cpis import schema as schema_cpis
from app.service.flags import schema as schema_flags
from app.service.pds import schema as schema_pds
from app.service.scr import schema as schema_scr
from app.service.store.audit_chain import GENESIS
from app.service.store.migrations import Migration

# Serialises schema migrations across every process opening the database (pg_advisory_xact_lock key).
MIGRATION_LOCK_KEY = 0x5350494E45  # "SPINE"

_INITIAL = (
    *schema_pds.POSTGRES,
    """CREATE TABLE users (
        id text PRIMARY KEY,
        name text NOT NULL,
        active boolean NOT NULL DEFAULT true,
        created_at timestamptz NOT NULL)""",
    """CREATE TABLE user_cards (
        card_uuid text PRIMARY KEY,
        user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE)""",
    "CREATE INDEX user_cards_user ON user_cards (user_id)",
    """CREATE TABLE user_certificates (
        fingerprint text PRIMARY KEY,
        user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE)""",
    "CREATE INDEX user_certificates_user ON user_certificates (user_id)",
    """CREATE TABLE role_profiles (
        id text PRIMARY KEY,
        user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        org_ods text NOT NULL,
        org_name text NOT NULL,
        role_code text NOT NULL,
        role_name text NOT NULL,
        activity_codes text NOT NULL)""",
    "CREATE INDEX role_profiles_user ON role_profiles (user_id)",
    """CREATE TABLE challenges (
        nonce text PRIMARY KEY,
        cert_fingerprint text NOT NULL,
        user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL)""",
    "CREATE INDEX challenges_expiry ON challenges (expires_at)",
    """CREATE TABLE sessions (
        token_hash text PRIMARY KEY,
        user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL)""",
    "CREATE INDEX sessions_user ON sessions (user_id)",
    "CREATE INDEX sessions_expiry ON sessions (expires_at)",
    """CREATE TABLE idempotency (
        request_id text NOT NULL,
        user_id text NOT NULL,
        method text NOT NULL,
        path text NOT NULL,
        status integer NOT NULL,
        headers text NOT NULL,
        body bytea NOT NULL,
        created_at timestamptz NOT NULL,
        PRIMARY KEY (request_id, user_id))""",
    "CREATE INDEX idempotency_created ON idempotency (created_at)",
    """CREATE TABLE audit_log (
        seq bigint PRIMARY KEY,
        at timestamptz NOT NULL,
        user_id text NOT NULL,
        role_profile_id text NOT NULL,
        org text NOT NULL,
        action text NOT NULL,
        nhs_number text,
        request_id text NOT NULL,
        outcome text NOT NULL,
        details text NOT NULL,
        prev_hash text NOT NULL,
        hash text NOT NULL)""",
    "CREATE INDEX audit_log_nhs ON audit_log (nhs_number, seq)",
    "CREATE INDEX audit_log_user ON audit_log (user_id, seq)",
    "CREATE INDEX audit_log_at ON audit_log (at)",
    """CREATE TABLE audit_head (
        id integer PRIMARY KEY CHECK (id = 1),
        last_seq bigint NOT NULL,
        last_hash text NOT NULL)""",
    f"INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, 0, '{GENESIS}')",
)

# A session remembers the certificate it was opened with, so that revoking that certificate ends it. Sessions
# opened before this version name no certificate: they are ended, and their users log in again.
_SESSION_CERTIFICATE = (
    "ALTER TABLE sessions ADD COLUMN cert_issuer text NOT NULL DEFAULT ''",
    "ALTER TABLE sessions ADD COLUMN cert_serial text NOT NULL DEFAULT ''",
    "CREATE INDEX sessions_certificate ON sessions (cert_issuer, cert_serial)",
    "DELETE FROM sessions",
)

# A stored answer remembers a SHA-256 of the request it answers (method, path, query, body), so that a repeat of
# its X-Request-ID is replayed only for that same request. Answers stored before this version have no hash ('')
# and match no request: a repeat of their id is refused, never replayed (they expire with the retention window).
_REQUEST_HASH = (
    "ALTER TABLE idempotency ADD COLUMN request_hash text NOT NULL DEFAULT ''",
)

# A session is bound to one role profile (URID), chosen once (at session creation or by one follow-up call);
# until then it serves no request. A challenge no longer names a user: the service looks the user up only after
# the card's signature has verified, so the challenge answers alike for every certificate. Open challenges and
# sessions are dropped (their users log in again).
_SESSION_ROLE = (
    "DROP TABLE challenges",
    """CREATE TABLE challenges (
        nonce text PRIMARY KEY,
        cert_fingerprint text NOT NULL,
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL)""",
    "CREATE INDEX challenges_expiry ON challenges (expires_at)",
    "ALTER TABLE sessions ADD COLUMN role_profile_id text NOT NULL DEFAULT ''",
    "DELETE FROM sessions",
)

# Users are also registered by the NHS user UUID (12 digits) their card certificates carry in the subject, so a
# renewed or replacement card (new key, new certificate) logs in as the same user. One UUID belongs to one user.
_NHS_IDENTITY = (
    """CREATE TABLE user_nhs_ids (
        nhs_uuid text PRIMARY KEY CHECK (length(nhs_uuid) = 12),
        user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE)""",
    "CREATE INDEX user_nhs_ids_user ON user_nhs_ids (user_id)",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial", _INITIAL),
    Migration(2, "summary care record", schema_scr.POSTGRES),
    Migration(3, "cp-is", schema_cpis.POSTGRES),
    Migration(4, "reasonable adjustment flags", schema_flags.POSTGRES),
    Migration(5, "session login certificate", _SESSION_CERTIFICATE),
    Migration(6, "idempotency request hash", _REQUEST_HASH),
    Migration(7, "session role, challenges without a user", _SESSION_ROLE),
    Migration(8, "users by NHS user UUID", _NHS_IDENTITY),
)
