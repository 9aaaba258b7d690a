"""Plumbing shared by both SQL stores: the dialect hooks and small helpers.

Queries are written with ``?`` placeholders; the PostgreSQL cursor wrapper turns them into ``%s``. ``_write()``
is one transaction that serialises with every other writer where it must (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: row locks taken by the statements themselves, e.g. ``SELECT … FOR UPDATE`` on the audit head).
"""

from __future__ import annotations

import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime
from itertools import islice
from typing import Any, Self, TypeVar

import orjson

T = TypeVar("T")

# The longest the service waits for the database on any one wait (a lock, a pooled connection, a statement);
# beyond it the call raises ``StoreTimeout`` and the request is answered 503 + Retry-After. Well below the
# desktop client's 15 s time-out, so that the refusal arrives rather than a client-side time-out.
DB_WAIT_SECONDS = 4.0


class Waits:
    """The database calls in progress and when each began, so that a stall shows in ``GET /_status``.

    ``begin()`` returns a key for ``end(key)`` (a dict insert and pop under the GIL: no lock)."""

    __slots__ = ("_keys", "_started")

    def __init__(self) -> None:
        self._started: dict[int, float] = {}
        self._keys = itertools.count()

    def begin(self) -> int:
        key = next(self._keys)
        self._started[key] = time.monotonic()
        return key

    def end(self, key: int) -> None:
        self._started.pop(key, None)

    def oldest(self) -> float:
        """Seconds the longest call in progress has been running (0 when none is)."""
        started = self._started.copy().values()  # one C call under the GIL: safe beside begin/end
        return time.monotonic() - min(started) if started else 0.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def norm_fingerprint(fp: str) -> str:
    return fp.replace(":", "").strip().lower()


def norm_uuid(card_uuid: str) -> str:
    return card_uuid.strip().lower()


def norm_nhs_uuid(nhs_uuid: str) -> str:
    """An NHS user UUID as stored: exactly 12 digits (``ValueError`` otherwise; callers validate it for users)."""
    value = nhs_uuid.strip()
    if not (len(value) == 12 and value.isascii() and value.isdigit()):
        raise ValueError(f"{nhs_uuid!r} is not an NHS user UUID (12 digits)")
    return value


def aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"store times must be timezone-aware (got naive {value.isoformat()})")
    return value


def dumps(obj: Any) -> str:
    """Compact JSON text (orjson: the stored patients' encoding was most of the time of a 1 M-patient seed).
    Not for hashing: the audit chain's canonical form is ``audit_chain.canonical_details``."""
    return orjson.dumps(obj).decode()


def loads(text: str | bytes) -> Any:
    return orjson.loads(text)


class SqlBase(ABC):
    """Dialect hooks. Implemented by ``SQLiteStore`` and ``PostgresStore``."""

    url: str
    _for_update = ""  # PostgreSQL: " FOR UPDATE"
    _explain_prefix = "EXPLAIN "
    _integrity_errors: tuple[type[BaseException], ...] = ()
    timeout: float = DB_WAIT_SECONDS
    _waits: Waits

    def stalled(self) -> float | None:
        waited = self._waits.oldest()
        return waited if waited > self.timeout / 2 else None

    # --- dialect hooks --------------------------------------------------------------------------------------

    @abstractmethod
    def _read(self, *, tx: bool = False) -> AbstractContextManager[Any]:
        """A cursor in autocommit (each statement its own snapshot), or in one read transaction with ``tx``."""

    @abstractmethod
    def _write(self) -> AbstractContextManager[Any]:
        """A cursor inside one write transaction: commit on exit, roll back on an exception."""

    @abstractmethod
    def _enc_ts(self, value: datetime) -> Any: ...

    @abstractmethod
    def _dec_ts(self, value: Any) -> datetime: ...

    @abstractmethod
    def _enc_date(self, value: date | None) -> Any: ...

    @abstractmethod
    def _dec_date(self, value: Any) -> date | None: ...

    @abstractmethod
    def _enc_json(self, value: Any) -> Any: ...

    @abstractmethod
    def _dec_json(self, value: Any) -> Any: ...

    @abstractmethod
    def close(self) -> None:
        """Close every connection (and stop the store's background work)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
