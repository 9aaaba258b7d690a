"""Group commit: many request threads, one writer thread, one transaction per batch.

Each caller ``submit``s an item and gets a future that resolves once the batch holding the item has COMMITTED
(or fails with the commit's error); only then may its HTTP response leave. A batch is whatever queued while the
previous batch was committing (up to ``max_batch``) — and, when the previous batch had more than one item
(load), whatever arrives within ``linger`` of the first —, so under load one commit (one fsync, one round of
locks) carries many items and throughput scales with load instead of being bounded by commit latency; when idle
an item is written at once (no added delay). If the commit fails, none of the batch is stored; one bad item
(a value the database refuses) must not fail everybody else's request, so the batch is committed again in halves,
and halves of those, until only the failing items remain: they alone get the error (for one bad item in ``n``,
about ``2·log2(n)`` extra commits). An error that says the database itself is unavailable is not retried: every
caller hears it at once. With several processes, each has its own writer; the store's locks order batches.

``failing`` says whether the writer cannot write (since when, and the exception's type): set when a commit fails for
a reason other than one bad item (the database unavailable, a disk full), cleared by the next commit that succeeds.
``GET /_status`` reports it, so a full disk is not a "pass".
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from .errors import StoreError, StoreUnavailable

T = TypeVar("T")
R = TypeVar("R")
_STOP: Any = object()
# Under load, the writer waits this long after the first item before committing, so that one commit carries the
# items of every request in flight. Measured (benchmarks/pds_read.py, one worker): without it audit batches
# averaged 3 records and the audit took half the service's CPU; with it ~12 (docs/decisions/service-server.md).
LINGER_SECONDS = 0.002
# Errors of the database as a whole, not of one item: splitting the batch would only repeat them.
# (By name, so that this module needs no driver: the DB-API and psycopg_pool names for a lost or refused connection.)
UNAVAILABLE_NAMES = frozenset({"OperationalError", "InterfaceError", "PoolTimeout", "PoolClosed", "TooManyRequests"})


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database could not be used at all (so retrying the items one by one is futile)."""
    if isinstance(exc, StoreUnavailable | OSError):
        return True
    return any(cls.__name__ in UNAVAILABLE_NAMES for cls in type(exc).__mro__)


@dataclass(frozen=True)
class CommitFailure:
    since: datetime  # the first failed commit of this run of failures
    error: str  # the exception's type (its text may carry what was being written: logged, never reported)


class GroupCommitter(Generic[T, R]):
    def __init__(self, commit: Callable[[list[T]], Sequence[R]], *, name: str, max_batch: int = 500,
                 linger: float = LINGER_SECONDS, clock: Callable[[], datetime] | None = None) -> None:
        """``commit(items)`` writes ALL items in ONE transaction and returns one result per item, in order."""
        self._commit_batch = commit
        self._name = name
        self._clock = clock or (lambda: datetime.now(UTC))
        self.failing: CommitFailure | None = None  # the last commit failed (None: it succeeded, or none yet)
        self._max_batch = max_batch
        self._linger = linger
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> Future[R]:
        """Queue an item; the future resolves once it is committed (or fails with the commit's error)."""
        future: Future[R] = Future()
        with self._lock:
            if self._closed:
                raise StoreError(f"the {self._name} has been closed; nothing more can be written")
            self._queue.put((item, future))
        return future

    def close(self, timeout: float | None = 30) -> None:
        """Write what is queued, then stop the writer thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        busy = False  # the last batch had company: items are arriving faster than one commit each
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

    def _commit(self, batch: list[tuple[T, Future[R]]]) -> None:
        try:
            results = self._commit_batch([item for item, _ in batch])
        except BaseException as exc:  # every waiter must hear about it; the thread keeps serving
            if len(batch) == 1 or not isinstance(exc, Exception) or database_unavailable(exc):
                writer_broken = len(batch) > 1 or database_unavailable(exc) or not isinstance(exc, Exception)
                if writer_broken and self.failing is None:  # the writer cannot write (not merely one refused item)
                    self.failing = CommitFailure(self._clock(), type(exc).__name__)
                for _, future in batch:
                    if not future.done():  # a waiter may have given up on it (cancelled)
                        future.set_exception(exc)
                return
            # the transaction was rolled back: nothing of the batch is stored; find the item(s) that failed it
            middle = len(batch) // 2
            self._commit(batch[:middle])
            self._commit(batch[middle:])
            return
        self.failing = None
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
