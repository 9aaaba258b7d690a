"""Schema for CP-IS: DDL for both dialects (registered as one numbered migration in
``schema_sqlite.py`` / ``schema_postgres.py``). Never edit a released migration: add the next number."""

from __future__ import annotations

SQLITE: tuple[str, ...] = ()
POSTGRES: tuple[str, ...] = ()
