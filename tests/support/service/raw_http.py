"""HTTP/1.1 over a plain socket, for tests that must misbehave as a client (huge, slow or unfinished requests)."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

WAIT = 30.0  # generous bound on any single wait for the server; never asserted on


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def connect(url: str, timeout: float = WAIT) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=timeout)


def read_answer(sock: socket.socket) -> Answer | None:
    """The next response on ``sock``; ``None`` if the server closed (or reset) it before a whole head arrived.
    Raises ``TimeoutError`` if the server neither answers nor closes within the socket's time-out."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return None
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(sock, body)
    else:
        body = _read_at_least(sock, body, int(headers.get("content-length", "0")))
    return Answer(int(lines[0].split()[1]), headers, body)


def _read_at_least(sock: socket.socket, data: bytes, size: int) -> bytes:
    while len(data) < size:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection in the middle of a response")
        data += chunk
    return data


def _dechunk(sock: socket.socket, data: bytes) -> bytes:
    body = b""
    while True:
        while b"\r\n" not in data:
            data = _read_at_least(sock, data, len(data) + 1)
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        data = _read_at_least(sock, data, size + 2)
        if size == 0:
            return body
        body, data = body + data[:size], data[size + 2:]


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed the connection (EOF or reset); False if it is still open after the
    socket's time-out. Whatever the server still sends before closing is read and dropped."""
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    return True


@dataclass
class Streamer:
    """Sends ``pieces`` on a thread until they run out or the connection fails; records how far it got."""

    sock: socket.socket
    pieces: Any  # an iterable of bytes
    sent: int = 0
    finished: bool = False
    error: OSError | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for piece in self.pieces:
                self.sock.sendall(piece)
                self.sent += len(piece)
            self.finished = True
        except OSError as exc:
            self.error = exc

    def join(self) -> None:
        self.thread.join(WAIT * 2)
