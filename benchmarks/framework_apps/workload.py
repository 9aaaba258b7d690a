"""The audited PDS read that every candidate app serves, identical across frameworks and servers.

Per request: check ``X-Request-ID`` (UUID) and the NHS number's shape; hash the bearer token and look it up in a
dict (a cached session); check ``NHSD-Session-URID`` is one of that user's role profiles; read the patient's JSON
and version from SQLite (WAL, 100k rows, random NHS numbers, one read connection per worker process); append an
audit record to a SHA-256 hash chain; only after the record is COMMITted return the JSON with ``ETag: W/"n"``
and the echoed ``X-Request-ID``.

The audit table, its indexes and the chain head mirror ``app/service/storage/schema_sqlite.py``; the record hash
mirrors ``app/service/store/audit_chain.compute_hash`` (canonical JSON, sorted keys, SHA-256, ``seq`` and
``prev_hash`` inside). Every write is ``BEGIN IMMEDIATE`` → read the chain head → insert → move the head →
``COMMIT``, so several worker processes keep one consistent chain.

Configured by environment variables (read once per worker process):

* ``FWBENCH_DB``          the SQLite file (made by ``framework_choice.py``)
* ``FWBENCH_AUDIT``       ``none`` | ``naive`` (INSERT + COMMIT per request, inline) |
                          ``group-thread`` (a writer thread commits batches) |
                          ``group-loop`` (a writer callback on the event loop commits batches)
* ``FWBENCH_SYNC``        ``NORMAL`` | ``FULL`` (PRAGMA synchronous of the audit writer)
* ``FWBENCH_BATCH_MAX``   most records in one audit transaction (256)
* ``FWBENCH_BATCH_WAIT_MS`` how long the writer waits to fill a batch after its first record (0: commit whatever
                          queued while the previous COMMIT ran — natural group commit)
* ``FWBENCH_XLOCK``       ``flock``: writers of all processes queue on a blocking ``flock`` of ``<db>.lock`` before
                          ``BEGIN IMMEDIATE`` (a wake-up when the holder commits) instead of relying on SQLite's
                          busy handler alone (sleep 1, 2, 5, 10 … 100 ms and retry: unfair, long tails)
* ``FWBENCH_STATS``       if set, a directory where each worker writes ``<pid>.json`` (audit transactions, records,
                          seconds inside them) when it exits
* ``FWBENCH_SWITCH_MS``   if set, ``sys.setswitchinterval`` (ms) in each worker: how long the writer thread may wait
                          for the GIL while the event loop thread is busy (CPython's default is 5 ms)

Nothing here imports a web framework; no state is created at import time (workers fork after import).
"""

from __future__ import annotations

import asyncio
import atexit
import fcntl
import hashlib
import json
import os
import queue
import re
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

PREFIX = "/personal-demographics/FHIR/R4/Patient/"
ROUTE = PREFIX + "{nhs}"
GENESIS = "0" * 64
BENCH_TOKEN = "bench-session-token-0000-6f1c2d3e4a5b"  # the token wrk sends (session 0)
BENCH_URID = "555021935107"  # the role profile wrk sends
FHIR_JSON = "application/fhir+json"

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
NHS_RE = re.compile(r"^[0-9]{10}\Z")

AUDIT_COLS = "seq, at, user_id, role_profile_id, org, action, nhs_number, request_id, outcome, details, prev_hash, hash"

SCHEMA = (
    """CREATE TABLE patient (
        nhs_number TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        resource BLOB NOT NULL)""",
    """CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        user_id TEXT NOT NULL,
        role_profile_id TEXT NOT NULL,
        org TEXT NOT NULL,
        action TEXT NOT NULL,
        nhs_number TEXT,
        request_id TEXT NOT NULL,
        outcome TEXT NOT NULL,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL)""",
    "CREATE INDEX audit_log_nhs ON audit_log (nhs_number, seq)",
    "CREATE INDEX audit_log_user ON audit_log (user_id, seq)",
    "CREATE INDEX audit_log_at ON audit_log (at)",
    """CREATE TABLE audit_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_seq INTEGER NOT NULL,
        last_hash TEXT NOT NULL)""",
    f"INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, 0, '{GENESIS}')",
)

# A static OpenAPI document for the candidates that do not generate one (raw ASGI, Starlette).
OPENAPI_DOC = json.dumps({
    "openapi": "3.0.3",
    "info": {"title": "Spine Desk PDS (benchmark)", "version": "0"},
    "paths": {ROUTE.replace("{nhs}", "{id}"): {"get": {
        "operationId": "readPatient",
        "parameters": [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9]{10}$"}},
            {"name": "X-Request-ID", "in": "header", "required": True, "schema": {"type": "string", "format": "uuid"}},
            {"name": "NHSD-Session-URID", "in": "header", "required": True, "schema": {"type": "string"}},
        ],
        "responses": {"200": {"description": "the Patient",
                              "headers": {"ETag": {"schema": {"type": "string"}}},
                              "content": {FHIR_JSON: {"schema": {"type": "object"}}}}},
    }}},
}).encode()


# --- the hash chain ----------------------------------------------------------------------------------------------

def format_at(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def compute_hash(*, seq: int, at: str, user_id: str, role_profile_id: str, org: str, action: str,
                 nhs_number: str | None, request_id: str, outcome: str, details_json: str, prev_hash: str) -> str:
    doc = {
        "seq": seq, "at": at, "user_id": user_id, "role_profile_id": role_profile_id, "org": org,
        "action": action, "nhs_number": nhs_number, "request_id": request_id, "outcome": outcome,
        "details": json.loads(details_json), "prev_hash": prev_hash,
    }
    data = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


@dataclass(slots=True)
class AuditEntry:
    at: str
    user_id: str
    role_profile_id: str
    org: str
    action: str
    nhs_number: str | None
    request_id: str
    outcome: str
    details_json: str


_INSERT_SQL: dict[int, str] = {}


def _insert_sql(n: int) -> str:
    """One multi-row INSERT: one sqlite3_step (one GIL release) per batch instead of one per record."""
    sql = _INSERT_SQL.get(n)
    if sql is None:
        row = "(" + ", ".join("?" * 12) + ")"
        sql = _INSERT_SQL[n] = f"INSERT INTO audit_log ({AUDIT_COLS}) VALUES " + ", ".join([row] * n)
    return sql


STATS = {"transactions": 0, "records": 0, "seconds": 0.0, "largest": 0}
_last_dump = [0.0]


class FileLock:
    """An inter-process writer queue: a blocking ``flock`` (the waiting thread sleeps in the kernel, GIL released,
    and wakes when the holder unlocks)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


NO_LOCK = _NoLock()


def write_batch(conn: sqlite3.Connection, entries: list[AuditEntry], lock: FileLock | _NoLock = NO_LOCK) -> int:
    """Chain and commit ``entries`` in one transaction that serialises with every other writer process."""
    started = time.perf_counter()
    with lock:
        seq = _write_batch(conn, entries)
    STATS["transactions"] += 1
    STATS["records"] += len(entries)
    STATS["seconds"] += time.perf_counter() - started
    STATS["largest"] = max(STATS["largest"], len(entries))
    if started - _last_dump[0] > 0.5:  # workers are not always given the chance to run atexit
        _last_dump[0] = started
        _dump_stats()
    return seq


def _write_batch(conn: sqlite3.Connection, entries: list[AuditEntry]) -> int:
    conn.execute("BEGIN IMMEDIATE")
    try:
        seq, prev = conn.execute("SELECT last_seq, last_hash FROM audit_head WHERE id = 1").fetchone()
        params: list[object] = []
        for e in entries:
            seq += 1
            h = compute_hash(seq=seq, at=e.at, user_id=e.user_id, role_profile_id=e.role_profile_id, org=e.org,
                             action=e.action, nhs_number=e.nhs_number, request_id=e.request_id,
                             outcome=e.outcome, details_json=e.details_json, prev_hash=prev)
            params += (seq, e.at, e.user_id, e.role_profile_id, e.org, e.action, e.nhs_number, e.request_id,
                       e.outcome, e.details_json, prev, h)
            prev = h
        conn.execute(_insert_sql(len(entries)), params)
        conn.execute("UPDATE audit_head SET last_seq = ?, last_hash = ? WHERE id = 1", (seq, prev))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return seq


def _dump_stats() -> None:
    folder = os.environ.get("FWBENCH_STATS")
    if folder and STATS["transactions"]:
        with open(os.path.join(folder, f"{os.getpid()}.json"), "w") as f:
            json.dump(STATS, f)


def verify_chain(db_path: str) -> tuple[bool, int, str]:
    """(ok, records, message): every record links to the one before, hashes recompute, the head matches."""
    conn = sqlite3.connect(db_path)
    try:
        head_seq, head_hash = conn.execute("SELECT last_seq, last_hash FROM audit_head WHERE id = 1").fetchone()
        expected, prev = 1, GENESIS
        for (seq, at, user_id, role, org, action, nhs, rid, outcome, details, prev_hash, stored) in conn.execute(
                f"SELECT {AUDIT_COLS} FROM audit_log ORDER BY seq"):
            if seq != expected:
                return False, expected - 1, f"gap or reorder at seq {seq} (expected {expected})"
            if prev_hash != prev:
                return False, expected - 1, f"record {seq} does not link to {seq - 1}"
            actual = compute_hash(seq=seq, at=at, user_id=user_id, role_profile_id=role, org=org, action=action,
                                  nhs_number=nhs, request_id=rid, outcome=outcome, details_json=details,
                                  prev_hash=prev_hash)
            if actual != stored:
                return False, expected - 1, f"record {seq} hash differs"
            prev, expected = stored, expected + 1
        if expected - 1 != head_seq or prev != head_hash:
            return False, expected - 1, "chain head does not match the last record"
        return True, head_seq, f"{head_seq} records verified"
    finally:
        conn.close()


# --- audit strategies --------------------------------------------------------------------------------------------

def _writer_lock(db_path: str) -> FileLock | _NoLock:
    return FileLock(db_path + ".lock") if os.environ.get("FWBENCH_XLOCK") == "flock" else NO_LOCK


def _writer_connection(db_path: str, sync: str) -> sqlite3.Connection:
    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {sync}")
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


class NaiveAudit:
    """INSERT + COMMIT for each request, on the event loop thread (what a straightforward handler does)."""

    def __init__(self, db_path: str, sync: str) -> None:
        self.conn = _writer_connection(db_path, sync)
        self.lock = _writer_lock(db_path)

    async def append(self, entry: AuditEntry) -> None:
        write_batch(self.conn, [entry], self.lock)


class ThreadGroupAudit:
    """Requests enqueue and await a future; one writer thread per process commits batches, then resolves them."""

    def __init__(self, db_path: str, sync: str, max_batch: int, wait_s: float) -> None:
        self.q: queue.SimpleQueue = queue.SimpleQueue()
        self.max_batch, self.wait_s = max_batch, wait_s
        self.conn = _writer_connection(db_path, sync)
        self.lock = _writer_lock(db_path)
        threading.Thread(target=self._run, name="audit-writer", daemon=True).start()

    async def append(self, entry: AuditEntry) -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.q.put((entry, fut, loop))
        await fut

    def _run(self) -> None:
        q, max_batch, wait_s = self.q, self.max_batch, self.wait_s
        while True:
            batch = [q.get()]
            deadline = time.monotonic() + wait_s
            while len(batch) < max_batch:
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        batch.append(q.get(timeout=remaining))
                    except queue.Empty:
                        break
            error: BaseException | None = None
            try:
                write_batch(self.conn, [b[0] for b in batch], self.lock)
            except BaseException as exc:  # report to every waiter, keep the writer alive
                error = exc
            by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = {}
            for _, fut, loop in batch:
                by_loop.setdefault(loop, []).append(fut)
            for loop, futs in by_loop.items():  # one wake-up per loop per batch
                loop.call_soon_threadsafe(_resolve, futs, error)


def _resolve(futs: list[asyncio.Future], error: BaseException | None) -> None:
    for fut in futs:
        if not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)


class LoopGroupAudit:
    """Group commit on the event loop thread: records that reach the audit step in one loop iteration (or within
    the wait) are committed by one callback; their futures resolve after COMMIT. No GIL hand-off, but the COMMIT
    (and its fsync under synchronous=FULL) runs on the loop."""

    def __init__(self, db_path: str, sync: str, max_batch: int, wait_s: float) -> None:
        self.conn = _writer_connection(db_path, sync)
        self.lock = _writer_lock(db_path)
        self.max_batch, self.wait_s = max_batch, wait_s
        self.pending: list[tuple[AuditEntry, asyncio.Future]] = []
        self.scheduled = False

    async def append(self, entry: AuditEntry) -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.pending.append((entry, fut))
        if len(self.pending) >= self.max_batch:
            self._flush()
        elif not self.scheduled:
            self.scheduled = True
            if self.wait_s > 0:
                loop.call_later(self.wait_s, self._flush)
            else:
                loop.call_soon(self._flush)
        await fut

    def _flush(self) -> None:
        self.scheduled = False
        batch, self.pending = self.pending, []
        if not batch:
            return
        error: BaseException | None = None
        try:
            write_batch(self.conn, [b[0] for b in batch], self.lock)
        except BaseException as exc:
            error = exc
        _resolve([b[1] for b in batch], error)


class NoAudit:
    async def append(self, entry: AuditEntry) -> None:
        return None


# --- the request -------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CachedSession:
    user_id: str
    expires_at: float
    roles: dict[str, str]  # URID -> org ODS code


def outcome(status: int, code: str, text: str) -> tuple[int, str | None, bytes]:
    body = json.dumps({"resourceType": "OperationOutcome", "issue": [{
        "severity": "error", "code": "processing", "details": {"coding": [{
            "system": "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode", "code": code}]},
        "diagnostics": text}]}).encode()
    return status, None, body


class Workload:
    def __init__(self) -> None:
        self.db_path = os.environ["FWBENCH_DB"]
        atexit.register(_dump_stats)
        if os.environ.get("FWBENCH_SWITCH_MS"):
            sys.setswitchinterval(float(os.environ["FWBENCH_SWITCH_MS"]) / 1000)
        mode = os.environ.get("FWBENCH_AUDIT", "group-thread")
        sync = os.environ.get("FWBENCH_SYNC", "FULL").upper()
        if sync not in ("NORMAL", "FULL"):
            raise ValueError(f"FWBENCH_SYNC={sync}")
        max_batch = int(os.environ.get("FWBENCH_BATCH_MAX", "256"))
        wait_s = float(os.environ.get("FWBENCH_BATCH_WAIT_MS", "0")) / 1000
        self.read = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False)
        self.read.execute("PRAGMA query_only = ON")
        self.read.execute("PRAGMA cache_size = -65536")
        self.read.execute("PRAGMA mmap_size = 268435456")
        self.audit: NoAudit | NaiveAudit | ThreadGroupAudit | LoopGroupAudit
        if mode == "none":
            self.audit = NoAudit()
        elif mode == "naive":
            self.audit = NaiveAudit(self.db_path, sync)
        elif mode == "group-thread":
            self.audit = ThreadGroupAudit(self.db_path, sync, max_batch, wait_s)
        elif mode == "group-loop":
            self.audit = LoopGroupAudit(self.db_path, sync, max_batch, wait_s)
        else:
            raise ValueError(f"FWBENCH_AUDIT={mode}")
        # 1,000 cached sessions keyed by SHA-256 of the token; wrk uses session 0.
        far = time.time() + 86400
        self.sessions = {}
        for i in range(1000):
            token = BENCH_TOKEN if i == 0 else f"bench-session-token-{i:04d}-{i * 7919:012x}"
            urid = BENCH_URID if i == 0 else f"5550{i:08d}"
            self.sessions[hashlib.sha256(token.encode()).hexdigest()] = CachedSession(
                user_id=f"9{i:011d}", expires_at=far, roles={urid: "Y12345"})

    async def pds_read(self, nhs: str, authorization: str | None, request_id: str | None,
                       urid: str | None) -> tuple[int, str | None, bytes]:
        """(status, ETag or None, body). The audit record is committed before this returns."""
        if not request_id or not UUID_RE.match(request_id):
            return outcome(400, "INVALID_VALUE", "X-Request-ID must be a UUID")
        if not authorization or not authorization.startswith("Bearer "):
            return outcome(401, "ACCESS_DENIED", "missing bearer token")
        session = self.sessions.get(hashlib.sha256(authorization[7:].encode()).hexdigest())
        if session is None or session.expires_at < time.time():
            return outcome(401, "ACCESS_DENIED", "invalid or expired session")
        org = session.roles.get(urid or "")
        if org is None:
            return outcome(403, "ACCESS_DENIED", "NHSD-Session-URID is not one of the user's role profiles")
        if not NHS_RE.match(nhs):
            return outcome(400, "INVALID_RESOURCE_ID", "not an NHS number")
        row = self.read.execute("SELECT version, resource FROM patient WHERE nhs_number = ?", (nhs,)).fetchone()
        status = 200 if row else 404
        await self.audit.append(AuditEntry(
            at=format_at(datetime.now(UTC)), user_id=session.user_id, role_profile_id=urid or "", org=org,
            action="pds.read", nhs_number=nhs, request_id=request_id, outcome=str(status),
            details_json=f'{{"version":{row[0] if row else "null"}}}'))
        if row is None:
            return outcome(404, "RESOURCE_NOT_FOUND", "no such patient")
        return 200, f'W/"{row[0]}"', row[1]


_state: tuple[int, Workload] | None = None


def get_workload() -> Workload:
    """The worker process's workload, made on first use (after any fork)."""
    global _state
    if _state is None or _state[0] != os.getpid():
        _state = (os.getpid(), Workload())
    return _state[1]


# --- the database ------------------------------------------------------------------------------------------------

def _nhs_number(rng) -> str:
    while True:
        digits = [rng.randrange(10) for _ in range(9)]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        if check == 11:
            check = 0
        if check != 10:
            return "".join(map(str, digits)) + str(check)


def create_database(path: str, patients: int = 100_000, seed: int = 20240501) -> list[str]:
    """A fresh WAL database of ``patients`` synthetic FHIR Patients with random NHS numbers; returns the keys."""
    import random
    rng = random.Random(seed)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for stmt in SCHEMA:
        conn.execute(stmt)
    families = ["SMITH", "JONES", "TAYLOR", "BROWN", "WILLIAMS", "WILSON", "JOHNSON", "DAVIES", "PATEL", "KHAN"]
    givens = ["OLIVIA", "AMELIA", "ISLA", "AVA", "MUHAMMAD", "NOAH", "OLIVER", "GEORGE", "LEO", "ARTHUR"]
    seen: set[str] = set()
    rows = []
    while len(rows) < patients:
        nhs = _nhs_number(rng)
        if nhs in seen:
            continue
        seen.add(nhs)
        version = rng.randint(1, 5)
        resource = {
            "resourceType": "Patient", "id": nhs, "meta": {"versionId": str(version), "security": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "U",
                "display": "unrestricted"}]},
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs, "extension": [{
                "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",
                "valueCodeableConcept": {"coding": [{
                    "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatus",
                    "code": "01", "display": "Number present and verified"}]}}]}],
            "name": [{"id": "123", "use": "usual", "period": {"start": "2010-01-01"},
                      "given": [rng.choice(givens), rng.choice(givens)], "family": rng.choice(families),
                      "prefix": ["Mrs"]}],
            "gender": rng.choice(["male", "female"]),
            "birthDate": f"{rng.randint(1930, 2023)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "address": [{"id": "456", "period": {"start": "2020-01-01"}, "use": "home",
                         "line": [f"{rng.randint(1, 300)} High Street", "Leeds"],
                         "postalCode": f"LS{rng.randint(1, 29)} {rng.randint(1, 9)}AE"}],
            "generalPractitioner": [{"id": "254406A3", "type": "Organization", "identifier": {
                "system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": f"Y{rng.randint(10000, 99999)}"}}],
            "telecom": [{"id": "789", "period": {"start": "2020-01-01"}, "system": "phone",
                         "use": "home", "value": f"0113{rng.randint(1000000, 9999999)}"}],
        }
        rows.append((nhs, version, json.dumps(resource, separators=(",", ":")).encode()))
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO patient VALUES (?, ?, ?)", rows)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return [r[0] for r in rows]


def reset_audit(path: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("DELETE FROM audit_log")
    conn.execute(f"UPDATE audit_head SET last_seq = 0, last_hash = '{GENESIS}' WHERE id = 1")
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
