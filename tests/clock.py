"""A clock a test sets and moves by hand, for code that takes ``clock`` / ``now`` (never the real time)."""

from __future__ import annotations

from datetime import datetime, timedelta


class Clock:
    def __init__(self, at: datetime) -> None:
        if at.utcoffset() is None:
            raise ValueError("a test clock must be timezone-aware")
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)
