"""Versioned schema migrations: numbered, per dialect (``schema_sqlite.py``, ``schema_postgres.py``).

A migration is a tuple of SQL statements. ``apply_pending`` runs inside ONE transaction that the caller has
opened while holding the dialect's migration lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-level
advisory lock), so two processes opening the same database at once apply each migration exactly once, and a
failing migration leaves the schema as it was. Applied versions are recorded in ``schema_version``. Never edit
a released migration: add the next number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from .errors import SchemaError


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def fetchall(self) -> list[Any]: ...


SCHEMA_VERSION_DDL = ("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                      "name TEXT NOT NULL, applied_at TEXT NOT NULL)")


def check_sequence(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migrations must be numbered 1, 2, 3… without gaps; got {versions}")


def apply_pending(cur: Cursor, migrations: Sequence[Migration]) -> list[int]:
    """Apply every migration not yet recorded; returns the versions applied. Caller owns the transaction."""
    check_sequence(migrations)
    cur.execute(SCHEMA_VERSION_DDL)
    cur.execute("SELECT version FROM schema_version")
    applied = {int(r[0]) for r in cur.fetchall()}
    latest = migrations[-1].version if migrations else 0
    if applied and max(applied) > latest:
        raise SchemaError(f"the database schema is at version {max(applied)} but this Spine Desk only knows "
                          f"up to version {latest}; install the Spine Desk release that created this database "
                          "(or a newer one)", found=max(applied), supported=latest)
    done: list[int] = []
    for m in migrations:
        if m.version in applied:
            continue
        try:
            for statement in m.statements:
                cur.execute(statement)
        except Exception as exc:
            raise SchemaError(f"migration {m.version} ({m.name}) failed: {exc}; nothing was changed. Report "
                              "this to your IT service desk", found=max(applied, default=0),
                              supported=latest) from exc
        cur.execute("INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                    (m.version, m.name, datetime.now(UTC).isoformat(timespec="seconds")))
        done.append(m.version)
    return done
