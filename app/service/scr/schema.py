"""Schema for Summary Care Record: DDL for both dialects (registered as one numbered migration in
``schema_sqlite.py`` / ``schema_postgres.py``). Never edit a released migration: add the next number.

* ``scr_patients`` — one row per patient that has an SCR or a recorded consent preference: the consent
  (Yes / No / Ask, as stored; "Yes" is read as "Ask") and the id of the latest SCR. It is also the row a
  writer locks to change that patient's SCR (uploads are compare-and-swap on ``latest_id``).
* ``scr_documents`` — every uploaded version (the FHIR document Bundle as uploaded); never updated.
* ``scr_grants`` — what one *episode* holds: (user, role profile, patient) x kind, the latest grant of each
  kind replacing the earlier one. Kinds: ``ptv`` (permission to view, granted or refused), ``lr`` (a
  self-claimed legitimate relationship), ``emergency`` / ``legal`` (access without permission).
* ``scr_alerts`` — the privacy officers' queue; at most one alert per (request id, user), so a retried
  request can never raise a second alert.
"""

from __future__ import annotations

_TABLES = (
    """CREATE TABLE scr_patients (
        nhs_number {text} PRIMARY KEY,
        consent {text} NOT NULL CHECK (consent IN ('Yes', 'No', 'Ask')),
        latest_id {text},
        updated_at {ts} NOT NULL,
        updated_by {text} NOT NULL)""",
    """CREATE TABLE scr_documents (
        id {text} PRIMARY KEY,
        nhs_number {text} NOT NULL,
        created_at {ts} NOT NULL,
        replaces {text},
        author_user {text} NOT NULL,
        author_org {text} NOT NULL,
        bundle {json} NOT NULL)""",
    "CREATE INDEX scr_documents_patient ON scr_documents (nhs_number, created_at)",
    """CREATE TABLE scr_grants (
        user_id {text} NOT NULL,
        role_profile_id {text} NOT NULL,
        nhs_number {text} NOT NULL,
        kind {text} NOT NULL CHECK (kind IN ('ptv', 'lr', 'emergency', 'legal')),
        granted {bool} NOT NULL,
        reason {text} NOT NULL,
        alert_id {text},
        request_id {text} NOT NULL,
        granted_at {ts} NOT NULL,
        expires_at {ts} NOT NULL,
        PRIMARY KEY (user_id, role_profile_id, nhs_number, kind))""",
    """CREATE TABLE scr_alerts (
        id {text} PRIMARY KEY,
        created_at {ts} NOT NULL,
        user_id {text} NOT NULL,
        user_name {text} NOT NULL,
        role_profile_id {text} NOT NULL,
        role_name {text} NOT NULL,
        org {text} NOT NULL,
        nhs_number {text} NOT NULL,
        alert_type INTEGER NOT NULL,
        alert_subtype INTEGER NOT NULL,
        reason {text} NOT NULL,
        request_id {text} NOT NULL,
        acknowledged_at {ts},
        acknowledged_by {text},
        acknowledged_role {text},
        acknowledgement_note {text},
        UNIQUE (request_id, user_id))""",
    "CREATE INDEX scr_alerts_queue ON scr_alerts (org, acknowledged_at, created_at)",
)

SQLITE: tuple[str, ...] = tuple(s.format(text="TEXT", ts="TEXT", json="TEXT", bool="INTEGER") for s in _TABLES)
POSTGRES: tuple[str, ...] = tuple(s.format(text="text", ts="timestamptz", json="jsonb", bool="boolean")
                                  for s in _TABLES)
