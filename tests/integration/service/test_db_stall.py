"""A stalled database does not freeze the service: every database wait is bounded, a request that cannot get its
answer (or its audit record) in time is refused with 503 + Retry-After, ``/_status`` and ``/openapi.json`` keep
answering (and ``/_status`` says the database is stalled), and once the stall ends everything works again with
nothing lost.

Each test holds a real lock from another database session — SQLite: an exclusive write transaction in another
process;
PostgreSQL: ``LOCK TABLE patients IN ACCESS EXCLUSIVE MODE`` — against a real server on a loopback port.
No timing is asserted beyond "the answer arrived while the lock was still held" (the requests use the desktop
client's own 15 s time-out, far above the service's database wait).
"""

from __future__ import annotations

import base64
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from app.pki import TrainingCA
from app.service.core.limits import HttpLimits
from app.service.storage import open_store
from app.service.store import Store
from tests.support.service.fixtures import child_env
from tests.support.service.live import LIVE_LIMITS, Live, serve

# Concurrency under held locks and time-outs, nothing decided by a date: a stress test. It stays out of the
# clock-shifted runs, where libfaketime distorts the threads' timed waits (the PostgreSQL stall went unanswered at
# +90 days while the same test passes on the real clock).
pytestmark = pytest.mark.stress

CLIENT_TIMEOUT = 15.0  # the desktop client's (app/desktop.py)
DB_WAIT = 2.0  # the service's database wait in these tests (its default is a few seconds)
PATIENT = "9000000009"


HOLD_SQLITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


@pytest.fixture
def ca(tmp_path: Path) -> TrainingCA:
    return TrainingCA.load_or_create(tmp_path / "pki")


@contextmanager
def held(store_url: str) -> Iterator[None]:
    """Another session holds a lock every data request needs, until the block ends."""
    if store_url.startswith("sqlite"):  # the database's one write lock, taken by another process
        holder = spawn(HOLD_SQLITE_LOCK, store_url.removeprefix("sqlite://"))
        try:
            assert holder.stdout is not None and holder.stdin is not None
            assert holder.stdout.readline().strip() == "locked", holder.stderr.read() if holder.stderr else ""
            yield
        finally:
            if holder.stdin is not None:
                holder.stdin.close()  # the holder rolls back and exits
            holder.wait(30)
        return
    import psycopg

    with psycopg.connect(store_url) as conn:  # one transaction, rolled back on leaving
        conn.execute("LOCK TABLE patients IN ACCESS EXCLUSIVE MODE")
        yield
        conn.rollback()


class Pending:
    """One request sent from its own thread; ``answer`` once it has come back."""

    def __init__(self, send: Callable[[httpx.Client], httpx.Response]) -> None:
        self.answer: httpx.Response | None = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
                    self.answer = send(client)
            except BaseException as exc:  # the test reports it
                self.error = exc

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self) -> httpx.Response:
        self._thread.join(CLIENT_TIMEOUT + 5)
        assert self.error is None, f"no answer: {self.error!r}"
        assert self.answer is not None
        return self.answer


def spawn(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=child_env())


def read(live: Live, token: str) -> Callable[[httpx.Client], httpx.Response]:
    return lambda c: c.get(live.pds(f"/Patient/{PATIENT}"), headers=live.headers(token, "clin-1"))


def challenge(live: Live) -> Callable[[httpx.Client], httpx.Response]:
    cert = base64.b64encode(live.certs["alice"]).decode()
    return lambda c: c.post(f"{live.url}/auth/challenge", json={"certificate": cert})


def status(live: Live) -> httpx.Response:
    return httpx.get(f"{live.url}/_status", timeout=CLIENT_TIMEOUT)


def assert_unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) > 0
    coding = r.json()["issue"][0]["details"]["coding"][0]
    assert coding["code"] == "SERVICE_UNAVAILABLE"
    assert PATIENT not in r.text  # no patient data without its audit record


def stall_and_recover(live: Live, store_url: str, store: Store) -> None:
    token = live.login("alice")
    with httpx.Client(timeout=CLIENT_TIMEOUT) as c:
        assert read(live, token)(c).status_code == 200
    before = len(store.query_audit(nhs_number=PATIENT, limit=1000))
    with held(store_url):
        data = Pending(read(live, token))
        login = Pending(challenge(live))
        # (b) while both requests wait on the database, the loop answers: /_status says the database is
        # stalled (polled until it does; every poll must come back) and the OpenAPI document is served
        reports = []
        while not reports or reports[-1].status_code != 503:
            reports.append(status(live))
            assert reports[-1].status_code in (200, 503), reports[-1].text
            if data.done and login.done and reports[-1].status_code != 503:
                break
        stalled = reports[-1]
        assert stalled.status_code == 503, [r.text for r in reports]
        assert "database" in stalled.text
        openapi = httpx.get(f"{live.url}/openapi.json", timeout=CLIENT_TIMEOUT)
        assert openapi.status_code == 200 and openapi.json()["openapi"].startswith("3.")
        # (a) both are refused with 503 + Retry-After while the lock is still held (not after it is released)
        assert_unavailable(data.result())
        if store_url.startswith("sqlite"):  # the write lock stops every write; the table lock only patient reads
            assert_unavailable(login.result())
        else:
            assert login.result().status_code == 200
    # (c) after the lock is released, everything works and nothing was lost
    with httpx.Client(timeout=CLIENT_TIMEOUT) as c:
        r = read(live, token)(c)
        assert r.status_code == 200 and r.json()["id"] == PATIENT
        assert challenge(live)(c).status_code == 200
    assert live.login("alice")
    healthy = status(live)
    assert healthy.status_code == 200 and healthy.json()["status"] == "pass", healthy.text
    audit = store.query_audit(nhs_number=PATIENT, limit=1000)
    assert len(audit) >= before + 1 and all(rec.outcome in ("200", "500", "503") for rec in audit)
    assert audit[0].outcome == "200"  # the read after the stall is on the record
    assert store.verify_audit().ok


def limits() -> HttpLimits:
    return HttpLimits(**{**LIVE_LIMITS.__dict__, "db_timeout": DB_WAIT})


@pytest.mark.parametrize("store_kind", ["sqlite", "postgresql"])
def test_a_held_database_lock_is_a_quick_503_and_the_service_keeps_answering(store_url: str, ca: TrainingCA) -> None:
    store = open_store(store_url, timeout=DB_WAIT)
    try:
        with serve(store, ca, patients=20, limits=limits()) as live:
            stall_and_recover(live, store_url, store)
    finally:
        store.close()


def test_the_database_wait_is_a_typed_limit_that_reaches_the_store(tmp_path: Path) -> None:
    from app.service.core.limits import LimitError
    from app.service.runtime import ServiceConfig, build_service

    assert HttpLimits().db_timeout < CLIENT_TIMEOUT
    assert HttpLimits().with_overrides(["db-timeout=1.5"]).db_timeout == 1.5
    with pytest.raises(LimitError):
        HttpLimits(db_timeout=0)
    config = ServiceConfig(f"sqlite:///{tmp_path / 'svc.db'}", training_pki=str(tmp_path / "pki"),
                           limits=HttpLimits(db_timeout=1.5))
    service = build_service(config)
    try:
        assert service.store.timeout == 1.5  # type: ignore[attr-defined]
    finally:
        service.close()


# --- the HTTP adapter's own bounds, with handlers that block until told (real uvicorn on loopback) --------------

def test_the_adapter_bounds_the_wait_for_a_thread_for_the_health_probe_and_for_the_audit() -> None:
    import uvicorn

    from app.service.core.http import Request, Response, asgi_app
    from app.service.server import uvicorn_config
    from tests.support.service.live import free_port

    release = threading.Event()
    ran: list[str] = []
    never: Future[object] = Future()  # an audit commit that never completes

    def handle(request: Request) -> tuple[Response, list[Future[object]]]:
        ran.append(request.path)
        if request.path in ("/stuck", "/_status"):
            release.wait(60)
        if request.path == "/data":
            return Response(200, b"patient data"), [never]
        return Response(200, b"ok"), []

    app = asgi_app(handle, audit_failed=Response(503, b"not audited", [("retry-after", "5")]),
                   unavailable=Response(503, b"unavailable", [("retry-after", "5")]), threads=1, wait=0.5,
                   inline=frozenset({"/openapi.json"}), probes=frozenset({"/_status"}))
    port = free_port()
    server = uvicorn.Server(uvicorn_config(app, LIVE_LIMITS, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        while not server.started:
            threading.Event().wait(0.02)
        stuck = Pending(lambda c: c.get(f"{url}/stuck"))  # holds the only database thread
        while "/stuck" not in ran:
            threading.Event().wait(0.02)
        with httpx.Client(timeout=CLIENT_TIMEOUT) as c:
            queued = c.get(f"{url}/other", headers={"X-Request-ID": "r-1"})
            assert queued.status_code == 503 and queued.text == "unavailable"  # refused, never run
            assert queued.headers["x-request-id"] == "r-1" and "/other" not in ran
            assert c.get(f"{url}/openapi.json").status_code == 200  # the loop answers
            first = c.get(f"{url}/_status")  # the probe outlives its bound: unavailable
            again = c.get(f"{url}/_status")  # the previous probe still runs: unavailable at once
            assert (first.status_code, again.status_code) == (503, 503) and ran.count("/_status") == 1
            assert not stuck.done  # all of that while the stuck request was still stuck
            release.set()
            assert stuck.result().status_code == 200
            data = c.get(f"{url}/data")  # its audit never commits: no data leaves
            assert data.status_code == 503 and data.text == "not audited"
            assert c.get(f"{url}/other").status_code == 200
    finally:
        release.set()
        server.should_exit = True
        thread.join(10)


def test_the_command_line_sets_the_database_threads_and_wait(tmp_path: Path) -> None:
    import argparse

    from app.cli.service import _config, add_parser
    from app.config import Paths, Settings
    from app.errors import AppError

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    training = Settings(Paths(tmp_path, tmp_path, tmp_path, tmp_path / "site.toml"))

    def config(*argv: str):  # type: ignore[no-untyped-def]
        return _config(parser.parse_args(["service", "--database", "sqlite:///unused.db", *argv]), training)

    assert config().threads == 2 and config().limits.db_timeout == HttpLimits().db_timeout
    assert config("--threads", "0").threads == 0
    assert config("--limit", "db_timeout=2.5").limits.db_timeout == 2.5
    with pytest.raises(AppError):
        config("--threads", "-1")
