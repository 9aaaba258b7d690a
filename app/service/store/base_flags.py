"""The storage interface for Reasonable Adjustment Flags (Patient Flags model): flags, their history.

Part of :class:`app.service.store.Store` (which inherits this class); the common rules in ``base.py`` apply.
Methods that change data take ``audit`` entries (and an ``answer`` where the request is idempotent) and commit
them in the same transaction as the change.
"""

from __future__ import annotations

from abc import ABC


class FlagStore(ABC):  # noqa: B024 - methods are added by the FLAGS work
    pass
