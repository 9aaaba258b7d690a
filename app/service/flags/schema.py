"""Schema for Reasonable Adjustment Flags: DDL for both dialects (registered as one numbered migration in
``schema_sqlite.py`` / ``schema_postgres.py``). Never edit a released migration: add the next number.

``flags`` holds each flag's current version (searched by patient); ``flag_versions`` every earlier version
(copied there in the transaction that replaces it), so a removed flag and everything it ever said stay in its
history, and a flag that never changed (most seeded ones) is written once. At most one
ACTIVE flag per patient and category (the partial unique index): creating a second one is refused even when two
requests race.
"""

from __future__ import annotations

SQLITE: tuple[str, ...] = (
    """CREATE TABLE flags (
        id TEXT PRIMARY KEY,
        nhs_number TEXT NOT NULL,
        category TEXT NOT NULL,
        status TEXT NOT NULL,
        version INTEGER NOT NULL,
        resource TEXT NOT NULL,
        updated_at TEXT NOT NULL)""",
    "CREATE INDEX flags_patient ON flags (nhs_number, category)",
    "CREATE UNIQUE INDEX flags_one_active ON flags (nhs_number, category) WHERE status = 'active'",
    """CREATE TABLE flag_versions (
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        status TEXT NOT NULL,
        resource TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (id, version))""",
)

POSTGRES: tuple[str, ...] = (
    """CREATE TABLE flags (
        id text PRIMARY KEY,
        nhs_number text NOT NULL,
        category text NOT NULL,
        status text NOT NULL,
        version integer NOT NULL,
        resource jsonb NOT NULL,
        updated_at timestamptz NOT NULL)""",
    "CREATE INDEX flags_patient ON flags (nhs_number, category)",
    "CREATE UNIQUE INDEX flags_one_active ON flags (nhs_number, category) WHERE status = 'active'",
    """CREATE TABLE flag_versions (
        id text NOT NULL,
        version integer NOT NULL,
        status text NOT NULL,
        resource jsonb NOT NULL,
        updated_at timestamptz NOT NULL,
        PRIMARY KEY (id, version))""",
)
