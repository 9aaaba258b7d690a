"""The SQL both stores share, composed: every feature's SQL mixin (``pds/sql.py``, ``scr/sql.py``, ...) with the
store's own idempotency, audit and housekeeping SQL (users and sessions are in ``store/sql_identity.py``, the
dialect hooks in ``store/sqlbase.py``)."""

# SQL text here is assembled only from this package's constants; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from app.service.cpis.sql import CpisSql
from app.service.flags.sql import FlagSql
from app.service.pds.sql import PdsSql
from app.service.scr.sql import ScrSql
from app.service.store import audit_chain
from app.service.store.base import AuditVerification, StoredResponse
from app.service.store.rows import Answer, AuditEntry, AuditRecord
from app.service.store.sql_effects import _RESPONSE_COLS, AUDIT_COLS, EffectsSql
from app.service.store.sql_identity import IdentitySql
from app.service.store.sqlbase import utcnow

VERIFY_PAGE = 5000
PURGE_BATCH = 500  # rows deleted per transaction by purge_expired


class SqlStore(PdsSql, ScrSql, CpisSql, FlagSql, EffectsSql, IdentitySql):
    """The shared implementation of ``Store``. Subclasses: ``SQLiteStore``, ``PostgresStore``."""

    # --- request-id idempotency -----------------------------------------------------------------------------

    def remember(self, request_id: str, user_id: str, method: str, path: str, status: int,
                 headers: Iterable[tuple[str, str]], body: bytes, *, now: datetime | None = None,
                 request_hash: str = "") -> StoredResponse:
        answer = Answer(request_id, user_id, method, path, status, tuple(headers), bytes(body), request_hash)
        with self._write() as cur:
            return self._remember_in(cur, answer, now or utcnow())

    def claim(self, request_id: str, user_id: str, method: str, path: str, *, now: datetime | None = None,
              lease_seconds: float = 3.0, request_hash: str = "") -> StoredResponse | None:
        """Claim ``request_id`` before doing the work: ``None`` if this caller now owns it, else what is stored
        (status 0 while the owner is still working). Exactly one of several racing processes gets ``None``. A
        claim older than ``lease_seconds`` with no answer was left by a process that died: it is taken over."""
        now = now or utcnow()
        params = (request_id, user_id, method, path, 0, "[]", b"", self._enc_ts(now), request_hash,
                  self._enc_ts(now - timedelta(seconds=lease_seconds)))
        with self._write() as cur:  # a taken-over claim is the taker's request now: its method, path and hash
            cur.execute(f"INSERT INTO idempotency ({_RESPONSE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (request_id, user_id) DO UPDATE SET created_at = excluded.created_at, "
                        "method = excluded.method, path = excluded.path, request_hash = excluded.request_hash "
                        "WHERE idempotency.status = 0 AND idempotency.created_at < ?", params)
            claimed = cur.rowcount == 1
            if claimed:
                return None
            cur.execute(f"SELECT {_RESPONSE_COLS} FROM idempotency WHERE request_id = ? AND user_id = ?",
                        (request_id, user_id))
            return self._response(cur.fetchone())

    def release(self, request_id: str, user_id: str) -> None:
        """Drop an unfinished claim (the work failed before it had an answer worth replaying)."""
        with self._write() as cur:
            cur.execute("DELETE FROM idempotency WHERE request_id = ? AND user_id = ? AND status = 0",
                        (request_id, user_id))

    def recall(self, request_id: str, user_id: str) -> StoredResponse | None:
        with self._read() as cur:
            cur.execute(f"SELECT {_RESPONSE_COLS} FROM idempotency WHERE request_id = ? AND user_id = ?",
                        (request_id, user_id))
            row = cur.fetchone()
        return self._response(row) if row else None

    # --- audit ----------------------------------------------------------------------------------------------

    def append_audit(self, entry: AuditEntry) -> AuditRecord:
        return self.append_audit_many([entry])[0]

    def append_audit_many(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        if not entries:
            return []
        encoded = self._encode_audit(entries)  # fails before any lock
        with self._write() as cur:
            return self._chain_in(cur, encoded)

    def _audit_record(self, t: Sequence[Any]) -> AuditRecord:
        return AuditRecord(seq=int(t[0]), at=self._dec_ts(t[1]), user_id=t[2], role_profile_id=t[3], org=t[4],
                           action=t[5], nhs_number=t[6], request_id=t[7], outcome=t[8], prev_hash=t[10],
                           hash=t[11], details=json.loads(t[9]))

    def verify_audit(self) -> AuditVerification:
        """Walk the chain with this store's audit key, against the checkpoints published so far (read first)."""
        seal = self.audit_seal
        checkpoints, forged = seal.published() if seal is not None else ([], [])
        if forged:
            return AuditVerification(False, 0, None, f"checkpoint {forged[0]} is not signed with this audit key "
                                     f"(forged or damaged; {len(forged)} such line(s))")
        with self._read() as cur:
            cur.execute("SELECT last_seq, last_hash FROM audit_head WHERE id = 1")
            head_seq, head_hash = cur.fetchone()
        return audit_chain.verify(self._audit_rows(int(head_seq)), int(head_seq), head_hash,
                                  key=seal.key if seal is not None else None, checkpoints=checkpoints)

    def _audit_rows(self, upto: int) -> Iterator[Any]:
        after = 0
        while after < upto:
            with self._read() as cur:
                cur.execute(f"SELECT {AUDIT_COLS} FROM audit_log WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                            (after, upto, VERIFY_PAGE))
                rows = cur.fetchall()
            if not rows:
                return
            yield from ((int(r[0]), *r[1:]) for r in rows)
            after = int(rows[-1][0])

    def query_audit(self, *, nhs_number: str | None = None, user_id: str | None = None,
                    since: datetime | None = None, until: datetime | None = None, action: str | None = None,
                    org: str | None = None, limit: int = 100) -> list[AuditRecord]:
        where, params = ["1 = 1"], []
        for condition, value in (("nhs_number = ?", nhs_number), ("user_id = ?", user_id),
                                 ("at >= ?", since and self._enc_ts(since)), ("at < ?", until and self._enc_ts(until)),
                                 ("action = ?", action), ("org = ?", org)):
            if value is not None:
                where.append(condition)
                params.append(value)
        with self._read() as cur:
            cur.execute(f"SELECT {AUDIT_COLS} FROM audit_log WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?",
                        (*params, limit))
            return [self._audit_record(r) for r in cur.fetchall()]

    # --- housekeeping ---------------------------------------------------------------------------------------

    # (table, its key columns, which rows are past their time): expired challenges and sessions, and stored
    # answers created before the idempotency retention's cut-off.
    _PURGE = (("challenges", "nonce", "expires_at <= ?"),
              ("sessions", "token_hash", "expires_at <= ?"),
              ("idempotency", "request_id, user_id", "created_at < ?"))

    def purge_expired(self, *, now: datetime | None = None, idempotency_ttl_seconds: float = 86400,
                      batch: int = PURGE_BATCH) -> int:
        now = now or utcnow()
        removed = 0
        for table, key, condition in self._PURGE:
            cutoff = now - timedelta(seconds=idempotency_ttl_seconds) if table == "idempotency" else now
            while True:  # one short write transaction per batch: writers never wait long behind the purge
                with self._write() as cur:
                    cur.execute(f"DELETE FROM {table} WHERE ({key}) IN "
                                f"(SELECT {key} FROM {table} WHERE {condition} LIMIT ?)",
                                (self._enc_ts(cutoff), batch))
                    done = max(cur.rowcount, 0)
                removed += done
                if done < batch:
                    break
        return removed

    def schema_version(self) -> int:
        with self._read() as cur:
            cur.execute("SELECT MAX(version) FROM schema_version")
            row = cur.fetchone()
        return int(row[0] or 0)
