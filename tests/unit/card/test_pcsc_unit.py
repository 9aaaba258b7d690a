"""The PC/SC adapter against a scripted fake of pyscard's ``scard`` module (no pcscd needed).

The fake carries the real constant values (copied from ``smartcard.scard``) and only the functions the adapter
calls; each test scripts what pcscd would answer.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
from smartcard import scard as real_scard

from app.card import pcsc
from app.card.pcsc import CardMonitor, EventKind, PcscConnection, _raise_for
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

_CONSTANTS = (
    "SCARD_S_SUCCESS", "SCARD_E_NO_SERVICE", "SCARD_E_SERVICE_STOPPED", "SCARD_F_COMM_ERROR",
    "SCARD_E_INVALID_HANDLE", "SCARD_E_NO_MEMORY", "SCARD_F_INTERNAL_ERROR", "SCARD_W_REMOVED_CARD",
    "SCARD_W_RESET_CARD", "SCARD_E_NO_SMARTCARD", "SCARD_W_UNPOWERED_CARD", "SCARD_E_NO_READERS_AVAILABLE",
    "SCARD_E_UNKNOWN_READER", "SCARD_E_READER_UNAVAILABLE", "SCARD_E_SHARING_VIOLATION", "SCARD_W_UNRESPONSIVE_CARD",
    "SCARD_E_PROTO_MISMATCH", "SCARD_W_UNSUPPORTED_CARD", "SCARD_E_NOT_TRANSACTED", "SCARD_E_COMM_DATA_LOST",
    "SCARD_E_INVALID_VALUE", "SCARD_E_TIMEOUT", "SCARD_E_CANCELLED", "SCARD_SCOPE_USER", "SCARD_SHARE_SHARED",
    "SCARD_PROTOCOL_T0", "SCARD_PROTOCOL_T1", "SCARD_LEAVE_CARD", "SCARD_RESET_CARD", "SCARD_STATE_UNAWARE",
    "SCARD_STATE_CHANGED", "SCARD_STATE_PRESENT", "SCARD_STATE_EMPTY", "SCARD_STATE_MUTE",
)
C = {name: getattr(real_scard, name) for name in _CONSTANTS}
OK = C["SCARD_S_SUCCESS"]
PRESENT, EMPTY, CHANGED, MUTE = (C["SCARD_STATE_PRESENT"], C["SCARD_STATE_EMPTY"], C["SCARD_STATE_CHANGED"],
                                 C["SCARD_STATE_MUTE"])
T0, T1 = C["SCARD_PROTOCOL_T0"], C["SCARD_PROTOCOL_T1"]
CARD = 0xCA4D
ATR = [0x3B, 0x8C, 0x01]
LINUX_PRESENT_POWERED = 0x0034  # pcsc-lite SCARD_PRESENT | SCARD_POWERED | SCARD_NEGOTIABLE


class FakeScard:
    """Just enough of ``smartcard.scard``: real constants, scripted answers, every call recorded."""

    def __init__(self) -> None:
        for name, value in C.items():
            setattr(self, name, value)
        self.calls: list[tuple] = []
        self.next_handle = 100
        self.contexts: list[int] = []
        self.released: list[int] = []
        self.establish: list[int] = []  # hresults for the next SCardEstablishContext calls, then success
        self.list_result = OK
        self.readers = ["Reader A"]
        self.cards: dict[str, tuple[int, list[int]]] = {}  # reader -> (state, atr) for non-blocking status
        self.polls: list = []  # blocking SCardGetStatusChange: hresult, exception or full answer, in turn
        self.blocked = threading.Event()
        self.cancelled = threading.Event()
        self.status: list[tuple] = []  # SCardStatus answers in turn; the last one repeats
        self.transmit: list[tuple] = []
        self.reconnect = (OK, T1)
        self.begin = OK

    def SCardGetErrorMessage(self, hresult):
        return "fake message"

    def SCardEstablishContext(self, scope):
        hresult = self.establish.pop(0) if self.establish else OK
        if hresult != OK:
            return hresult, 0
        self.next_handle += 1
        self.contexts.append(self.next_handle)
        return OK, self.next_handle

    def SCardReleaseContext(self, handle):
        self.released.append(handle)
        return OK

    def SCardListReaders(self, handle, groups):
        return self.list_result, (list(self.readers) if self.list_result == OK else [])

    def SCardGetStatusChange(self, handle, timeout_ms, query):
        if timeout_ms == 0:
            return OK, [(r, self.cards.get(r, (EMPTY, []))[0] | CHANGED, self.cards.get(r, (EMPTY, []))[1])
                        for r, _ in query]
        if self.polls:
            step = self.polls.pop(0)
            if isinstance(step, BaseException):
                raise step
            return step if isinstance(step, tuple) else (step, [])
        self.blocked.set()
        cancelled = self.cancelled.wait(timeout_ms / 1000)
        return (C["SCARD_E_CANCELLED"] if cancelled else C["SCARD_E_TIMEOUT"]), []

    def SCardCancel(self, handle):
        self.calls.append(("cancel", handle))
        self.cancelled.set()
        return OK

    def SCardConnect(self, ctx, reader, share, protocols):
        self.calls.append(("connect", ctx, reader, share, protocols))
        return OK, CARD, T1

    def SCardStatus(self, card):
        answer = self.status.pop(0) if len(self.status) > 1 else (
            self.status[0] if self.status else (OK, "Reader A", LINUX_PRESENT_POWERED, T1, ATR))
        return answer

    def SCardTransmit(self, card, protocol, apdu):
        self.calls.append(("transmit", card, protocol, bytes(apdu)))
        return self.transmit.pop(0)

    def SCardReconnect(self, card, share, protocols, init):
        self.calls.append(("reconnect", card, share, protocols, init))
        return self.reconnect

    def SCardBeginTransaction(self, card):
        return self.begin

    def SCardEndTransaction(self, card, disposition):
        self.calls.append(("end", card, disposition))
        return OK

    def SCardDisconnect(self, card, disposition):
        self.calls.append(("disconnect", card, disposition))
        return OK


@pytest.fixture
def fake(monkeypatch) -> FakeScard:
    fake = FakeScard()
    monkeypatch.setattr(pcsc, "scard", fake)
    monkeypatch.setattr(PcscConnection, "settle", 0.05)
    return fake


# --- the return-code mapping --------------------------------------------------------------------------------

MAPPING = [
    ("SCARD_E_NO_SERVICE", "transmit", PcscUnavailable),
    ("SCARD_E_SERVICE_STOPPED", "transmit", PcscUnavailable),
    ("SCARD_F_COMM_ERROR", "transmit", PcscUnavailable),
    ("SCARD_E_INVALID_HANDLE", "transmit", PcscUnavailable),
    ("SCARD_E_NO_MEMORY", "transmit", PcscUnavailable),
    ("SCARD_F_INTERNAL_ERROR", "transmit", PcscUnavailable),
    ("SCARD_E_NO_READERS_AVAILABLE", "list readers", NoReader),
    ("SCARD_E_UNKNOWN_READER", "connect", NoReader),
    ("SCARD_E_READER_UNAVAILABLE", "connect", NoReader),
    ("SCARD_E_NO_SMARTCARD", "connect", NoCard),
    ("SCARD_E_NO_SMARTCARD", "transmit", CardRemoved),
    ("SCARD_W_REMOVED_CARD", "transmit", CardRemoved),
    ("SCARD_W_RESET_CARD", "transmit", CardRemoved),
    ("SCARD_W_UNPOWERED_CARD", "transmit", CardRemoved),
    ("SCARD_E_SHARING_VIOLATION", "connect", CardInUse),
    ("SCARD_W_UNRESPONSIVE_CARD", "transmit", CardProtocolError),
    ("SCARD_E_PROTO_MISMATCH", "connect", CardProtocolError),
    ("SCARD_W_UNSUPPORTED_CARD", "connect", CardProtocolError),
    ("SCARD_E_NOT_TRANSACTED", "transmit", CardError),
    ("SCARD_E_COMM_DATA_LOST", "transmit", CardError),
    ("SCARD_E_INVALID_VALUE", "transmit", CardError),
]


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize(("name", "what", "error"), MAPPING, ids=[f"{n}-{w}" for n, w, _ in MAPPING])
def test_raise_for_maps_every_code(fake, name, what, error, signed):
    hresult = C[name] - (1 << 32) if signed else C[name]  # Windows builds hand back negative HRESULTs
    with pytest.raises(CardError) as raised:
        _raise_for(hresult, what, "Reader A")
    assert type(raised.value) is error
    if error is NoReader:
        assert raised.value.reader == (None if name == "SCARD_E_NO_READERS_AVAILABLE" else "Reader A")
    elif error is NoCard:
        assert raised.value.reader == "Reader A"
    else:
        assert f"0x{C[name]:08X}" in str(raised.value) and what in str(raised.value)


def test_raise_for_success_is_silent(fake):
    assert _raise_for(OK, "transmit") is None


# --- connecting and closing ---------------------------------------------------------------------------------


def test_connect_failure_releases_the_context(fake):
    fake.SCardConnect = lambda *a: (C["SCARD_E_SHARING_VIOLATION"], 0, 0)
    with pytest.raises(CardInUse):
        PcscConnection("Reader A")
    assert fake.released == fake.contexts and len(fake.contexts) == 1


def test_status_failure_after_connect_disconnects_and_releases(fake):
    fake.status = [(C["SCARD_W_REMOVED_CARD"], "", 0, 0, [])]
    with pytest.raises(CardRemoved):
        PcscConnection("Reader A")
    assert ("disconnect", CARD, C["SCARD_LEAVE_CARD"]) in fake.calls
    assert fake.released == fake.contexts and len(fake.contexts) == 1


@pytest.mark.parametrize(("how", "disposition"), [
    (lambda c: c.close(), "SCARD_LEAVE_CARD"),
    (lambda c: c.close(reset=True), "SCARD_RESET_CARD"),
    (lambda c: c.__exit__(None, None, None), "SCARD_LEAVE_CARD"),
], ids=["close", "close-reset", "exit"])
def test_close_disposition(fake, how, disposition):
    conn = PcscConnection("Reader A")
    assert conn.atr == bytes(ATR) and conn.protocol == T1
    how(conn)
    conn.close(reset=True)  # a second close does nothing
    assert [c for c in fake.calls if c[0] == "disconnect"] == [("disconnect", CARD, C[disposition])]
    assert fake.released == fake.contexts
    with pytest.raises(CardRemoved):
        conn.transmit(b"\x00\xa4\x04\x00")


# --- transmit -----------------------------------------------------------------------------------------------


def test_transmit_returns_data_and_status_word(fake):
    fake.transmit = [(OK, [0xAA, 0x90, 0x00])]
    assert PcscConnection("Reader A").transmit(b"\x00\xca\x00\x00") == (b"\xaa", 0x9000)


@pytest.mark.parametrize(("name", "otherwise"), [
    ("SCARD_E_NOT_TRANSACTED", CardError),
    ("SCARD_E_COMM_DATA_LOST", CardError),
    ("SCARD_W_UNRESPONSIVE_CARD", CardProtocolError),
])
@pytest.mark.parametrize("gone", [False, True], ids=["card-still-there", "card-pulled"])
def test_transmit_failure_asks_pcscd_whether_the_card_was_pulled(fake, name, otherwise, gone):
    conn = PcscConnection("Reader A")
    fake.transmit = [(C[name], [])]
    fake.status = [(OK, "Reader A", 0x0002 if gone else LINUX_PRESENT_POWERED, T1, ATR)]  # 0x2 = pcsc-lite ABSENT
    with pytest.raises(CardError) as raised:
        conn.transmit(b"\x00\xca\x00\x00")
    assert type(raised.value) is (CardRemoved if gone else otherwise)


def test_transmit_failure_with_status_saying_removed(fake):
    conn = PcscConnection("Reader A")
    fake.transmit = [(C["SCARD_E_NOT_TRANSACTED"], [])]
    fake.status = [(C["SCARD_W_REMOVED_CARD"], "", 0, 0, [])]
    with pytest.raises(CardRemoved):
        conn.transmit(b"\x00\xca\x00\x00")


@pytest.mark.parametrize("gone", [False, True])
def test_empty_answer(fake, gone):
    conn = PcscConnection("Reader A")
    fake.transmit = [(OK, [])]
    fake.status = [(OK, "Reader A", 0x0002 if gone else LINUX_PRESENT_POWERED, T1, ATR)]
    with pytest.raises(CardRemoved if gone else CardProtocolError):
        conn.transmit(b"\x00\xca\x00\x00")


def test_reset_by_another_program_reconnects_and_asks_for_the_pin(fake):
    conn = PcscConnection("Reader A")
    fake.transmit = [(C["SCARD_W_RESET_CARD"], [])]
    fake.reconnect = (OK, T0)
    with pytest.raises(PinRequired, match="reset by another program"):
        conn.transmit(b"\x00\xca\x00\x00")
    assert [c for c in fake.calls if c[0] == "reconnect"] == [
        ("reconnect", CARD, C["SCARD_SHARE_SHARED"], T1 | T0, C["SCARD_LEAVE_CARD"])]
    assert conn.protocol == T0
    fake.transmit = [(OK, [0x90, 0x00])]
    assert conn.transmit(b"\x00\xca\x00\x00") == (b"", 0x9000)
    assert fake.calls[-1] == ("transmit", CARD, T0, b"\x00\xca\x00\x00")


def test_reset_and_failed_reconnect_is_card_removed(fake):
    conn = PcscConnection("Reader A")
    fake.transmit = [(C["SCARD_W_RESET_CARD"], [])]
    fake.reconnect = (C["SCARD_E_NO_SMARTCARD"], 0)
    with pytest.raises(CardRemoved, match="its PIN state is lost"):
        conn.transmit(b"\x00\xca\x00\x00")
    assert len([c for c in fake.calls if c[0] == "reconnect"]) == 1


def test_reset_seen_when_a_transaction_begins(fake):
    conn = PcscConnection("Reader A")
    fake.begin = C["SCARD_W_RESET_CARD"]
    with pytest.raises(PinRequired), conn.exclusive():
        pytest.fail("the body must not run")


@pytest.mark.parametrize(("windows", "state", "gone"), [
    (False, LINUX_PRESENT_POWERED, False),
    (False, 0x0004, False),  # pcsc-lite SCARD_PRESENT (Windows would read 4 as POWERED: present too)
    (False, 0x0002, True),  # pcsc-lite SCARD_ABSENT
    (False, 0x0001, True),  # pcsc-lite SCARD_UNKNOWN
    (True, 2, False),  # Windows SCARD_PRESENT (would be "absent" read as pcsc-lite bits)
    (True, 4, False),  # Windows SCARD_POWERED
    (True, 6, False),  # Windows SCARD_SPECIFIC
    (True, 1, True),  # Windows SCARD_ABSENT
    (True, 0, True),  # Windows SCARD_UNKNOWN
], ids=lambda v: str(v))
def test_card_gone_on_each_platform(fake, monkeypatch, windows, state, gone):
    monkeypatch.setattr(pcsc, "_WINDOWS", windows)
    conn = PcscConnection("Reader A")
    fake.status = [(OK, "Reader A", state, T1, ATR)]
    if gone:
        with pytest.raises(CardRemoved):
            conn._raise_if_gone(settle=0)
    else:
        conn._raise_if_gone(settle=0)


# --- the card monitor ---------------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list = []
        self.cond = threading.Condition()

    def __call__(self, event) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def kinds(self) -> list:
        with self.cond:
            return [(e.kind, e.reader) for e in self.events]

    def wait(self, predicate, timeout: float = 3.0) -> bool:
        with self.cond:  # the condition's lock is re-entrant, so kinds() may take it again
            return self.cond.wait_for(lambda: predicate(self.kinds()), timeout)


class RecordingStop(threading.Event):
    """The monitor's stop event, recording each backoff and not really waiting; sets itself after ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.limit = limit

    def wait(self, timeout=None):
        self.waits.append(timeout)
        if len(self.waits) >= self.limit:
            self.set()
        return self.is_set()


def _counter(n: int) -> int:
    return n << 16


def test_update_insert_remove_swap_and_mute():
    rec = Recorder()
    monitor = CardMonitor(rec)
    known: dict = {}
    monitor._update("R", PRESENT | CHANGED | _counter(1), b"\x3b\x01", known)
    assert rec.kinds() == [(EventKind.CARD_INSERTED, "R")] and rec.events[-1].atr == b"\x3b\x01"
    assert known["R"] == (PRESENT | _counter(1), True, b"\x3b\x01")
    monitor._update("R", PRESENT | _counter(1), b"\x3b\x01", known)  # nothing new
    assert len(rec.events) == 1
    monitor._update("R", PRESENT | CHANGED | _counter(3), b"\x3b\x02", known)  # swapped between two polls
    assert rec.kinds()[1:] == [(EventKind.CARD_REMOVED, "R"), (EventKind.CARD_INSERTED, "R")]
    assert rec.events[-1].atr == b"\x3b\x02"
    monitor._update("R", EMPTY | CHANGED | _counter(4), b"", known)
    assert rec.kinds()[-1] == (EventKind.CARD_REMOVED, "R") and len(rec.events) == 4
    monitor._update("R", PRESENT | MUTE | CHANGED | _counter(5), b"", known)  # a mute card is no card
    assert len(rec.events) == 4 and known["R"][1] is False
    monitor._update("R", PRESENT | CHANGED | _counter(6), b"\x3b\x03", known)
    assert rec.kinds()[-1] == (EventKind.CARD_INSERTED, "R") and len(rec.events) == 5


def test_update_first_sight_of_a_card_is_an_insert_not_a_swap():
    rec = Recorder()
    known = {"R": (C["SCARD_STATE_UNAWARE"], False, b"")}
    CardMonitor(rec)._update("R", PRESENT | CHANGED | _counter(7), b"\x3b", known)
    assert rec.kinds() == [(EventKind.CARD_INSERTED, "R")]


def test_stop_cancels_a_blocking_poll_and_joins_quickly(fake):
    rec = Recorder()
    monitor = CardMonitor(rec, poll_ms=60_000)
    monitor.start()
    assert fake.blocked.wait(3)
    started = time.monotonic()
    monitor.stop()
    assert time.monotonic() - started < 0.5
    assert not monitor._thread.is_alive()
    assert ("cancel", fake.contexts[0]) in fake.calls
    assert fake.released == fake.contexts
    assert rec.kinds() == [(EventKind.SERVICE_UP, None), (EventKind.READER_ADDED, "Reader A")]


def test_no_tight_loop_when_the_service_answers_but_is_gone(fake):
    fake.list_result = C["SCARD_E_NO_SERVICE"]  # a context is granted, every call after it fails
    rec = Recorder()
    monitor = CardMonitor(rec, poll_ms=50)
    monitor.start()
    time.sleep(0.5)
    monitor.stop()
    assert not monitor._thread.is_alive()
    assert 1 <= len(fake.contexts) <= 5, len(fake.contexts)
    assert rec.kinds() == [(EventKind.SERVICE_DOWN, None)]
    assert fake.released == fake.contexts


def test_backoff_doubles_while_failing_and_resets_after_a_healthy_watch(fake, monkeypatch):
    fake.list_result = C["SCARD_E_NO_SERVICE"]
    monitor = CardMonitor(Recorder(), poll_ms=50)
    monitor._stop = RecordingStop(limit=7)
    monitor._run()
    assert monitor._stop.waits == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]

    fake = FakeScard()
    monkeypatch.setattr(pcsc, "scard", fake)
    fake.polls = [C["SCARD_E_TIMEOUT"], C["SCARD_E_NO_SERVICE"]] * 4  # each watch polls once, then fails
    monitor = CardMonitor(Recorder(), poll_ms=50)
    monitor._stop = RecordingStop(limit=4)
    monitor._run()
    assert monitor._stop.waits == [0.1, 0.1, 0.1, 0.1]


def test_context_refused_reports_service_down_once_and_retries(fake):
    fake.establish = [C["SCARD_E_NO_SERVICE"]] * 3
    rec = Recorder()
    monitor = CardMonitor(rec, poll_ms=60_000)
    monitor._stop = RecordingStop(limit=100)  # retry at once (the backoff is tested above)
    monitor.start()
    try:
        assert fake.blocked.wait(3)
    finally:
        monitor._stop.set()
        fake.cancelled.set()
        monitor._thread.join(2)
    assert rec.kinds() == [(EventKind.SERVICE_DOWN, None), (EventKind.SERVICE_UP, None),
                           (EventKind.READER_ADDED, "Reader A")]


RESTART_EVENTS = [
    (EventKind.SERVICE_UP, None), (EventKind.READER_ADDED, "R0"), (EventKind.READER_ADDED, "R1"),
    (EventKind.CARD_INSERTED, "R0"),
    (EventKind.CARD_REMOVED, "R0"), (EventKind.READER_REMOVED, "R0"), (EventKind.READER_REMOVED, "R1"),
    (EventKind.SERVICE_DOWN, None),
    (EventKind.SERVICE_UP, None), (EventKind.READER_ADDED, "R0"), (EventKind.READER_ADDED, "R1"),
    (EventKind.CARD_INSERTED, "R0"),
]


@pytest.mark.parametrize("failure", [
    pytest.param("SCARD_E_NO_SERVICE", id="pcscd-restart"),
    pytest.param("SCARD_E_INVALID_VALUE", id="other-card-error"),
    pytest.param(RuntimeError("a bug"), id="unexpected-exception"),
])
def test_failure_reports_removals_then_service_down_and_recovers(fake, caplog, failure):
    fake.readers = ["R0", "R1"]
    fake.cards = {"R0": (PRESENT | _counter(1), ATR)}
    fake.polls = [failure if isinstance(failure, Exception) else C[failure]]
    if failure == "SCARD_E_NO_SERVICE":
        fake.establish = [OK] + [C["SCARD_E_NO_SERVICE"]] * 2  # then pcscd stays away for two attempts
    rec = Recorder()
    monitor = CardMonitor(rec, poll_ms=60_000)
    caplog.set_level(logging.DEBUG, logger="app.card.pcsc")
    monitor.start()
    try:
        assert rec.wait(lambda kinds: len(kinds) >= len(RESTART_EVENTS)), rec.kinds()
        assert fake.blocked.wait(3)
        assert monitor._thread.is_alive()
        assert rec.kinds() == RESTART_EVENTS
    finally:
        monitor.stop()
    assert not monitor._thread.is_alive()
    assert fake.released == fake.contexts
    failures = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert failures, caplog.text
    if isinstance(failure, Exception):
        assert failures[0].levelno == logging.ERROR and failures[0].exc_info
    elif failure == "SCARD_E_INVALID_VALUE":
        assert failures[0].levelno == logging.WARNING


def test_a_broken_listener_does_not_stop_the_monitor(fake):
    seen = []

    def listener(event):
        seen.append(event.kind)
        raise ValueError("listener bug")

    monitor = CardMonitor(listener, poll_ms=60_000)
    monitor.start()
    try:
        assert fake.blocked.wait(3)
        assert seen == [EventKind.SERVICE_UP, EventKind.READER_ADDED]
        assert monitor._thread.is_alive()
    finally:
        monitor.stop()
