"""The SQLite store: the embedded default (training mode, one machine). One database file in WAL mode.

Connections come from a small pool (one thread uses a connection at a time). Every write transaction is
``BEGIN IMMEDIATE``, which takes SQLite's single write lock up front, so writers in all threads and all
processes are serialised (the audit chain relies on it) and never fail half-way with a stale snapshot; inside
one process writers also queue on a lock so they wait in turn rather than in SQLite's sleep-and-retry busy
handler. ``synchronous=FULL``: a commit is on disk when it returns (an audit record survives power loss).

Every wait is bounded by ``timeout`` (seconds): for a pooled connection, for this process's writer lock, and in
SQLite's busy handler for a lock another connection or process holds. Past it the call raises ``StoreTimeout``.
"""

from __future__ import annotations

import itertools
import os
import queue
import random
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime
from itertools import islice
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from app.private_files import create_private_file, tighten
from app.service.storage import schema_sqlite
from app.service.storage.composed import PCOLS, PVALUES, UPSERT_SET, SqlStore
from app.service.store.errors import StoreError, StoreTimeout, StoreUnavailable
from app.service.store.migrations import apply_pending
from app.service.store.rows import PatientRow
from app.service.store.sqlbase import DB_WAIT_SECONDS, Waits, aware, chunks, dumps, loads

PUT_BATCH = 50_000
CACHE_PRAGMA = "PRAGMA cache_size = -65536"  # 64 MiB page cache per connection
_PRAGMAS = (
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA temp_store = MEMORY",
    CACHE_PRAGMA,
    "PRAGMA mmap_size = 268435456",
)
_UNAVAILABLE = ("locked", "busy", "unable to open", "disk i/o", "readonly", "read-only", "disk is full",
                "not a database", "malformed")
MIN_SQLITE = (3, 35, 0)  # RETURNING
BULK_CACHE_KIB = 512 * 1024
_UPSERT = (f"INSERT INTO patients ({PCOLS}) VALUES ({PVALUES}) "  # noqa: S608 - constants only
           f"ON CONFLICT (nhs_number) DO UPDATE SET {UPSERT_SET}")
# The patients table's secondary indexes, exactly as the migrations created them (dropped and rebuilt by bulk loads).
_SEARCH_INDEXES = ("SELECT name, sql FROM sqlite_master "
                   "WHERE type = 'index' AND tbl_name = 'patients' AND sql IS NOT NULL")


class _Pool:
    """Connections created lazily up to ``size``; each is used by one thread at a time.

    A connection is closed only while no thread uses it: :meth:`close` closes the idle ones and every one in use is
    closed by its thread when it hands it back (closing one under a running statement crashes the process)."""

    def __init__(self, connect: Any, size: int, timeout: float, expired: Any) -> None:
        self._connect = connect
        self._timeout = timeout
        self._expired = expired  # () -> the StoreTimeout to raise when no connection frees up in time
        self._idle: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()  # guards ``closed`` against the hand-back of a connection
        self.closed = False

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        if not self._slots.acquire(timeout=self._timeout):
            raise self._expired()
        try:
            with self._lock:
                if self.closed:
                    raise StoreError("the store has been closed; open it again")
                try:
                    conn = self._idle.get_nowait()
                except queue.Empty:
                    conn = None
            if conn is None:
                conn = self._connect()
            try:
                yield conn
            finally:
                with self._lock:
                    if self.closed:
                        conn.close()
                    else:
                        self._idle.put(conn)
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            while True:
                try:
                    self._idle.get_nowait().close()
                except queue.Empty:
                    break


class SQLiteStore(SqlStore):
    bulk_threshold = PUT_BATCH  # rows in the first batch that make a load into an empty table a bulk load
    _integrity_errors = (sqlite3.IntegrityError,)
    _explain_prefix = "EXPLAIN QUERY PLAN "

    def __init__(self, path: str, *, url: str | None = None, pool_size: int = 8,
                 timeout: float = DB_WAIT_SECONDS) -> None:
        self.path = path
        self.timeout = timeout
        self._waits = Waits()
        self.url = url or f"sqlite:///{path}"
        self._memory = path == ":memory:"
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StoreUnavailable(self.url, f"SQLite {sqlite3.sqlite_version} is too old",
                                   "Spine Desk needs SQLite 3.35 or newer; install a current Python build")
        if not self._memory and not Path(path).parent.is_dir():
            raise StoreUnavailable(self.url, f"the directory {Path(path).parent} does not exist",
                                   "create it, or give --database a path in an existing directory")
        if not self._memory:
            self._make_private()
        # One in-memory database is one connection: share it (tests only).
        self._pool = _Pool(self._connect, 1 if self._memory else max(1, pool_size), timeout,
                           lambda: StoreTimeout(self.url, "waiting for a free database connection", self.timeout))
        self._write_lock = threading.Lock()
        self._lock_fd = self._open_lock_file()
        try:
            self._migrate()
        except BaseException:
            self._pool.close()
            raise
        if not self._memory:
            self._make_private()

    # --- connections and transactions -----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {round(self.timeout * 1000)}")
            for pragma in _PRAGMAS:
                conn.execute(pragma)
            if not self._memory:
                mode = self._set_wal(conn)
                if mode != "wal":
                    raise StoreUnavailable(self.url, f"the database cannot use write-ahead logging ({mode})",
                                           "put the database file on a local disk")
        except sqlite3.Error as exc:
            conn.close()
            raise self._unavailable(exc) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _set_wal(self, conn: sqlite3.Connection) -> str:
        """Switch to WAL. The first switch needs an exclusive lock, and SQLite answers "locked" at once (without
        waiting in the busy handler) when two processes create the file together: retry until the timeout."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.005, 0.05))  # noqa: S311 - jitter, not security

    def _unavailable(self, exc: sqlite3.Error) -> StoreUnavailable:
        text = str(exc)
        if "not a database" in text or "malformed" in text:
            hint = "the file is not a usable Spine Desk database; restore it from a backup or choose a new file"
        elif "locked" in text or "busy" in text:
            return StoreTimeout(self.url, f"waiting for a database lock ({text})", self.timeout)
        else:
            hint = "check that the directory exists, that this user may write to it and that the disk has space"
        return StoreUnavailable(self.url, text, hint)

    @contextmanager
    def _mapped(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:  # OperationalError included; IntegrityError is the caller's
            if not isinstance(exc, sqlite3.IntegrityError) and any(w in str(exc).lower() for w in _UNAVAILABLE):
                raise self._unavailable(exc) from exc
            raise

    @contextmanager
    def _read(self, *, tx: bool = False) -> Iterator[sqlite3.Cursor]:
        key = self._waits.begin()
        try:
            with self._mapped(), self._pool.connection() as conn:
                cur = conn.cursor()
                if not tx:
                    yield cur
                    return
                conn.execute("BEGIN")
                try:
                    yield cur
                finally:
                    conn.execute("COMMIT")
        finally:
            self._waits.end(key)

    def _make_private(self) -> None:
        """The database holds patient data: create it 0600 (SQLite gives its -wal and -shm files the database
        file's mode) and take group/other access off the files an older version left readable."""
        with suppress(OSError):  # an unwritable place is reported by SQLite itself, with its hint
            create_private_file(Path(self.path))
        tighten(Path(f"{self.path}{suffix}") for suffix in ("-wal", "-shm", "-journal", ".writelock"))

    def _open_lock_file(self) -> int | None:
        """Writers of several processes queue on an OS file lock beside the database before BEGIN IMMEDIATE.

        SQLite's own busy handler polls with sleeps of up to 100 ms, so two busy processes made each other
        wait for whole sleep periods (measured: p99 1.75 s with two service workers); a blocking ``flock`` wakes
        the next writer the moment the lock is free. Without fcntl (Windows) SQLite's busy handler remains.
        """
        if self._memory or fcntl is None:
            return None
        try:
            return os.open(f"{self.path}.writelock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreUnavailable(self.url, f"cannot create {self.path}.writelock ({exc.strerror})") from exc

    @contextmanager
    def _process_lock(self) -> Iterator[None]:
        if self._lock_fd is None:
            yield
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # releases the GIL while it waits
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        key = self._waits.begin()
        if not self._write_lock.acquire(timeout=self.timeout):
            self._waits.end(key)
            raise StoreTimeout(self.url, "waiting for this process's other database writers", self.timeout)
        try:
            with self._mapped(), self._process_lock(), self._pool.connection() as conn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn.cursor()
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        finally:
            self._write_lock.release()
            self._waits.end(key)

    def _migrate(self) -> None:
        with self._write() as cur:
            apply_pending(cur, schema_sqlite.MIGRATIONS)

    # --- codecs ---------------------------------------------------------------------------------------------

    def _enc_ts(self, value: datetime) -> str:
        return aware(value).astimezone(UTC).isoformat(timespec="microseconds")

    def _dec_ts(self, value: Any) -> datetime:
        return datetime.fromisoformat(value)

    def _enc_date(self, value: date | None) -> str | None:
        return value.isoformat() if value is not None else None

    def _dec_date(self, value: Any) -> date | None:
        return date.fromisoformat(value) if value else None

    def _enc_json(self, value: Any) -> str:
        return dumps(value)

    def _dec_json(self, value: Any) -> Any:
        return loads(value)

    # --- dialect-specific operations ------------------------------------------------------------------------

    def put_patients(self, rows: Iterable[PatientRow], *, analyze: bool = True) -> int:
        """Upsert in transactions of ``PUT_BATCH`` rows.

        Seeding an EMPTY table with at least ``bulk_threshold`` rows takes the bulk path instead: ONE transaction
        that drops the search indexes, inserts everything and rebuilds them (a crash rolls all of it back). It
        holds the write lock throughout (other writers wait, and give up after the busy timeout): seed before
        serving.
        """
        it = iter(rows)
        first = list(islice(it, PUT_BATCH))
        if not first:
            return 0
        batches = itertools.chain([first], chunks(it, PUT_BATCH))
        total = 0
        if len(first) >= self.bulk_threshold and self._patients_empty():
            with self._write() as cur:
                cur.execute(f"PRAGMA cache_size = {-BULK_CACHE_KIB}")
                try:
                    indexes = cur.execute(_SEARCH_INDEXES).fetchall()
                    for name, _ in indexes:
                        cur.execute(f'DROP INDEX "{name}"')
                    for batch in batches:
                        cur.executemany(_UPSERT, [self.patient_params(r) for r in batch])
                        total += len(batch)
                    for _, definition in indexes:
                        cur.execute(definition)
                finally:
                    cur.execute(CACHE_PRAGMA)
        else:
            for batch in batches:
                params = [self.patient_params(r) for r in batch]
                with self._write() as cur:
                    cur.executemany(_UPSERT, params)
                total += len(batch)
        if total >= 10_000 and analyze:
            self.analyze()
        return total

    def _patients_empty(self) -> bool:
        with self._read() as cur:
            return cur.execute("SELECT 1 FROM patients LIMIT 1").fetchone() is None

    def analyze(self) -> None:
        """Refresh the planner's statistics (sampled, so quick even at millions of rows)."""
        with self._write() as cur:
            cur.execute("PRAGMA analysis_limit = 1000")
            cur.execute("ANALYZE")

    def close(self) -> None:
        if self._pool.closed:
            return
        if not self._memory:
            with self._pool.connection() as conn, suppress(sqlite3.Error):
                conn.execute("PRAGMA optimize")
        self._pool.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
