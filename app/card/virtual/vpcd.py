"""The training card's link to pcscd's vsmartcard ``vpcd`` reader driver (the card is the TCP client).

Wire protocol, both directions: 2-byte big-endian length, then payload. A 1-byte payload from vpcd is a
control byte (``00`` power off, ``01`` power on, ``02`` reset, ``04`` get ATR — only ``04`` is answered);
anything longer is a C-APDU, answered with the R-APDU. Closing the socket is pulling the card out.

vpcd writes length and payload separately without TCP_NODELAY, so the link sets ``TCP_QUICKACK`` before every
``recv`` (the kernel clears it after each ACK); without it every APDU costs a ~40 ms delayed ACK. Logs carry
lengths and INS bytes only, never APDU contents (VERIFY carries the PIN).
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
from typing import Protocol

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 35963
BACKOFF_MIN = 0.05
BACKOFF_MAX = 2.0
CONNECT_TIMEOUT = 2.0
IO_TIMEOUT = 10.0
POLL_INTERVAL = 0.2  # how often a blocked receive looks at the stop event

CTRL_POWER_OFF, CTRL_POWER_ON, CTRL_RESET, CTRL_GET_ATR = 0x00, 0x01, 0x02, 0x04
_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only (12)


class Card(Protocol):
    """What the link needs from an applet (:class:`PivApplet` fits)."""

    @property
    def atr(self) -> bytes: ...

    def process(self, apdu: bytes) -> bytes: ...

    def power_on(self) -> None: ...

    def power_off(self) -> None: ...

    def reset(self) -> None: ...


class _Stopped(Exception):
    pass


class VpcdLink:
    """Keeps ``applet`` inserted in the vpcd reader at ``host:port``, reconnecting whenever pcscd goes away.

    ``inserted`` is set once the reader asked for the ATR on the current connection (a second card on the same
    port is accepted by TCP but sees no traffic until the first leaves) and cleared on disconnect.
    ``last_error`` is the latest connection problem (``None`` until one happens).
    """

    def __init__(self, applet: Card, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        self.applet = applet
        self.host = host
        self.port = port
        self.inserted = threading.Event()
        self.connected = threading.Event()
        self.last_error: BaseException | None = None
        self._sock: socket.socket | None = None
        self._sock_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- background thread convenience ------------------------------------------------------------------

    def start(self) -> None:
        """Run :meth:`run` in a daemon thread until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, args=(self._stop,), name="vpcd-link", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Pull the card: stop the loop, close the socket, wait for the thread."""
        self._stop.set()
        self._shutdown_socket()  # wakes a blocked receive at once; the loop closes the socket
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._close_socket()

    # --- the loop ---------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Connect and serve; on EOF/error power the card off and reconnect with backoff, until ``stop``."""
        self._stop = stop
        backoff = BACKOFF_MIN
        quiet = False  # after the first failure in a row, retries log at DEBUG only
        while not stop.is_set():
            try:
                sock = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT)
            except OSError as exc:
                self.last_error = exc
                (log.debug if quiet else log.warning)("cannot reach vpcd at %s:%d: %s; retrying",
                                                     self.host, self.port, exc)
                quiet = True
                stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            with self._sock_lock:
                self._sock = sock
            if stop.is_set():  # stop() ran between connect and publishing the socket
                self._close_socket()
                break
            log.info("training card connected to vpcd at %s:%d", self.host, self.port)
            self.connected.set()
            try:
                served = self._serve(sock, stop)
                if served:
                    backoff, quiet = BACKOFF_MIN, False
                log.info("vpcd at %s:%d closed the connection", self.host, self.port)
            except _Stopped:
                pass
            except OSError as exc:
                if not stop.is_set():
                    self.last_error = exc
                    log.warning("vpcd connection failed: %s", exc)
            finally:
                self.connected.clear()
                self.inserted.clear()
                self._close_socket()
                self.applet.power_off()
            if not stop.is_set():
                stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    def _serve(self, sock: socket.socket, stop: threading.Event) -> bool:
        """Answer frames until EOF; returns whether any frame arrived. Raises ``_Stopped``/``OSError``."""
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(IO_TIMEOUT)
        served = False
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            while True:
                header = self._recv_exact(sock, selector, 2, stop)
                if header is None:
                    return served
                length = int.from_bytes(header, "big")
                payload = self._recv_exact(sock, selector, length, stop) if length else b""
                if payload is None:
                    return served
                served = True
                reply = self._handle(payload)
                if reply is not None:
                    sock.sendall(len(reply).to_bytes(2, "big") + reply)

    def _handle(self, payload: bytes) -> bytes | None:
        if len(payload) == 1:
            ctrl = payload[0]
            if ctrl == CTRL_GET_ATR:
                if not self.inserted.is_set():
                    log.info("training card inserted in the vpcd reader")
                self.inserted.set()
                return self.applet.atr
            if ctrl == CTRL_POWER_OFF:
                self.applet.power_off()
            elif ctrl == CTRL_POWER_ON:
                self.applet.power_on()
            elif ctrl == CTRL_RESET:
                self.applet.reset()
            else:
                log.debug("ignoring unknown vpcd control byte %02X", ctrl)
            return None
        if not payload:
            return None
        log.debug("APDU in: %d bytes, INS %s", len(payload), f"{payload[1]:02X}" if len(payload) > 1 else "-")
        reply = self.applet.process(payload)
        log.debug("APDU out: %d bytes", len(reply))
        return reply

    @staticmethod
    def _recv_exact(sock: socket.socket, selector: selectors.BaseSelector, count: int,
                    stop: threading.Event) -> bytes | None:
        """Exactly ``count`` bytes; ``None`` on EOF before the first byte, ``OSError`` on EOF mid-frame."""
        buf = bytearray()
        while len(buf) < count:
            if not selector.select(POLL_INTERVAL):
                if stop.is_set():
                    raise _Stopped
                continue
            if stop.is_set():
                raise _Stopped
            if _TCP_QUICKACK is not None:
                sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
            chunk = sock.recv(count - len(buf))
            if not chunk:
                if buf:
                    raise ConnectionResetError("vpcd closed the connection in the middle of a frame")
                return None
            buf += chunk
        return bytes(buf)

    def _shutdown_socket(self) -> None:
        with self._sock_lock:
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)

    def _close_socket(self) -> None:
        with self._sock_lock:
            sock, self._sock = self._sock, None
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
