"""Group commit for CP-IS access writes (see ``group_commit.py``): an unscheduled view's access event, its
notifications' outbox rows and its audit records commit together (``CpisStore.record_cpis_accesses``), and under load
one fsync serves many views. A failed commit stores none of its batch; the batch is committed again in halves so
that only the access(es) that cannot be written fail (an unavailable database fails them all at once): no response
claims an access that was not recorded, and one bad access does not fail everybody else's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from app.service.cpis.store import AccessWrite, CpisStore
from app.service.store.group_commit import LINGER_SECONDS, GroupCommitter


class CpisAccessWriter(GroupCommitter[AccessWrite, bool]):
    """``submit(access)``'s future resolves to True for a new access (False: a retried X-Request-ID)."""

    def __init__(self, store: CpisStore, *, max_batch: int = 200, linger: float = LINGER_SECONDS,
                 clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(store.record_cpis_accesses, name="cpis-access-writer", max_batch=max_batch, linger=linger,
                         clock=clock)
