"""Token buckets per client address for the endpoints anyone may call (the login challenge and its completion).

Each service process keeps its own buckets (so with N worker processes a source gets up to N times the rate);
memory is bounded: at most ``max_sources`` buckets, the least recently used forgotten first (a forgotten source
starts again with a full bucket). The address is the TCP peer's: uvicorn runs with ``proxy_headers=False``, so a
client cannot choose its bucket with ``X-Forwarded-For``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable


class TokenBuckets:
    """``take(source)``: 0.0 when the request may go ahead (a token is spent), else the seconds until the
    source's next token. Buckets hold ``burst`` tokens and refill at ``per_minute`` tokens a minute by
    ``clock`` (seconds, monotonic)."""

    def __init__(self, per_minute: float, burst: int, *, max_sources: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0 or burst < 1 or max_sources < 1:
            raise ValueError("a token bucket needs a positive rate, burst and number of sources")
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_sources = max_sources
        self.clock = clock
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()  # source: (tokens, at)
        self._lock = threading.Lock()

    def take(self, source: Hashable) -> float:
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.pop(source, (self.burst, now))
            tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[source] = (tokens, now)  # most recently used last
            while len(self._buckets) > self.max_sources:
                self._buckets.popitem(last=False)
            return wait

    def __len__(self) -> int:
        return len(self._buckets)
