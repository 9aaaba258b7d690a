"""VpcdLink against a real local TCP server playing the role of pcscd's vpcd reader driver."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from app.card.virtual import ATR, PivApplet, VpcdLink
from app.card.virtual.pin import pad_pin
from tests.unit.card.virtual.conftest import PIN

SELECT = bytes.fromhex("00A4040009A0000003080000100000")
GET_DISCOVERY = bytes.fromhex("00CB3FFF035C017E00")
VERIFY_STATUS = bytes.fromhex("00200080")


class FakeVpcd:
    """The reader side: listens on an ephemeral loopback port; the card connects to it."""

    def __init__(self, listen: bool = True) -> None:
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conns: list[socket.socket] = []
        if listen:
            self.listen()

    def listen(self) -> None:
        self.server.listen(4)

    def accept(self, timeout: float = 5.0) -> socket.socket:
        self.server.settimeout(timeout)
        conn, _ = self.server.accept()
        conn.settimeout(timeout)
        self.conns.append(conn)
        return conn

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.server.close()


def send(conn: socket.socket, payload: bytes, *, split: bool = False) -> None:
    frame = len(payload).to_bytes(2, "big") + payload
    if not split:
        conn.sendall(frame)
        return
    for piece in (frame[:1], frame[1:2], frame[2:3], frame[3:]):  # as vpcd does: several small writes
        if piece:
            conn.sendall(piece)
            time.sleep(0.01)


def recv_exact(conn: socket.socket, count: int) -> bytes:
    buf = b""
    while len(buf) < count:
        chunk = conn.recv(count - len(buf))
        if not chunk:
            raise EOFError("card closed the connection")
        buf += chunk
    return buf


def recv(conn: socket.socket) -> bytes:
    return recv_exact(conn, int.from_bytes(recv_exact(conn, 2), "big"))


def ask(conn: socket.socket, apdu: bytes) -> bytes:
    send(conn, apdu)
    return recv(conn)


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def vpcd() -> Iterator[FakeVpcd]:
    server = FakeVpcd()
    yield server
    server.close()


@pytest.fixture
def applet(p256_card, persisted) -> PivApplet:
    return PivApplet(p256_card, persisted)


@pytest.fixture
def link(applet, vpcd) -> Iterator[VpcdLink]:
    link = VpcdLink(applet, host="127.0.0.1", port=vpcd.port)
    yield link
    link.stop()


def test_atr_apdus_and_reconnect_after_the_reader_goes_away(link, vpcd):
    link.start()
    conn = vpcd.accept()
    assert not link.inserted.is_set()
    send(conn, b"\x01")  # power on: no answer
    send(conn, b"\x04")
    assert recv(conn) == ATR
    assert link.inserted.wait(2)
    assert ask(conn, SELECT)[-2:] == b"\x90\x00"
    assert ask(conn, GET_DISCOVERY)[-2:] == b"\x90\x00"
    conn.close()  # pcscd stopped
    assert wait_until(lambda: not link.inserted.is_set())
    again = vpcd.accept()  # the link comes back by itself
    send(again, b"\x04")
    assert recv(again) == ATR
    assert ask(again, GET_DISCOVERY) == b"\x6a\x82"  # the card was powered off: nothing selected
    assert link.last_error is None


def test_control_bytes_are_not_answered_and_reset_clears_state(link, vpcd):
    link.start()
    conn = vpcd.accept()
    for ctrl in (b"\x00", b"\x01", b"\x07"):
        send(conn, ctrl)
    send(conn, b"\x04")
    assert recv(conn) == ATR  # the first frame back answers the 04, nothing before it
    assert ask(conn, SELECT)[-2:] == b"\x90\x00"
    assert ask(conn, b"\x00\x20\x00\x80\x08" + pad_pin(PIN)) == b"\x90\x00"
    assert ask(conn, VERIFY_STATUS) == b"\x90\x00"
    send(conn, b"\x02")  # reset
    assert ask(conn, SELECT)[-2:] == b"\x90\x00"
    assert ask(conn, VERIFY_STATUS) == b"\x63\xc3"


def test_frames_written_in_pieces(link, vpcd, applet):
    link.start()
    conn = vpcd.accept()
    send(conn, b"\x04", split=True)
    assert recv(conn) == ATR
    send(conn, SELECT, split=True)
    assert recv(conn)[-2:] == b"\x90\x00"
    send(conn, bytes.fromhex("00CB3FFF055C035FC10500"), split=True)
    data = recv(conn)
    assert len(data) == 258 and data[-2] == 0x61


def test_socket_options(link, vpcd):
    link.start()
    conn = vpcd.accept()
    send(conn, b"\x04")
    recv(conn)
    sock = link._sock
    assert sock is not None and sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_stop_pulls_the_card(link, vpcd):
    link.start()
    conn = vpcd.accept()
    send(conn, b"\x04")
    recv(conn)
    assert link.inserted.is_set()
    started = time.monotonic()
    link.stop()
    assert time.monotonic() - started < 2
    assert conn.recv(16) == b""  # the reader sees the card leave
    assert not link.inserted.is_set()
    assert link._thread is None


def test_connection_refused_keeps_retrying_until_the_reader_appears(applet):
    vpcd = FakeVpcd(listen=False)  # bound but not listening: connections are refused
    link = VpcdLink(applet, port=vpcd.port)
    try:
        link.start()
        assert wait_until(lambda: isinstance(link.last_error, ConnectionRefusedError))
        assert not link.inserted.is_set()
        vpcd.listen()
        conn = vpcd.accept(timeout=5)
        send(conn, b"\x04")
        assert recv(conn) == ATR
        assert link.inserted.wait(2)
    finally:
        link.stop()
        vpcd.close()


def test_run_returns_when_its_stop_event_is_set(applet, vpcd):
    link = VpcdLink(applet, port=vpcd.port)
    stop = threading.Event()
    thread = threading.Thread(target=link.run, args=(stop,), daemon=True)
    thread.start()
    conn = vpcd.accept()  # connected, but the reader stays silent
    time.sleep(0.1)
    stop.set()
    thread.join(2)
    assert not thread.is_alive()
    assert conn.recv(16) == b""


def test_logs_never_carry_apdu_contents(link, vpcd, caplog):
    caplog.set_level(logging.DEBUG, logger="app.card.virtual")
    link.start()
    conn = vpcd.accept()
    send(conn, b"\x04")
    recv(conn)
    ask(conn, SELECT)
    secret = "86429753"
    assert ask(conn, b"\x00\x20\x00\x80\x08" + secret.encode()) == b"\x63\xc2"
    conn.close()
    assert wait_until(lambda: not link.inserted.is_set())
    text = caplog.text
    assert "APDU in" in text  # debug logging is on...
    assert secret not in text and secret.encode().hex() not in text.lower()  # ...but never the data


class RecordingSocket:
    """Wraps the link's real socket and records the order of QUICKACK settings and receives."""

    def __init__(self, sock: socket.socket, calls: list[str]) -> None:
        self._sock, self._calls = sock, calls

    def setsockopt(self, level, option, value):
        if level == socket.IPPROTO_TCP and option == socket.TCP_QUICKACK:
            self._calls.append("quickack")
        return self._sock.setsockopt(level, option, value)

    def recv(self, n):
        self._calls.append("recv")
        return self._sock.recv(n)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def test_quickack_is_set_before_every_receive(applet, vpcd, monkeypatch):
    """vpcd writes length and payload separately; without QUICKACK each APDU waits ~40 ms for a delayed ACK."""
    calls: list[str] = []
    real = socket.create_connection
    monkeypatch.setattr(socket, "create_connection",
                        lambda *a, **k: RecordingSocket(real(*a, **k), calls))
    link = VpcdLink(applet, host="127.0.0.1", port=vpcd.port)
    link.start()
    try:
        conn = vpcd.accept()
        send(conn, b"\x04", split=True)
        assert recv(conn) == ATR
        assert ask(conn, SELECT)[-2:] == b"\x90\x00"
    finally:
        link.stop()
    receives = [i for i, c in enumerate(calls) if c == "recv"]
    assert len(receives) >= 4
    assert all(i > 0 and calls[i - 1] == "quickack" for i in receives), calls
