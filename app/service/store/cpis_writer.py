"""Group commit for CP-IS access writes (the access event, its notifications' outbox rows and its audit records).

Like ``AuditWriter``: requests queue their ``AccessWrite`` and get a future; one writer thread commits whatever
queued while the previous transaction was committing in ONE transaction (``Store.record_cpis_accesses``), so
under load one fsync serves many unscheduled views and the event loop never waits on a commit (the HTTP adapter
awaits the future before the response leaves). A failed commit fails every request in that batch and stores
none of it: no response claims an access that was not recorded.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

from .base import Store
from .base_cpis import AccessWrite
from .errors import StoreError

_STOP: Any = object()
LINGER_SECONDS = 0.002


class CpisAccessWriter:
    def __init__(self, store: Store, *, max_batch: int = 200, linger: float = LINGER_SECONDS) -> None:
        self._store = store
        self._max_batch = max_batch
        self._linger = linger
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="cpis-access-writer", daemon=True)
        self._thread.start()

    def submit(self, item: AccessWrite) -> Future[bool]:
        """Queue one access; the future resolves (True: a new access) once it is committed, or fails."""
        future: Future[bool] = Future()
        with self._lock:
            if self._closed:
                raise StoreError("the CP-IS access writer has been closed")
            self._queue.put((item, future))
        return future

    def close(self, timeout: float | None = 30) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        busy = False
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            if busy and self._linger > 0:
                time.sleep(self._linger)
            batch, stopping = [first], False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            busy = len(batch) > 1
            self._commit(batch)
            if stopping:
                return

    def _commit(self, batch: list[tuple[AccessWrite, Future[bool]]]) -> None:
        try:
            created = self._store.record_cpis_accesses([item for item, _ in batch])
        except BaseException as exc:  # every waiter hears about it; the thread keeps serving
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), new in zip(batch, created, strict=True):
            future.set_result(new)
