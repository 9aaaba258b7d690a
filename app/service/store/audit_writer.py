"""Group commit for audit records (see ``group_commit.py``): the response to an audited request leaves only
once its record has committed; under load one commit carries the records of every request in flight."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime

from .audit_chain import encode_entry
from .base import AuditEntry, Store
from .group_commit import LINGER_SECONDS, GroupCommitter
from .rows import AuditRecord


class AuditWriter(GroupCommitter[AuditEntry, AuditRecord]):
    def __init__(self, store: Store, *, max_batch: int = 500, linger: float = LINGER_SECONDS,
                 clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(store.append_audit_many, name="audit-writer", max_batch=max_batch, linger=linger,
                         clock=clock)

    def submit(self, item: AuditEntry) -> Future[AuditRecord]:
        encode_entry(item)  # a record that cannot be encoded or stored fails its own caller only
        return super().submit(item)

    def append(self, entry: AuditEntry, timeout: float | None = None) -> AuditRecord:
        """Queue a record and wait until it is committed."""
        return self.submit(entry).result(timeout)
