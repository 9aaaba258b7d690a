"""Huge, slow and too many requests are refused by the real server, as configured for production.

Servers on loopback (``live.serve`` uses the production uvicorn configuration); clients are raw sockets. Time-outs
are made tiny where a test needs one to pass; every wait is bounded by ``raw_http.WAIT`` and nothing is asserted
about how long anything took — only what the server did: answered with a refusal, or closed the connection.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.pki import TrainingCA
from app.service.core.limits import HttpLimits, LimitError
from app.service.runtime import ENV, ServiceConfig
from app.service.storage import open_store

from .live import free_port, serve
from .raw_http import WAIT, Streamer, closed_by_server, connect, read_answer

ROOT = Path(__file__).resolve().parents[2]
TIGHT = HttpLimits(request_timeout=2, idle_timeout=1, keep_alive=1, max_requests_per_connection=3)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """``world()``: a fresh store and the module's CA, for one more server."""
    ca, stores = TrainingCA.load_or_create(tmp_path_factory.mktemp("pki")), []

    def make():
        stores.append(open_store(f"sqlite://{tmp_path_factory.mktemp('db')}/store.db"))
        return stores[-1], ca

    yield make
    for store in stores:
        store.close()


@pytest.fixture(scope="module")
def live(world):
    """The production limits."""
    with serve(*world(), patients=1) as service:
        yield service


@pytest.fixture(scope="module")
def tight(world):
    """Time-outs of a second or two, three requests per connection."""
    with serve(*world(), patients=1, limits=TIGHT) as service:
        yield service


def get(path: str = "/_status", *lines: str) -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *lines, "", ""]).encode("latin-1")


def assert_refused(answer, status: int, issue_code: str) -> None:
    assert answer is not None, "the server closed the connection without answering"
    assert answer.status == status, answer
    assert answer.headers["connection"] == "close"
    assert answer.headers["content-type"].startswith("application/fhir+json")
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == issue_code


def answer_or_fail(sock, what: str):
    try:
        return read_answer(sock)
    except TimeoutError:
        pytest.fail(f"neither an answer nor a closed connection within {WAIT} s: {what}")


def still_serving(url: str) -> None:
    with connect(url) as sock:
        sock.sendall(get())
        answer = read_answer(sock)
        assert answer is not None and answer.status == 200, answer


# --- size -------------------------------------------------------------------------------------------------------


def test_a_huge_header_is_refused(live):
    with connect(live.url) as sock:
        big = b"a" * (1024 * 1024)
        upload = Streamer(sock, [b"GET /_status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ",
                                 *(big[i:i + 65536] for i in range(0, len(big), 65536)), b"\r\n\r\n"])
        answer = answer_or_fail(sock, "a 1 MiB header")
        assert answer is None or answer.status == 431, f"a 1 MiB header was answered {answer.status}"
        if answer is not None:
            assert_refused(answer, 431, "too-long")
        assert closed_by_server(sock)
        upload.join()
    still_serving(live.url)


def test_too_many_headers_are_refused(live):
    with connect(live.url) as sock:
        sock.sendall(get("/_status", *(f"X-H{i}: {i}" for i in range(HttpLimits().max_headers + 1))))
        assert_refused(answer_or_fail(sock, "too many headers"), 431, "too-long")
        assert closed_by_server(sock)


def test_headers_within_the_limits_are_served(live):
    with connect(live.url) as sock:
        sock.sendall(get("/_status", *(f"X-H{i}: {'v' * 100}" for i in range(HttpLimits().max_headers - 2))))
        answer = read_answer(sock)
        assert answer is not None and answer.status == 200, answer


# --- time -------------------------------------------------------------------------------------------------------


def test_a_body_that_stalls_half_way_is_closed(tight):
    with connect(tight.url) as sock:
        sock.sendall(b"POST /auth/challenge HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n" + b'{"certificate": "')
        assert_refused(answer_or_fail(sock, "a body that stopped half-way"), 408, "timeout")
        assert closed_by_server(sock)


def test_a_head_that_stalls_half_way_is_closed(tight):
    with connect(tight.url) as sock:
        sock.sendall(b"GET /_status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert_refused(answer_or_fail(sock, "headers that stopped half-way"), 408, "timeout")
        assert closed_by_server(sock)


def test_a_request_that_trickles_in_is_cut_off_at_the_request_deadline(tight):
    def trickle():
        yield b"POST /auth/challenge HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n"
        for _ in range(100):  # one byte well inside the idle time-out, 30 s in all: far past the deadline
            time.sleep(0.3)
            yield b" "

    with connect(tight.url) as sock:
        upload = Streamer(sock, trickle())
        answer = answer_or_fail(sock, "a request trickling in")
        assert not upload.finished, "the whole request arrived: the server never cut it off"
        assert_refused(answer, 408, "timeout")
        assert closed_by_server(sock)
        upload.join()
        assert upload.error is not None


def test_a_connection_that_never_sends_a_request_is_closed(tight):
    with connect(tight.url) as sock:
        assert closed_by_server(sock), f"an idle new connection was still open after {WAIT} s"


def test_an_idle_kept_alive_connection_is_closed(tight):
    with connect(tight.url) as sock:
        sock.sendall(get())
        answer = read_answer(sock)
        assert answer is not None and answer.status == 200, answer
        assert closed_by_server(sock), f"an idle keep-alive connection was still open after {WAIT} s"


# --- how many ---------------------------------------------------------------------------------------------------


def test_requests_per_connection_are_capped(tight):
    with connect(tight.url) as sock:
        answers = []
        for _ in range(TIGHT.max_requests_per_connection):
            sock.sendall(get())
            answers.append(read_answer(sock))
        assert [a.status for a in answers] == [200] * len(answers)
        assert [a.headers.get("connection") for a in answers] == [None] * (len(answers) - 1) + ["close"]
        assert closed_by_server(sock)


def test_connections_beyond_the_limit_get_503(world):
    with serve(*world(), patients=1, limits=HttpLimits(max_connections=2)) as small:
        held = [connect(small.url) for _ in range(2)]
        try:
            for sock in held:  # a full exchange on each: the server has certainly counted them
                sock.sendall(get())
                assert read_answer(sock).status == 200
            with connect(small.url) as extra:
                extra.sendall(get())
                answer = read_answer(extra)
                assert_refused(answer, 503, "throttled")
                assert answer.headers["retry-after"].isdigit()
        finally:
            for sock in held:
                sock.close()
        for _ in range(200):  # once the held connections are gone the server takes requests again
            with connect(small.url) as again:
                again.sendall(get())
                answer = read_answer(again)
            if answer is not None and answer.status == 200:
                break
            time.sleep(0.05)
        assert answer is not None and answer.status == 200, answer


# --- configuration ----------------------------------------------------------------------------------------------


def test_limits_reach_every_worker_process_through_the_environment(monkeypatch):
    limits = HttpLimits().with_overrides(["request_timeout=12.5", "max-connections=40"])
    monkeypatch.setenv(ENV, ServiceConfig("sqlite:///x.db", limits=limits).to_env())
    assert ServiceConfig.from_env().limits == HttpLimits(request_timeout=12.5, max_connections=40)


def test_limits_given_on_the_command_line_hold_in_every_worker_process(tmp_path):
    """``spinedesk service --workers 2 --limit …``: the workers are spawned processes (the parent serves nothing)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPINEDESK_DATA_DIR": str(tmp_path),
           "SPINEDESK_SITE_CONFIG": str(tmp_path / "no-such-site.toml")}  # training mode, whatever the host has
    proc = subprocess.Popen([sys.executable, "-m", "app", "service", "--database", f"sqlite:///{tmp_path}/s.db",
                             "--port", str(port), "--workers", "2", "--limit", "max_headers=5"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):  # bounded wait for the parent to bind the socket
            try:
                connect(url, timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        still_serving(url)
        for _ in range(4):
            with connect(url) as sock:
                sock.sendall(get("/_status", *(f"X-H{i}: {i}" for i in range(5))))  # + Host: six fields
                assert_refused(answer_or_fail(sock, "six header fields"), 431, "too-long")
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_bad_limit_on_the_command_line_is_refused_before_anything_starts(tmp_path):
    env = {**os.environ, "SPINEDESK_DATA_DIR": str(tmp_path), "SPINEDESK_SITE_CONFIG": str(tmp_path / "none.toml")}
    run = subprocess.run([sys.executable, "-m", "app", "service", "--database", f"sqlite:///{tmp_path}/s.db",
                          "--port", str(free_port()), "--limit", "request_timeout=soon"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "request_timeout" in run.stderr and "Spine Desk service on" not in run.stdout


@pytest.mark.parametrize("setting", ["request_timeout", "nope=3", "max_connections=many", "idle_timeout=0",
                                     "max_body=-1"])
def test_a_bad_limit_setting_is_a_typed_error(setting):
    with pytest.raises(LimitError):
        HttpLimits().with_overrides([setting])
