"""The storage interface for CP-IS: child protection plans, access events and the durable notification outbox.

Part of :class:`app.service.store.Store` (which inherits this class); the common rules in ``base.py`` apply.
Methods that change data take ``audit`` entries (and an ``answer`` where the request is idempotent) and commit
them in the same transaction as the change.
"""

from __future__ import annotations

from abc import ABC


class CpisStore(ABC):  # noqa: B024 - methods are added by the CPIS work
    pass
