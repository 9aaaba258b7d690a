"""Request bodies over the limit are refused while they are still arriving, not buffered to the end.

A real server on loopback; the client is a raw socket so that it can declare, or keep sending, far more than the
service accepts. The proof that the body is not buffered is the ORDER of events: the 413 is readable while the
client is still sending, and the server then closes the connection so the rest of the upload fails.
"""

from __future__ import annotations

import pytest

from app.pki import TrainingCA
from app.service.core.http import MAX_BODY
from app.service.storage import open_store

from .live import serve
from .raw_http import Streamer, closed_by_server, connect, read_answer

CHUNK = 64 * 1024
UPLOAD = 64 * 1024 * 1024  # what the client would send if nobody stopped it: far past any socket buffers


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    store = open_store(f"sqlite://{tmp_path_factory.mktemp('db')}/store.db")
    with serve(store, TrainingCA.load_or_create(tmp_path_factory.mktemp("pki")), patients=1) as service:
        yield service
    store.close()


def head(method: str, path: str, *lines: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *lines, "", ""]).encode("latin-1")


def chunks(total: int):
    piece = b"%x\r\n" % CHUNK + b"a" * CHUNK + b"\r\n"
    for _ in range(total // CHUNK):
        yield piece
    yield b"0\r\n\r\n"


def assert_too_large(answer) -> None:
    assert answer is not None, "the server closed the connection without answering"
    assert answer.status == 413, answer
    assert answer.headers["connection"] == "close"
    assert answer.headers["content-type"].startswith("application/fhir+json")
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "too-long"


def test_chunked_body_is_refused_as_it_passes_the_limit(live):
    with connect(live.url) as sock:
        sock.sendall(head("POST", "/auth/challenge", "Content-Type: application/json", "Transfer-Encoding: chunked"))
        upload = Streamer(sock, chunks(UPLOAD))
        answer = read_answer(sock)
        still_sending = not upload.finished
        assert answer is not None and answer.status == 413, answer
        assert still_sending, "the 413 came only after the client had sent the whole upload: it was buffered"
        assert_too_large(answer)
        upload.join()
        assert upload.error is not None, "the server let the client send the whole upload after refusing it"
        assert upload.sent < UPLOAD


def test_declared_content_length_over_the_limit_is_refused_before_any_body(live):
    with connect(live.url) as sock:
        sock.sendall(head("POST", "/auth/challenge", "Content-Type: application/json", "Content-Length: 400000000"))
        try:
            answer = read_answer(sock)
        except TimeoutError:
            pytest.fail("no answer: the server is waiting for a body it has already been told is too large")
        assert_too_large(answer)
        assert closed_by_server(sock)


def test_a_body_of_exactly_the_limit_is_still_read(live):
    body = b'{"certificate": "' + b"A" * (MAX_BODY - 19) + b'"}'
    assert len(body) == MAX_BODY
    with connect(live.url) as sock:
        sock.sendall(head("POST", "/auth/challenge", "Content-Type: application/json",
                          f"Content-Length: {len(body)}") + body)
        answer = read_answer(sock)
        assert answer is not None and answer.status != 413, answer
        assert answer.json()["resourceType"] == "OperationOutcome"  # refused as a certificate, not for its size
