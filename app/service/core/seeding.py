"""What every feature's seed shares."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a chunk of seed data is built (never across a yield). The rows and
    resources are acyclic, so reference counting frees them; without this, collections triggered by the many young
    dicts take over half the time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
