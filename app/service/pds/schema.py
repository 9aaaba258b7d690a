"""Schema for Patient Demographics: DDL for both dialects (the first statements of migration 1, "initial", in
``schema_sqlite.py`` / ``schema_postgres.py``). Never edit a released migration: add the next number.

* ``patients``: one row per NHS number, the FHIR Patient resource as stored with its version and the columns
  searches filter on (normalised upper-case ASCII, phonetic keys); superseded and invalidated records stay.
  The search indexes are partial (``ACTIVE`` / ``OPEN`` from ``sql.py``): only records a search may return;
* ``related_persons``: each patient's FHIR RelatedPerson resources, in order.
"""

from __future__ import annotations

from app.service.pds.sql import ACTIVE, OPEN

SQLITE: tuple[str, ...] = (
    """CREATE TABLE patients (
        nhs_number TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        resource TEXT NOT NULL,
        family TEXT NOT NULL,
        given TEXT NOT NULL,
        family_phonetic TEXT NOT NULL,
        given_phonetic TEXT NOT NULL,
        birth_date TEXT,
        gender TEXT NOT NULL,
        postcode TEXT,
        gp_ods TEXT,
        restricted INTEGER NOT NULL,
        deceased INTEGER NOT NULL,
        superseded_by TEXT,
        invalidated INTEGER NOT NULL DEFAULT 0)""",
    f"CREATE INDEX patients_family_dob ON patients (family, birth_date) WHERE {ACTIVE}",
    f"CREATE INDEX patients_phonetic_dob ON patients (family_phonetic, birth_date) WHERE {ACTIVE}",
    f"CREATE INDEX patients_dob ON patients (birth_date) WHERE {ACTIVE}",
    f"CREATE INDEX patients_postcode ON patients (postcode, family) WHERE {OPEN}",
    f"CREATE INDEX patients_gp ON patients (gp_ods, family) WHERE {OPEN}",
    """CREATE TABLE related_persons (
        nhs_number TEXT NOT NULL,
        position INTEGER NOT NULL,
        resource TEXT NOT NULL,
        PRIMARY KEY (nhs_number, position))""",
)

POSTGRES: tuple[str, ...] = (
    """CREATE TABLE patients (
        nhs_number text PRIMARY KEY,
        version integer NOT NULL,
        resource jsonb NOT NULL,
        family text COLLATE "C" NOT NULL,
        given text COLLATE "C" NOT NULL,
        family_phonetic text COLLATE "C" NOT NULL,
        given_phonetic text COLLATE "C" NOT NULL,
        birth_date date,
        gender text COLLATE "C" NOT NULL,
        postcode text COLLATE "C",
        gp_ods text COLLATE "C",
        restricted boolean NOT NULL,
        deceased boolean NOT NULL,
        superseded_by text,
        invalidated boolean NOT NULL DEFAULT false)""",
    f"CREATE INDEX patients_family_dob ON patients (family, birth_date) WHERE {ACTIVE}",
    f"CREATE INDEX patients_phonetic_dob ON patients (family_phonetic, birth_date) WHERE {ACTIVE}",
    f"CREATE INDEX patients_dob ON patients (birth_date) WHERE {ACTIVE}",
    f"CREATE INDEX patients_postcode ON patients (postcode, family) WHERE {OPEN}",
    f"CREATE INDEX patients_gp ON patients (gp_ods, family) WHERE {OPEN}",
    """CREATE TABLE related_persons (
        nhs_number text NOT NULL,
        position integer NOT NULL,
        resource jsonb NOT NULL,
        PRIMARY KEY (nhs_number, position))""",
)
