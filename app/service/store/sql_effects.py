"""What must commit in the same transaction as a change: its audit records and its X-Request-ID answer.

Every store method that changes patient data takes ``audit`` entries (and, for state-changing requests, the
``answer``) and calls :meth:`EffectsSql.commit_effects` LAST inside its write transaction, so a crash can never
leave a change without its audit record, or an audit record for a change that did not happen.
"""

# SQL text here is assembled only from this package's constants; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from . import audit_chain
from .base import StoredResponse
from .rows import Answer, AuditEntry, AuditRecord
from .sqlbase import SqlBase, dumps, utcnow

AUDIT_COLS = ("seq, at, user_id, role_profile_id, org, action, nhs_number, request_id, outcome, details, "
              "prev_hash, hash")
_AUDIT_VALUES = ", ".join("?" for _ in range(12))
_RESPONSE_COLS = "request_id, user_id, method, path, status, headers, body, created_at, request_hash"


class EffectsSql(SqlBase):
    def _response(self, t: Sequence[Any]) -> StoredResponse:
        return StoredResponse(request_id=t[0], user_id=t[1], method=t[2], path=t[3], status=int(t[4]),
                              headers=tuple((k, v) for k, v in json.loads(t[5])), body=bytes(t[6]),
                              created_at=self._dec_ts(t[7]), request_hash=t[8])

    def _remember_in(self, cur: Any, a: Answer, now: datetime) -> StoredResponse:
        params = (a.request_id, a.user_id, a.method, a.path, a.status, dumps([[k, v] for k, v in a.headers]),
                  bytes(a.body), self._enc_ts(now), a.request_hash)
        # a claim (status 0, see claim()) is completed, keeping the claim's request hash; a completed answer is
        # never replaced
        cur.execute(f"INSERT INTO idempotency ({_RESPONSE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (request_id, user_id) DO UPDATE SET status = excluded.status, "
                    "headers = excluded.headers, body = excluded.body WHERE idempotency.status = 0", params)
        cur.execute(f"SELECT {_RESPONSE_COLS} FROM idempotency WHERE request_id = ? AND user_id = ?",
                    (a.request_id, a.user_id))
        return self._response(cur.fetchone())

    @staticmethod
    def _encode_audit(entries: Sequence[AuditEntry]) -> list[tuple[AuditEntry, str]]:
        return [(e, audit_chain.encode_entry(e)) for e in entries]  # ValueError: a value no store can keep

    def _chain_in(self, cur: Any, encoded: list[tuple[AuditEntry, str]]) -> list[AuditRecord]:
        """Chain and insert records inside the caller's write transaction (taking the chain-head lock)."""
        if not encoded:
            return []
        cur.execute("SELECT last_seq, last_hash FROM audit_head WHERE id = 1" + self._for_update)
        last_seq, last_hash = cur.fetchone()
        chained = audit_chain.chain(encoded, int(last_seq), last_hash, utcnow())
        self._insert_audit(cur, chained)
        return [r for r, _ in chained]

    def commit_effects(self, cur: Any, audit: list[tuple[AuditEntry, str]], answer: Answer | None) -> None:
        """Write, inside the caller's write transaction and after its change, what must commit WITH that change:
        its audit records (from ``_encode_audit``) and the X-Request-ID answer. Call it LAST in the transaction:
        the audit chain head is locked until commit, and always taking it last keeps lock order deadlock-free."""
        if answer is not None:
            self._remember_in(cur, answer, utcnow())
        self._chain_in(cur, audit)

    def _insert_audit(self, cur: Any, chained: list[tuple[AuditRecord, str]]) -> None:
        """Insert the chained records and move the chain head (PostgreSQL does it in one statement)."""
        cur.executemany(f"INSERT INTO audit_log ({AUDIT_COLS}) VALUES ({_AUDIT_VALUES})",
                        [(r.seq, self._enc_ts(r.at), r.user_id, r.role_profile_id, r.org, r.action, r.nhs_number,
                          r.request_id, r.outcome, details, r.prev_hash, r.hash) for r, details in chained])
        last = chained[-1][0]
        cur.execute("UPDATE audit_head SET last_seq = ?, last_hash = ? WHERE id = 1", (last.seq, last.hash))

