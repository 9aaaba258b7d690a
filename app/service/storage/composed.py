"""The SQL both stores share: patients, idempotency, audit and housekeeping (users and sessions are in
``sql_identity.py``, the dialect hooks in ``sqlbase.py``)."""

# SQL text here is assembled only from this package's constants; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from app.service.cpis.sql import CpisSql
from app.service.flags.sql import FlagSql
from app.service.scr.sql import ScrSql
from app.service.store import audit_chain
from app.service.store.base import AuditVerification, StoredResponse
from app.service.store.errors import NotFound, VersionConflict
from app.service.store.rows import Answer, AuditEntry, AuditRecord, PatientJson, PatientRow, SearchFilter
from app.service.store.sql_effects import _RESPONSE_COLS, AUDIT_COLS, EffectsSql
from app.service.store.sql_identity import IdentitySql
from app.service.store.sqlbase import chunks, utcnow

# Search indexes are partial: only records a search may return. Queries repeat these predicates verbatim so
# that both planners can match them against the index definitions.
ACTIVE = "superseded_by IS NULL AND invalidated = FALSE"
OPEN = f"{ACTIVE} AND restricted = FALSE"

PATIENT_COLS = ("nhs_number", "version", "resource", "family", "given", "family_phonetic", "given_phonetic",
                "birth_date", "gender", "postcode", "gp_ods", "restricted", "deceased", "superseded_by",
                "invalidated")
PCOLS = ", ".join(PATIENT_COLS)
PVALUES = ", ".join("?" for _ in PATIENT_COLS)
UPSERT_SET = ", ".join(f"{c} = excluded.{c}" for c in PATIENT_COLS[1:])
_UPDATE_SET = ", ".join(f"{c} = ?" for c in PATIENT_COLS[1:])
VERIFY_PAGE = 5000
PURGE_BATCH = 500  # rows deleted per transaction by purge_expired


class SqlStore(ScrSql, CpisSql, FlagSql, EffectsSql, IdentitySql):
    """The shared implementation of ``Store``. Subclasses: ``SQLiteStore``, ``PostgresStore``."""

    # --- patients -------------------------------------------------------------------------------------------

    def patient_params(self, r: PatientRow) -> tuple[Any, ...]:
        return (r.nhs_number, r.version, self._enc_json(r.resource), r.family, r.given, r.family_phonetic,
                r.given_phonetic, self._enc_date(r.birth_date), r.gender, r.postcode, r.gp_ods,
                bool(r.restricted), bool(r.deceased), r.superseded_by, bool(r.invalidated))

    def _patient(self, t: Sequence[Any]) -> PatientRow:
        return PatientRow(nhs_number=t[0], version=int(t[1]), resource=self._dec_json(t[2]), family=t[3],
                          given=t[4], family_phonetic=t[5], given_phonetic=t[6], birth_date=self._dec_date(t[7]),
                          gender=t[8], postcode=t[9], gp_ods=t[10], restricted=bool(t[11]), deceased=bool(t[12]),
                          superseded_by=t[13], invalidated=bool(t[14]))

    def get_patient(self, nhs_number: str) -> PatientRow | None:
        with self._read() as cur:
            cur.execute(f"SELECT {PCOLS} FROM patients WHERE nhs_number = ?", (nhs_number,))
            row = cur.fetchone()
        return self._patient(row) if row else None

    _json_text = "resource"  # PostgreSQL: "resource::text"

    def get_patient_json(self, nhs_number: str) -> PatientJson | None:
        with self._read() as cur:
            cur.execute(f"SELECT nhs_number, version, {self._json_text}, restricted, superseded_by, invalidated "
                        "FROM patients WHERE nhs_number = ?", (nhs_number,))
            t = cur.fetchone()
        if t is None:
            return None
        return PatientJson(nhs_number=t[0], version=int(t[1]), json=t[2], restricted=bool(t[3]),
                           superseded_by=t[4], invalidated=bool(t[5]))

    def update_patient(self, nhs_number: str, expected_version: int, row: PatientRow, *,
                       audit: Sequence[AuditEntry] = (), answer: Answer | None = None) -> PatientRow:
        if row.nhs_number != nhs_number:
            raise ValueError(f"row is for {row.nhs_number}, not {nhs_number}")
        if row.version != expected_version + 1:
            raise ValueError(f"row.version must be expected_version + 1 ({expected_version + 1}), not {row.version}")
        params = self.patient_params(row)[1:]
        encoded = self._encode_audit(audit)
        with self._write() as cur:
            cur.execute(f"UPDATE patients SET {_UPDATE_SET} WHERE nhs_number = ? AND version = ?",
                        (*params, nhs_number, expected_version))
            if cur.rowcount == 1:
                self.commit_effects(cur, encoded, answer)
                return row
            cur.execute("SELECT version FROM patients WHERE nhs_number = ?", (nhs_number,))
            current = cur.fetchone()
        if current is None:
            raise NotFound("patient", nhs_number)
        raise VersionConflict(nhs_number, expected_version, int(current[0]))

    def search_sql(self, f: SearchFilter) -> tuple[str, list[Any]]:
        where, params = [ACTIVE], []

        def add(condition: str, *values: Any) -> None:
            where.append(condition)
            params.extend(values)

        if not f.fuzzy:
            if f.family:
                add("family = ?", f.family)
            if f.family_prefix:
                add("family >= ? AND family < ?", f.family_prefix,
                    f.family_prefix[:-1] + chr(ord(f.family_prefix[-1]) + 1))
        if f.family_phonetic:
            add("family_phonetic = ?", f.family_phonetic)
        if f.given_phonetic:
            add("given_phonetic = ?", f.given_phonetic)
        if f.birth_date_from is not None:
            add("birth_date >= ?", self._enc_date(f.birth_date_from))
        if f.birth_date_to is not None:
            add("birth_date <= ?", self._enc_date(f.birth_date_to))
        if f.gender:
            add("gender = ?", f.gender)
        if f.postcode:
            add("postcode = ?", f.postcode)
        if f.gp_ods:
            add("gp_ods = ?", f.gp_ods)
        if f.postcode or f.gp_ods:
            where.append("restricted = FALSE")
        return f"SELECT {PCOLS} FROM patients WHERE {' AND '.join(where)} LIMIT ?", [*params, f.limit]

    def explain_search(self, f: SearchFilter) -> str:
        """The database's plan for ``search(f)`` (operations and benchmarks check that indexes are used)."""
        sql, params = self.search_sql(f)
        with self._read() as cur:
            cur.execute(self._explain_prefix + sql, params)
            return "\n".join(str(r[-1]) for r in cur.fetchall())

    def search(self, f: SearchFilter) -> list[PatientRow]:
        if f.limit <= 0:
            return []
        sql, params = self.search_sql(f)
        with self._read() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        return sorted((self._patient(r) for r in rows), key=lambda p: p.nhs_number)

    def related_persons(self, nhs_number: str) -> list[dict[str, Any]]:
        with self._read() as cur:
            cur.execute("SELECT resource FROM related_persons WHERE nhs_number = ? ORDER BY position",
                        (nhs_number,))
            return [self._dec_json(r[0]) for r in cur.fetchall()]

    def put_related_persons(self, items: Iterable[tuple[str, Sequence[dict[str, Any]]]]) -> int:
        done = 0
        for batch in chunks(items, 5000):
            inserts = [(nhs, i, self._enc_json(res)) for nhs, resources in batch for i, res in enumerate(resources)]
            with self._write() as cur:
                cur.executemany("DELETE FROM related_persons WHERE nhs_number = ?", [(nhs,) for nhs, _ in batch])
                if inserts:
                    cur.executemany("INSERT INTO related_persons (nhs_number, position, resource) VALUES (?, ?, ?)",
                                    inserts)
            done += len(batch)
        return done

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
        with self._read() as cur:
            cur.execute("SELECT last_seq, last_hash FROM audit_head WHERE id = 1")
            head_seq, head_hash = cur.fetchone()
        return audit_chain.verify(self._audit_rows(int(head_seq)), int(head_seq), head_hash)

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
