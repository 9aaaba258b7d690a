"""The PostgreSQL store: for scale-out, several stateless service processes over one database.

psycopg 3 with a ``psycopg_pool`` connection pool; connections run in autocommit and every write is an
explicit transaction (READ COMMITTED). Concurrency rests on row locks: compare-and-swap updates re-check
``version`` after waiting for a competing writer; ``DELETE … RETURNING`` makes a challenge single-use;
``INSERT … ON CONFLICT DO NOTHING`` then ``SELECT`` is idempotency's insert-or-get; the audit chain head is one
row taken ``FOR UPDATE``, which serialises appenders in every process. Schema migrations run under a
transaction-level advisory lock. Bulk loads use ``COPY`` into a temporary table and one upsert per batch.

The pool does not ping a connection before lending it (that doubled the latency of a lookup): after a database
restart each stale pooled connection fails one call with ``StoreUnavailable`` (answer 503) and is replaced.

Every wait is bounded by ``timeout`` (seconds): for a pooled connection (the pool's checkout time-out, which also
covers a server that is restarting) and, on the server, ``lock_timeout`` and ``statement_timeout`` set once per
connection in its start-up options (no extra round trip). Past it the call raises ``StoreTimeout``. Bulk loads and
schema migrations are exempt (they run before serving, and legitimately take longer).
"""

# SQL text here is assembled only from this package's constants; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from itertools import islice
from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from app.service.storage import schema_postgres
from app.service.storage.composed import AUDIT_COLS, PCOLS, UPSERT_SET, SqlStore
from app.service.store.errors import StoreError, StoreTimeout, StoreUnavailable, StoreUrlError, mask_url
from app.service.store.migrations import apply_pending
from app.service.store.rows import AuditRecord, PatientRow
from app.service.store.sqlbase import DB_WAIT_SECONDS, Waits, aware, chunks, dumps

PUT_BATCH = 100_000
# One statement, one round trip: insert a batch of chained records from column arrays and move the chain head.
_AUDIT_INSERT = (
    f"WITH ins AS (INSERT INTO audit_log ({AUDIT_COLS}) SELECT * FROM unnest(%s::bigint[], %s::timestamptz[], "
    "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
    "%s::text[])) UPDATE audit_head SET last_seq = %s, last_hash = %s WHERE id = 1")
CONNECT_TIMEOUT_S = 10
# Bulk loads and ANALYZE take as long as they take (they run before serving): no statement or lock time-out.
_UNBOUNDED = "SET LOCAL statement_timeout = 0"
# The patients table's secondary indexes, exactly as the migrations created them (dropped and rebuilt by bulk loads).
_SEARCH_INDEXES = ("SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid "
                   "WHERE x.indrelid = 'patients'::regclass AND NOT x.indisprimary ORDER BY c.relname")


@functools.lru_cache(maxsize=512)
def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


def _oneline(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class _Cursor:
    """A psycopg cursor that accepts the shared ``?`` placeholders."""

    __slots__ = ("raw",)

    def __init__(self, raw: psycopg.Cursor[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        self.raw.execute(_pg(sql), params)
        return self

    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        self.raw.executemany(_pg(sql), params)

    def fetchone(self) -> Any:
        return self.raw.fetchone()

    def fetchall(self) -> list[Any]:
        return self.raw.fetchall()

    @property
    def rowcount(self) -> int:
        return self.raw.rowcount


def _last_wins(batch: list[PatientRow]) -> list[PatientRow]:
    """One row per NHS number, the last given (as the SQLite store's per-row upsert would leave it)."""
    return list({r.nhs_number: r for r in batch}.values())


def _copy(raw: psycopg.Cursor[Any], table: str, rows: list[PatientRow]) -> None:
    with raw.copy(f"COPY {table} ({PCOLS}) FROM STDIN") as copy:
        for r in rows:
            copy.write_row((r.nhs_number, r.version, dumps(r.resource), r.family, r.given, r.family_phonetic,
                            r.given_phonetic, r.birth_date, r.gender, r.postcode, r.gp_ods, bool(r.restricted),
                            bool(r.deceased), r.superseded_by, bool(r.invalidated)))


class PostgresStore(SqlStore):
    _json_text = "resource::text"
    bulk_threshold = PUT_BATCH  # rows in the first batch that make a load into an empty table a bulk load
    _for_update = " FOR UPDATE"
    _integrity_errors = (psycopg.IntegrityError,)

    def __init__(self, url: str, *, pool_size: int = 10, timeout: float = DB_WAIT_SECONDS) -> None:
        self.url = mask_url(url)
        self.timeout = timeout
        self._waits = Waits()
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise StoreUrlError(url, _oneline(exc)) from exc
        if not all(p.strip().isdigit() for p in str(params.get("port") or "5432").split(",")):
            raise StoreUrlError(url, f"the port {params['port']!r} is not a number")
        extra = {} if "connect_timeout" in params else {"connect_timeout": CONNECT_TIMEOUT_S}
        self._conninfo = make_conninfo(url, **extra)
        self._migrate()
        ms = max(1, round(timeout * 1000))
        bounded = f"{params.get('options') or ''} -c lock_timeout={ms} -c statement_timeout={ms}".strip()
        self._pool = ConnectionPool(make_conninfo(self._conninfo, options=bounded), min_size=1,
                                    max_size=max(1, pool_size), kwargs={"autocommit": True},
                                    name="spinedesk-store", timeout=timeout, open=False)
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S + 5)
        except PoolTimeout as exc:
            self._pool.close()
            raise StoreUnavailable(self.url, _oneline(exc)) from exc

    def _migrate(self) -> None:
        try:
            with psycopg.connect(self._conninfo, autocommit=True) as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (schema_postgres.MIGRATION_LOCK_KEY,))
                apply_pending(_Cursor(conn.cursor()), schema_postgres.MIGRATIONS)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(self.url, _oneline(exc)) from exc

    # --- connections and transactions -----------------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if self._pool.closed:
            raise StoreError("the store has been closed; open it again")
        key = self._waits.begin()
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise StoreTimeout(self.url, "waiting for a database connection", self.timeout) from exc
        except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
            raise StoreTimeout(self.url, f"a database statement ({_oneline(exc)})", self.timeout) from exc
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(self.url, _oneline(exc)) from exc
        finally:
            self._waits.end(key)

    @contextmanager
    def _read(self, *, tx: bool = False) -> Iterator[_Cursor]:
        with self._connection() as conn, conn.cursor() as cur:
            if tx:
                with conn.transaction():
                    yield _Cursor(cur)
            else:
                yield _Cursor(cur)

    @contextmanager
    def _write(self) -> Iterator[_Cursor]:
        with self._connection() as conn, conn.cursor() as cur, conn.transaction():
            yield _Cursor(cur)

    # --- codecs ---------------------------------------------------------------------------------------------

    def _enc_ts(self, value: datetime) -> datetime:
        return aware(value)

    def _dec_ts(self, value: Any) -> datetime:
        return value.astimezone(UTC)

    def _enc_date(self, value: date | None) -> date | None:
        return value

    def _dec_date(self, value: Any) -> date | None:
        return value

    def _enc_json(self, value: Any) -> Jsonb:
        return Jsonb(value, dumps=dumps)

    def _dec_json(self, value: Any) -> Any:
        return value

    # --- dialect-specific operations ------------------------------------------------------------------------

    def _insert_audit(self, cur: Any, chained: list[tuple[AuditRecord, str]]) -> None:
        columns = list(zip(*((r.seq, r.at, r.user_id, r.role_profile_id, r.org, r.action, r.nhs_number,
                              r.request_id, r.outcome, details, r.prev_hash, r.hash) for r, details in chained),
                           strict=True))
        last = chained[-1][0]
        cur.raw.execute(_AUDIT_INSERT, [*map(list, columns), last.seq, last.hash], binary=True)

    def put_patients(self, rows: Iterable[PatientRow], *, analyze: bool = True) -> int:
        """Upsert in batches (COPY into a temporary table, then one INSERT … ON CONFLICT per batch).

        Seeding an EMPTY table with at least ``bulk_threshold`` rows takes the bulk path instead: one transaction
        that drops the search indexes, COPYs straight into ``patients`` and rebuilds the indexes (a crash rolls
        all of it back). It locks the table for its duration: seed before serving.
        """
        it = iter(rows)
        first = list(islice(it, PUT_BATCH))
        if not first:
            return 0
        batches = itertools.chain([first], chunks(it, PUT_BATCH))
        if len(first) >= self.bulk_threshold and self._patients_empty():
            total = self._bulk_load(batches)
        else:
            total = 0
            for batch in batches:
                unique = _last_wins(batch)
                with self._write() as cur:
                    cur.execute(_UNBOUNDED)
                    try:  # new numbers (seeding): COPY straight in; any number already stored: upsert instead
                        with cur.raw.connection.transaction():
                            _copy(cur.raw, "patients", unique)
                    except psycopg.errors.UniqueViolation:
                        self._upsert(cur.raw, unique)
                total += len(unique)
        if total >= 10_000 and analyze:
            self.analyze()
        return total

    def _patients_empty(self) -> bool:
        with self._read() as cur:
            return cur.execute("SELECT NOT EXISTS (SELECT 1 FROM patients)").fetchone()[0]

    def _bulk_load(self, batches: Iterable[list[PatientRow]]) -> int:
        total = 0
        with self._write() as cur:
            raw = cur.raw
            raw.execute(_UNBOUNDED)
            raw.execute("SET LOCAL maintenance_work_mem = '256MB'")
            indexes = raw.execute(_SEARCH_INDEXES).fetchall()
            for name, _ in indexes:
                raw.execute(pgsql.SQL("DROP INDEX {}").format(pgsql.Identifier(name)))
            for batch in batches:
                unique = _last_wins(batch)
                try:
                    with raw.connection.transaction():  # a savepoint: a number seen in an earlier batch
                        _copy(raw, "patients", unique)
                except psycopg.errors.UniqueViolation:
                    self._upsert(raw, unique)
                total += len(unique)
            for _, definition in indexes:
                raw.execute(definition)
        return total

    @staticmethod
    def _upsert(raw: psycopg.Cursor[Any], rows: list[PatientRow]) -> None:
        raw.execute("CREATE TEMP TABLE patients_load (LIKE patients INCLUDING DEFAULTS) ON COMMIT DROP")
        _copy(raw, "patients_load", rows)
        raw.execute(f"INSERT INTO patients ({PCOLS}) SELECT {PCOLS} FROM patients_load "
                    f"ON CONFLICT (nhs_number) DO UPDATE SET {UPSERT_SET}")
        raw.execute("DROP TABLE patients_load")

    def analyze(self) -> None:
        """Refresh the planner's statistics (after a bulk load; autovacuum would do it later)."""
        with self._connection() as conn, conn.transaction():
            conn.execute(_UNBOUNDED)
            conn.execute("ANALYZE patients")

    def close(self) -> None:
        if not self._pool.closed:
            self._pool.close()
