"""The PC/SC adapter: the only module that imports pyscard.

It talks to the real pcscd through pyscard's thin ``scard`` binding so every failure keeps its PC/SC
return code, which is mapped here — and only here — onto the typed errors in :mod:`app.errors`.

* :class:`PcscSystem` lists readers and connects to cards.
* :class:`PcscConnection` implements :class:`app.card.connection.CardConnection`; every APDU to one card is
  serialised by a lock, and :meth:`PcscConnection.exclusive` wraps multi-APDU work in a PC/SC transaction.
  A card reset by another program surfaces as ``PinRequired`` (reconnected, PIN state lost) or ``CardRemoved``.
* :class:`CardMonitor` reports reader and card insert/remove events to a plain callback from its own thread.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum

from smartcard import scard

from app.errors import (
    CardError,
    CardInUse,
    CardProtocolError,
    CardRemoved,
    NoCard,
    NoReader,
    PcscUnavailable,
    PinRequired,
)

log = logging.getLogger(__name__)

PNP_READER = "\\\\?PnP?\\Notification"
# SCardStatus's card state (pyscard exports neither form): pcsc-lite (Linux, macOS) reports bits, where 0x0004
# is SCARD_PRESENT; Windows reports an enumeration (0 unknown, 1 SCARD_ABSENT, 2 present ... 6 specific).
_CARD_PRESENT = 0x0004
_WIN_SCARD_ABSENT = 1
_WINDOWS = sys.platform == "win32"
_U32 = 0xFFFFFFFF
_BACKOFF_MIN, _BACKOFF_MAX = 0.1, 2.0


def _code(hresult: int) -> int:
    return hresult & _U32


def _codes(*hresults: int) -> frozenset[int]:
    return frozenset(_code(h) for h in hresults)


_SERVICE_DOWN = _codes(scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED, scard.SCARD_F_COMM_ERROR,
                       scard.SCARD_E_INVALID_HANDLE, scard.SCARD_E_NO_MEMORY, scard.SCARD_F_INTERNAL_ERROR)
_REMOVED = _codes(scard.SCARD_W_REMOVED_CARD, scard.SCARD_W_RESET_CARD, scard.SCARD_E_NO_SMARTCARD,
                  scard.SCARD_W_UNPOWERED_CARD)
# transmit failures that a card pulled mid-command also causes: ask pcscd before reporting them as such
_MAYBE_PULLED = _codes(scard.SCARD_E_NOT_TRANSACTED, scard.SCARD_E_COMM_DATA_LOST, scard.SCARD_W_UNRESPONSIVE_CARD)


def _card_gone(state: int) -> bool:
    """Whether an SCardStatus card state says the card is no longer in the reader."""
    if _WINDOWS:
        return state <= _WIN_SCARD_ABSENT
    return not state & _CARD_PRESENT


def _raise_for(hresult: int, what: str, reader: str | None = None) -> None:
    """Turn a PC/SC return code into the matching typed error (nothing for success)."""
    code = _code(hresult)
    if code == scard.SCARD_S_SUCCESS:
        return
    message = f"{what}: {scard.SCardGetErrorMessage(hresult)} (0x{code:08X})"
    if code in _SERVICE_DOWN:
        raise PcscUnavailable(message)
    if code == _code(scard.SCARD_E_NO_READERS_AVAILABLE):
        raise NoReader(None)
    if code in (_code(scard.SCARD_E_UNKNOWN_READER), _code(scard.SCARD_E_READER_UNAVAILABLE)):
        raise NoReader(reader)
    if code == _code(scard.SCARD_E_NO_SMARTCARD) and what == "connect":
        raise NoCard(reader or "the reader")
    if code in _REMOVED:
        raise CardRemoved(message)
    if code == _code(scard.SCARD_E_SHARING_VIOLATION):
        raise CardInUse(message)
    if code in (_code(scard.SCARD_W_UNRESPONSIVE_CARD), _code(scard.SCARD_E_PROTO_MISMATCH),
                _code(scard.SCARD_W_UNSUPPORTED_CARD)):
        raise CardProtocolError(message)
    raise CardError(message)


class _Context:
    """One PC/SC context (pcsc-lite serialises calls per context, so each user gets its own)."""

    def __init__(self) -> None:
        hresult, self.handle = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if _code(hresult) != scard.SCARD_S_SUCCESS:
            _raise_for(hresult, "establish context")
            raise PcscUnavailable(f"establish context failed (0x{_code(hresult):08X})")

    def readers(self) -> list[str]:
        hresult, readers = scard.SCardListReaders(self.handle, [])
        if _code(hresult) in (_code(scard.SCARD_E_NO_READERS_AVAILABLE), _code(scard.SCARD_E_READER_UNAVAILABLE)):
            return []
        _raise_for(hresult, "list readers")
        return list(readers)

    def release(self) -> None:
        with contextlib.suppress(Exception):
            scard.SCardReleaseContext(self.handle)


@dataclass(frozen=True, slots=True)
class ReaderState:
    name: str
    card_present: bool
    atr: bytes


class PcscSystem:
    """Readers and connections through pcscd."""

    def readers(self) -> list[str]:
        ctx = _Context()
        try:
            return ctx.readers()
        finally:
            ctx.release()

    def reader_states(self) -> list[ReaderState]:
        ctx = _Context()
        try:
            names = ctx.readers()
            if not names:
                return []
            hresult, states = scard.SCardGetStatusChange(ctx.handle, 0, [(n, scard.SCARD_STATE_UNAWARE) for n in names])
            _raise_for(hresult, "reader status")
            return [ReaderState(n, bool(s & scard.SCARD_STATE_PRESENT), bytes(atr)) for n, s, atr in states]
        finally:
            ctx.release()

    def connect(self, reader: str | None = None) -> PcscConnection:
        """Connect to the card in ``reader`` (a name or a prefix of one), or in the first reader holding a card."""
        states = self.reader_states()
        if not states:
            raise NoReader(reader)
        if reader is not None:
            matching = [s for s in states if s.name == reader] or [s for s in states if s.name.startswith(reader)]
            if not matching:
                raise NoReader(reader)
            target = matching[0].name
        else:
            present = [s for s in states if s.card_present]
            if not present:
                raise NoCard(states[0].name if len(states) == 1 else "any reader")
            target = present[0].name
        return PcscConnection(target)


class PcscConnection:
    """A connection to the card in one reader; T=1 preferred, T=0 accepted.

    ``close()`` (and leaving a ``with`` block) leaves the card as is; ``close(reset=True)`` resets it, so a PIN
    verified through this connection is forgotten (use it once a login is done).
    """

    settle = 1.0  # seconds to let pcscd notice a pulled card before a failed command is reported as such

    def __init__(self, reader: str) -> None:
        self.reader = reader
        self._lock = threading.RLock()
        self._closed = False
        self._ctx = _Context()
        hresult, self._card, self.protocol = scard.SCardConnect(
            self._ctx.handle, reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T1 | scard.SCARD_PROTOCOL_T0)
        if _code(hresult) != scard.SCARD_S_SUCCESS:
            self._ctx.release()
            _raise_for(hresult, "connect", reader)
        try:
            self.atr = self._status_atr()
        except BaseException:
            with contextlib.suppress(Exception):
                scard.SCardDisconnect(self._card, scard.SCARD_LEAVE_CARD)
            self._ctx.release()
            raise

    def _status_atr(self) -> bytes:
        hresult, _reader, _state, _protocol, atr = scard.SCardStatus(self._card)
        _raise_for(hresult, "card status", self.reader)
        return bytes(atr)

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        with self._lock:
            if self._closed:
                raise CardRemoved("the connection to the card is closed")
            hresult, response = scard.SCardTransmit(self._card, self.protocol, list(apdu))
            self._check(hresult, "transmit")
            if len(response) < 2:
                # vpcd (and some readers) report a card pulled mid-command as an empty answer: ask pcscd
                self._raise_if_gone()
                raise CardProtocolError(f"the card answered with {len(response)} bytes, no status word")
        return bytes(response[:-2]), (response[-2] << 8) | response[-1]

    def _check(self, hresult: int, what: str) -> None:
        """``_raise_for``, after telling a pulled card or a reset by another program from other failures."""
        code = _code(hresult)
        if code in _MAYBE_PULLED:
            self._raise_if_gone()
        elif code == _code(scard.SCARD_W_RESET_CARD):
            self._reconnect_after_reset()
        _raise_for(hresult, what, self.reader)

    def _reconnect_after_reset(self) -> None:
        """Another program reset the card: acknowledge it once; either way the caller must start over."""
        hresult, protocol = scard.SCardReconnect(self._card, scard.SCARD_SHARE_SHARED,
                                                 scard.SCARD_PROTOCOL_T1 | scard.SCARD_PROTOCOL_T0,
                                                 scard.SCARD_LEAVE_CARD)
        if _code(hresult) != scard.SCARD_S_SUCCESS:
            raise CardRemoved("the card was reset by another program; its PIN state is lost")
        self.protocol = protocol
        raise PinRequired("the card was reset by another program")

    def _raise_if_gone(self, settle: float | None = None) -> None:
        """After a failed or empty answer: CardRemoved if pcscd sees the card gone within ``settle`` seconds."""
        deadline = time.monotonic() + (self.settle if settle is None else settle)
        while True:
            hresult, _reader, state, _protocol, _atr = scard.SCardStatus(self._card)
            _raise_for(hresult, "card status", self.reader)
            if _card_gone(state):
                raise CardRemoved("the card was removed during a command")
            if time.monotonic() >= deadline:
                return
            time.sleep(0.05)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the card for a unit of work: no other thread here, nor any other PC/SC client, interleaves."""
        with self._lock:
            hresult = scard.SCardBeginTransaction(self._card)
            self._check(hresult, "begin transaction")
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    scard.SCardEndTransaction(self._card, scard.SCARD_LEAVE_CARD)

    def close(self, reset: bool = False) -> None:
        """Disconnect; ``reset=True`` resets the card so it forgets a PIN verified in this session."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            disposition = scard.SCARD_RESET_CARD if reset else scard.SCARD_LEAVE_CARD
            with contextlib.suppress(Exception):
                scard.SCardDisconnect(self._card, disposition)
            self._ctx.release()

    def __enter__(self) -> PcscConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventKind(Enum):
    SERVICE_UP = "service_up"
    SERVICE_DOWN = "service_down"
    READER_ADDED = "reader_added"
    READER_REMOVED = "reader_removed"
    CARD_INSERTED = "card_inserted"
    CARD_REMOVED = "card_removed"


@dataclass(frozen=True, slots=True)
class CardEvent:
    kind: EventKind
    reader: str | None = None
    atr: bytes = b""


class CardMonitor:
    """Watches pcscd for reader and card changes and calls ``callback(CardEvent)`` from its own thread.

    The first events describe the current state (SERVICE_UP, then readers present, cards already inserted).
    A card pulled and another pushed in between two polls is reported as a removal then an insertion
    (pcsc-lite's per-reader event counter tells).

    If pcscd goes away (or the monitor fails in any other way) the monitor first reports CARD_REMOVED for
    every reader that held a card and READER_REMOVED for every known reader, then SERVICE_DOWN; it keeps
    retrying with backoff and, once pcscd is back, reports SERVICE_UP, READER_ADDED and CARD_INSERTED afresh.
    So a client that tracks sessions by insert/remove events drops its session across a pcscd restart: the
    card may have been reset meanwhile. The thread only ends when :meth:`stop` is called.
    """

    def __init__(self, callback: Callable[[CardEvent], None], poll_ms: int = 1000) -> None:
        self._callback = callback
        self._poll_ms = poll_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ctx: _Context | None = None
        self._up: bool | None = None  # None until the first SERVICE_UP or SERVICE_DOWN
        self._polled = False  # the current watch completed at least one status poll
        self._last_failure: type[BaseException] | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="card-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        ctx = self._ctx
        if ctx is not None:
            with contextlib.suppress(Exception):
                scard.SCardCancel(ctx.handle)
        if self._thread is not None:
            self._thread.join(timeout)

    def _emit(self, kind: EventKind, reader: str | None = None, atr: bytes = b"") -> None:
        try:
            self._callback(CardEvent(kind, reader, atr))
        except Exception:  # a broken listener must not kill the monitor
            log.exception("card event listener failed")

    def _run(self) -> None:
        backoff = _BACKOFF_MIN
        known: dict[str, tuple[int, bool, bytes]] = {}  # reader -> (state incl. counter, present, atr)
        while not self._stop.is_set():
            self._polled = False
            try:
                self._session(known)
            except Exception as exc:  # whatever happens, the thread lives on until stopped
                if self._stop.is_set():
                    return
                self._service_down(exc, known)
                if self._polled:  # that watch ran for a while: this is a fresh failure
                    backoff = _BACKOFF_MIN
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)

    def _session(self, known: dict[str, tuple[int, bool, bytes]]) -> None:
        ctx = self._ctx = _Context()
        try:
            if not self._stop.is_set():
                self._watch(ctx, known)
        finally:
            self._ctx = None
            ctx.release()

    def _service_down(self, exc: Exception, known: dict[str, tuple[int, bool, bytes]]) -> None:
        """Log a failed watch (once per kind of failure in a row), report everything gone, then SERVICE_DOWN."""
        repeat = self._up is False and type(exc) is self._last_failure
        self._last_failure = type(exc)
        if repeat:
            log.debug("card monitor still failing: %s", exc)
        elif isinstance(exc, PcscUnavailable):
            log.info("card monitor: PC/SC unavailable (%s); retrying", exc)
        elif isinstance(exc, CardError):
            log.warning("card monitor: %s; retrying", exc)
        else:  # a bug: keep the traceback (the monitor never handles APDUs, so there is no card data in it)
            log.error("card monitor failed (%s); retrying", type(exc).__name__, exc_info=exc)
        for name, (_state, present, _atr) in list(known.items()):
            if present:
                self._emit(EventKind.CARD_REMOVED, name)
            self._emit(EventKind.READER_REMOVED, name)
        known.clear()
        if self._up is not False:
            self._up = False
            self._emit(EventKind.SERVICE_DOWN)

    def _watch(self, ctx: _Context, known: dict[str, tuple[int, bool, bytes]]) -> None:
        pnp_state = 0
        readers = self._sync_readers(ctx, known)
        while not self._stop.is_set():
            query = [(PNP_READER, pnp_state)] + [(r, known[r][0]) for r in readers]
            hresult, states = scard.SCardGetStatusChange(ctx.handle, self._poll_ms, query)
            code = _code(hresult)
            if code == _code(scard.SCARD_E_CANCELLED):
                continue
            if code == _code(scard.SCARD_E_TIMEOUT):
                self._polled = True
                continue
            if code == _code(scard.SCARD_E_UNKNOWN_READER):
                self._stop.wait(0.05)  # a reader went between listing and polling; never spin on it
                readers = self._sync_readers(ctx, known)
                continue
            _raise_for(hresult, "status change")
            self._polled = True
            reader_list_changed = False
            for name, state, atr in states:
                if name == PNP_READER:
                    if state & scard.SCARD_STATE_CHANGED:
                        reader_list_changed = True
                    pnp_state = state & ~scard.SCARD_STATE_CHANGED
                    continue
                self._update(name, state, bytes(atr), known)
            if reader_list_changed:
                readers = self._sync_readers(ctx, known)

    def _sync_readers(self, ctx: _Context, known: dict[str, tuple[int, bool, bytes]]) -> list[str]:
        readers = ctx.readers()
        if self._up is not True:  # pcscd answered: it is up (a context alone does not prove that)
            self._up = True
            self._emit(EventKind.SERVICE_UP)
        for gone in [r for r in known if r not in readers]:
            if known.pop(gone)[1]:
                self._emit(EventKind.CARD_REMOVED, gone)
            self._emit(EventKind.READER_REMOVED, gone)
        for new in readers:
            if new not in known:
                known[new] = (scard.SCARD_STATE_UNAWARE, False, b"")
                self._emit(EventKind.READER_ADDED, new)
        if readers:
            _hr, states = scard.SCardGetStatusChange(ctx.handle, 0, [(r, known[r][0]) for r in readers])
            if _code(_hr) == scard.SCARD_S_SUCCESS:
                for name, state, atr in states:
                    self._update(name, state, bytes(atr), known)
        return readers

    def _update(self, name: str, state: int, atr: bytes, known: dict[str, tuple[int, bool, bytes]]) -> None:
        old_state, was_present, _ = known.get(name, (0, False, b""))
        present = bool(state & scard.SCARD_STATE_PRESENT) and not state & scard.SCARD_STATE_MUTE
        # pcsc-lite counts card events in the high 16 bits: a changed count with a card both before and
        # after means the card was swapped between two polls.
        swapped = was_present and present and old_state != 0 and (old_state >> 16) != (state >> 16)
        known[name] = (state & ~scard.SCARD_STATE_CHANGED, present, atr)
        if was_present and (not present or swapped):
            self._emit(EventKind.CARD_REMOVED, name)
        if present and (not was_present or swapped):
            self._emit(EventKind.CARD_INSERTED, name, atr)


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass (small helper for command-line tools)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
