"""What the service keeps, for how long, and the job that deletes the rest.

Expired login challenges, expired sessions and stored idempotent answers (whole patient views) past their
retention are deleted by a :class:`Purger` thread in every service process (started by ``runtime.build_service``,
stopped by ``Service.close``). Processes share the work through the database: each deletes in small batches, one
short transaction per batch, so a purge never holds the write lock for long. ``spinedesk service --retention
NAME=VALUE`` changes a setting.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from app.errors import AppError
from app.service.core.tunables import Tunables
from app.service.store import Store, StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retention(Tunables):
    # Seconds a stored answer to an X-Request-ID is kept for a retry to replay it; after that a retry with the
    # same id is answered afresh. A day outlasts every client retry policy.
    idempotency_ttl: float = 24 * 3600.0
    purge_interval: float = 60.0  # seconds between purges in each process
    purge_batch: int = 500  # rows deleted per transaction


class RetentionError(AppError):
    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"service retention {name}: {problem}")
        self.name = name
        self.problem = problem


Retention.error = RetentionError


class Purger:
    """Deletes what is past its time every ``retention.purge_interval`` seconds; ``clock`` (aware datetimes)
    decides what is past it."""

    def __init__(self, store: Store, retention: Retention, *, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.retention = retention
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """One purge at ``clock()``; returns how many rows were deleted."""
        return self.store.purge_expired(now=self.clock(), idempotency_ttl_seconds=self.retention.idempotency_ttl,
                                        batch=self.retention.purge_batch)

    def start(self) -> Purger:
        self._thread = threading.Thread(target=self._run, name="purger", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.retention.purge_interval):
            try:
                removed = self.run_once()
            except StoreError as exc:
                if "closed" in str(exc):
                    return  # the store was closed under us (the service is going away)
                log.warning("purge: store unavailable (%s); trying again later", exc)
                continue
            except Exception:
                log.exception("purge: unexpected failure; trying again later")
                continue
            if removed:
                log.info("purge: %d expired challenge, session and stored-answer rows deleted", removed)
