"""Group commit for audit records: many request threads, one writer thread, one transaction per batch.

Each audited request calls ``append(entry)`` (or awaits ``asyncio.wrap_future(submit(entry))``) and blocks until
the batch holding its record has COMMITTED; only then may the HTTP response leave. A batch is whatever queued
while the previous batch was committing (up to ``max_batch``) — and, when the previous batch had more than one
record (load), whatever arrives within ``linger`` of the first —, so under load one commit (one fsync, one chain
lock round) carries many records and throughput scales with load instead of being bounded by commit latency;
when idle a record is written at once (no added delay). If the commit fails, every caller in that batch gets
the error and none of the batch is stored: the service must then fail the request (no unaudited data leaves).
With several processes, each has its own writer; the store's chain lock orders their batches.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

from .audit_chain import canonical_details
from .base import AuditEntry, Store
from .errors import StoreError
from .rows import AuditRecord

_STOP: Any = object()
# Under load, the writer waits this long after the first record before committing, so that one commit carries the
# records of every request in flight. Measured (benchmarks/pds_read.py, one worker): without it batches averaged 3
# records and the audit took half the service's CPU; see docs/decisions/service-server.md. Idle: no wait at all.
LINGER_SECONDS = 0.002


class AuditWriter:
    def __init__(self, store: Store, *, max_batch: int = 500, linger: float = LINGER_SECONDS) -> None:
        self._store = store
        self._max_batch = max_batch
        self._linger = linger
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def submit(self, entry: AuditEntry) -> Future[AuditRecord]:
        """Queue a record; the future resolves once it is committed (or fails with the commit's error)."""
        canonical_details(entry.details)  # a record that cannot be encoded fails its own caller only
        future: Future[AuditRecord] = Future()
        with self._lock:
            if self._closed:
                raise StoreError("the audit writer has been closed; no more records can be written")
            self._queue.put((entry, future))
        return future

    def append(self, entry: AuditEntry, timeout: float | None = None) -> AuditRecord:
        """Queue a record and wait until it is committed."""
        return self.submit(entry).result(timeout)

    def close(self, timeout: float | None = 30) -> None:
        """Write what is queued, then stop the writer thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        busy = False  # the last batch had company: records are arriving faster than one commit each
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if busy and self._linger > 0:
                time.sleep(self._linger)  # let the requests in flight join this commit (one fsync for all)
            batch, stopping = self._drain([item])
            busy = len(batch) > 1
            self._commit(batch)
            if stopping:
                return

    def _drain(self, batch: list[Any]) -> tuple[list[Any], bool]:
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _commit(self, batch: list[tuple[AuditEntry, Future[AuditRecord]]]) -> None:
        try:
            records = self._store.append_audit_many([entry for entry, _ in batch])
        except BaseException as exc:  # every waiter must hear about it; the thread keeps serving
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), record in zip(batch, records, strict=True):
            future.set_result(record)
