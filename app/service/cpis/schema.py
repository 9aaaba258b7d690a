"""Schema for CP-IS: DDL for both dialects (registered as one numbered migration in
``schema_sqlite.py`` / ``schema_postgres.py``). Never edit a released migration: add the next number.

* ``cpis_local_authorities``: responsible local authorities (contact numbers, webhook, the key that signs
  their notifications);
* ``cpis_plans``: child protection plans (CPP / LAC / unborn CPP on the pregnant woman's record);
* ``cpis_access_events``: unscheduled accesses (the access history ``GET /AuditEvent`` returns); the id is
  derived from the user and X-Request-ID, so a retried request is one access;
* ``cpis_outbox``: Access to Service Notifications waiting for (or done with) delivery; the id is the
  idempotency key the receiver de-duplicates by; ``next_attempt_at`` doubles as the delivery lease;
* ``cpis_inbox``: the service's own local-authority inbox (notifications received, one row per key).
"""

from __future__ import annotations

SQLITE: tuple[str, ...] = (
    """CREATE TABLE cpis_local_authorities (
        code TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        team TEXT NOT NULL,
        office_hours TEXT NOT NULL,
        out_of_hours TEXT NOT NULL,
        webhook_url TEXT,
        secret TEXT NOT NULL)""",
    """CREATE TABLE cpis_plans (
        id TEXT PRIMARY KEY,
        nhs_number TEXT NOT NULL,
        plan_type TEXT NOT NULL,
        la_code TEXT NOT NULL REFERENCES cpis_local_authorities (code),
        start_date TEXT NOT NULL,
        end_date TEXT)""",
    "CREATE INDEX cpis_plans_nhs ON cpis_plans (nhs_number)",
    """CREATE TABLE cpis_access_events (
        id TEXT PRIMARY KEY,
        nhs_number TEXT NOT NULL,
        at TEXT NOT NULL,
        user_id TEXT NOT NULL,
        user_name TEXT NOT NULL,
        role_profile_id TEXT NOT NULL,
        role_code TEXT NOT NULL,
        role_name TEXT NOT NULL,
        org_ods TEXT NOT NULL,
        org_name TEXT NOT NULL,
        request_id TEXT NOT NULL)""",
    "CREATE INDEX cpis_access_nhs ON cpis_access_events (nhs_number, at)",
    """CREATE TABLE cpis_outbox (
        id TEXT PRIMARY KEY,
        access_id TEXT NOT NULL REFERENCES cpis_access_events (id),
        la_code TEXT NOT NULL,
        nhs_number TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        claim_token TEXT,
        delivered_at TEXT,
        last_error TEXT)""",
    "CREATE INDEX cpis_outbox_due ON cpis_outbox (next_attempt_at) WHERE delivered_at IS NULL",
    "CREATE INDEX cpis_outbox_nhs ON cpis_outbox (nhs_number)",
    """CREATE TABLE cpis_inbox (
        id TEXT PRIMARY KEY,
        la_code TEXT NOT NULL,
        received_at TEXT NOT NULL,
        payload TEXT NOT NULL)""",
    "CREATE INDEX cpis_inbox_la ON cpis_inbox (la_code, received_at)",
)

POSTGRES: tuple[str, ...] = (
    """CREATE TABLE cpis_local_authorities (
        code text PRIMARY KEY,
        name text NOT NULL,
        team text NOT NULL,
        office_hours text NOT NULL,
        out_of_hours text NOT NULL,
        webhook_url text,
        secret text NOT NULL)""",
    """CREATE TABLE cpis_plans (
        id text PRIMARY KEY,
        nhs_number text NOT NULL,
        plan_type text NOT NULL,
        la_code text NOT NULL REFERENCES cpis_local_authorities (code),
        start_date date NOT NULL,
        end_date date)""",
    "CREATE INDEX cpis_plans_nhs ON cpis_plans (nhs_number)",
    """CREATE TABLE cpis_access_events (
        id text PRIMARY KEY,
        nhs_number text NOT NULL,
        at timestamptz NOT NULL,
        user_id text NOT NULL,
        user_name text NOT NULL,
        role_profile_id text NOT NULL,
        role_code text NOT NULL,
        role_name text NOT NULL,
        org_ods text NOT NULL,
        org_name text NOT NULL,
        request_id text NOT NULL)""",
    "CREATE INDEX cpis_access_nhs ON cpis_access_events (nhs_number, at)",
    """CREATE TABLE cpis_outbox (
        id text PRIMARY KEY,
        access_id text NOT NULL REFERENCES cpis_access_events (id),
        la_code text NOT NULL,
        nhs_number text NOT NULL,
        payload text NOT NULL,
        created_at timestamptz NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL,
        claim_token text,
        delivered_at timestamptz,
        last_error text)""",
    "CREATE INDEX cpis_outbox_due ON cpis_outbox (next_attempt_at) WHERE delivered_at IS NULL",
    "CREATE INDEX cpis_outbox_nhs ON cpis_outbox (nhs_number)",
    """CREATE TABLE cpis_inbox (
        id text PRIMARY KEY,
        la_code text NOT NULL,
        received_at timestamptz NOT NULL,
        payload text NOT NULL)""",
    "CREATE INDEX cpis_inbox_la ON cpis_inbox (la_code, received_at)",
)
