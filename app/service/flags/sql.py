"""Reasonable Adjustment Flags (Patient Flags model): the SQL both stores share."""

# SQL text here is assembled only from this package's constants; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from app.service.flags.store import FlagRow
from app.service.store.errors import AlreadyExists, NotFound, VersionConflict
from app.service.store.rows import Answer, AuditEntry
from app.service.store.sql_effects import EffectsSql
from app.service.store.sqlbase import chunks

_COLS = "id, nhs_number, category, status, version, resource, updated_at"
_VERSION_COLS = "id, version, status, resource, updated_at"
_ORDER = "CASE WHEN status = 'active' THEN 0 ELSE 1 END, updated_at DESC, id"
SEED_BATCH = 5000


class FlagSql(EffectsSql):
    def _flag(self, t: Sequence[Any]) -> FlagRow:
        return FlagRow(id=t[0], nhs_number=t[1], category=t[2], status=t[3], version=int(t[4]),
                       resource=self._dec_json(t[5]), updated_at=self._dec_ts(t[6]))

    def _flag_params(self, r: FlagRow) -> tuple[Any, ...]:
        return (r.id, r.nhs_number, r.category, r.status, r.version, self._enc_json(r.resource),
                self._enc_ts(r.updated_at))

    def get_flag(self, flag_id: str) -> FlagRow | None:
        with self._read() as cur:
            cur.execute(f"SELECT {_COLS} FROM flags WHERE id = ?", (flag_id,))
            row = cur.fetchone()
        return self._flag(row) if row else None

    def flags_for_patient(self, nhs_number: str, *, category: str = "NRAF",
                          statuses: Sequence[str] | None = None) -> list[FlagRow]:
        where, params = "nhs_number = ? AND category = ?", [nhs_number, category]
        if statuses is not None:
            if not statuses:
                return []
            where += f" AND status IN ({', '.join('?' for _ in statuses)})"
            params.extend(statuses)
        with self._read() as cur:
            cur.execute(f"SELECT {_COLS} FROM flags WHERE {where} ORDER BY {_ORDER}", params)
            return [self._flag(r) for r in cur.fetchall()]

    def flag_history(self, flag_id: str) -> list[FlagRow]:
        with self._read(tx=True) as cur:  # one snapshot: the current row and the earlier versions agree
            cur.execute(f"SELECT {_COLS} FROM flags WHERE id = ?", (flag_id,))
            head = cur.fetchone()
            if head is None:
                return []
            cur.execute(f"SELECT {_VERSION_COLS} FROM flag_versions WHERE id = ? ORDER BY version DESC", (flag_id,))
            rows = cur.fetchall()
        current = self._flag(head)
        return [current, *(FlagRow(id=t[0], nhs_number=current.nhs_number, category=current.category, status=t[2],
                                   version=int(t[1]), resource=self._dec_json(t[3]), updated_at=self._dec_ts(t[4]))
                           for t in rows if int(t[1]) < current.version)]

    def create_flag(self, row: FlagRow, *, audit: Sequence[AuditEntry] = (), answer: Answer | None = None
                    ) -> FlagRow:
        if row.version != 1:
            raise ValueError(f"a new flag starts at version 1, not {row.version}")
        encoded = self._encode_audit(audit)
        try:
            with self._write() as cur:
                cur.execute(f"INSERT INTO flags ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)", self._flag_params(row))
                self.commit_effects(cur, encoded, answer)
        except self._integrity_errors as exc:
            raise AlreadyExists("active flag", f"{row.nhs_number}/{row.category}") from exc
        return row

    def update_flag(self, flag_id: str, expected_version: int, row: FlagRow, *, audit: Sequence[AuditEntry] = (),
                    answer: Answer | None = None) -> FlagRow:
        if row.id != flag_id:
            raise ValueError(f"row is for flag {row.id}, not {flag_id}")
        if row.version != expected_version + 1:
            raise ValueError(f"row.version must be expected_version + 1 ({expected_version + 1}), not {row.version}")
        encoded = self._encode_audit(audit)
        with self._write() as cur:
            # lock the row (PostgreSQL; SQLite's write transaction is already exclusive), then compare and swap
            cur.execute(f"SELECT version FROM flags WHERE id = ?{self._for_update}", (flag_id,))
            current = cur.fetchone()
            if current is not None and int(current[0]) == expected_version:
                # the version being replaced joins the history, then the new one becomes current
                cur.execute(f"INSERT INTO flag_versions ({_VERSION_COLS}) SELECT id, version, status, resource, "
                            "updated_at FROM flags WHERE id = ?", (flag_id,))
                cur.execute("UPDATE flags SET status = ?, version = ?, resource = ?, updated_at = ? WHERE id = ?",
                            (row.status, row.version, self._enc_json(row.resource), self._enc_ts(row.updated_at),
                             flag_id))
                self.commit_effects(cur, encoded, answer)
                return row
        if current is None:
            raise NotFound("flag", flag_id)
        raise VersionConflict(flag_id, expected_version, int(current[0]))

    def put_flags(self, rows: Iterable[FlagRow]) -> int:
        given = 0
        for batch in chunks(rows, SEED_BATCH):
            with self._write() as cur:
                cur.executemany(f"INSERT INTO flags ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                                [self._flag_params(r) for r in batch])
            given += len(batch)
        return given
