"""Service-layer fixtures: the SAME store tests run against SQLite and PostgreSQL.

``store_url`` / ``store`` are parametrised ``sqlite`` (a file in the test's tmp dir) and ``postgresql``. For
PostgreSQL the fixture uses ``SPINEDESK_TEST_POSTGRES_URL`` when set (each test then gets its own schema in
that database); otherwise it starts a throwaway server for the test session: ``initdb`` into a temp dir (as the
``postgres`` OS user when running as root, since PostgreSQL refuses to run as root), a free TCP port on
127.0.0.1, its unix socket in the temp dir, ``fsync=on``; one database per session, one schema per test; the
server is stopped and its files removed at the end. No PostgreSQL binaries: the PostgreSQL half is skipped —
except with ``CI`` set, where it fails (CI must run it).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.service.storage import open_store
from app.service.store import Store

ROOT = Path(__file__).resolve().parents[2]
ENV_URL = "SPINEDESK_TEST_POSTGRES_URL"
PG_USER = "spinedesk"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL store tests must run in CI: {reason}")
    pytest.skip(reason)


def pg_bindir() -> Path | None:
    """Where initdb/pg_ctl live: $PG_BINDIR, PATH, or the newest /usr/lib/postgresql/N/bin (Debian)."""
    on_path = shutil.which("pg_ctl")
    for candidate in (os.environ.get("PG_BINDIR"), on_path and os.path.dirname(os.path.realpath(on_path))):
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrowawayPostgres:
    """A private PostgreSQL server in a temp dir, for one test session."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.base = Path(tempfile.mkdtemp(prefix="spinedesk-pg-"))
        self.data, self.sock, self.log = self.base / "data", self.base / "sock", self.base / "server.log"
        self.sock.mkdir()
        self.prefix: list[str] = []
        if os.geteuid() == 0:  # postgres will not run as root: run it as the postgres OS user
            shutil.chown(self.base, "postgres")
            shutil.chown(self.sock, "postgres")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.port = 0

    def _run(self, *args: str, timeout: float = 120) -> None:
        result = subprocess.run([*self.prefix, *args], capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed: {result.stdout}{result.stderr}\n{log}")

    def start(self) -> str:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", PG_USER, "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync")
        for attempt in range(5):
            self.port = free_port()
            opts = (f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=on "
                    "-c max_connections=300 -c shared_buffers=256MB")
            try:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                          "-o", opts, "start")
                break
            except RuntimeError:
                if attempt == 4:
                    raise
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run([*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                            "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """URL of a PostgreSQL database for this test session."""
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed")
    if os.environ.get(ENV_URL):
        yield os.environ[ENV_URL]
        return
    bindir = pg_bindir()
    if bindir is None:
        _unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found; install the postgresql package")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root but there is no 'postgres' OS user to run the test server as")
    server = ThrowawayPostgres(bindir)
    try:
        base_url = server.start()
        with psycopg.connect(f"{base_url}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE spinedesk_test")
        yield f"{base_url}/spinedesk_test"
    finally:
        server.stop()


def _with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store_url(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty (not yet migrated) database for one test."""
    if store_kind == "sqlite":
        yield f"sqlite://{tmp_path}/store.db"
        return
    base = request.getfixturevalue("pg_database")  # skips (or fails in CI) without PostgreSQL
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield _with_schema(base, schema)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture
def raw_sql(store_url: str) -> Callable[..., list[Any]]:
    """Run SQL on the test database behind the store's back (tampering, inspection)."""
    def run(sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if store_url.startswith("sqlite"):
            import sqlite3

            conn = sqlite3.connect(store_url.removeprefix("sqlite://"), isolation_level=None)
            try:
                cur = conn.execute(sql, params)
                return cur.fetchall() if cur.description else []
            finally:
                conn.close()
        import psycopg

        with psycopg.connect(store_url, autocommit=True) as conn:
            cur = conn.execute(sql.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []
    return run


def spawn(code: str, *args: str) -> subprocess.Popen[str]:
    """Start ``python -c code args…`` with the repository importable; stdout/stderr piped as text."""
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=child_env(), cwd=ROOT)


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child Python with the repository first on its path (what was on the path
    already, such as the clock-shifted run's sitecustomize, stays after it)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def start_together(procs: list[subprocess.Popen[str]], go: Path, timeout: float = 60) -> None:
    """Wait until every process printed ``ready``, then release them all at once by creating ``go``."""
    deadline = time.monotonic() + timeout
    for p in procs:
        line = p.stdout.readline() if p.stdout else ""
        if line.strip() != "ready":
            out, err = p.communicate(timeout=max(1, deadline - time.monotonic()))
            raise AssertionError(f"helper process failed to start: {line}{out}{err}")
    go.touch()


# Helper-process prologue: parse argv, open the store, say ready, wait for the go file.
PROLOGUE = """
import os, sys, time
from app.service.storage import open_store
url, go = sys.argv[1], sys.argv[2]
store = open_store(url)
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
"""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One store per store kind for a whole module (live-server tests that seed once and ask many questions)."""
    if request.param == "sqlite":
        store = open_store(f"sqlite://{tmp_path_factory.mktemp('shared')}/store.db")
        yield store
        store.close()
        return
    base = request.getfixturevalue("pg_database")  # fails under CI when PostgreSQL is missing
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    store = open_store(f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}")
    yield store
    store.close()
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
