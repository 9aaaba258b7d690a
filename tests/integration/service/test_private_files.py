"""`spinedesk service` keeps its data to its user: the data folder and the log folder 0700, the SQLite database,
its -wal/-shm files and the log files 0600 — created so (whatever the umask) and tightened when they exist."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.config import APP_NAME
from app.private_files import create_private_file, private_dir, tighten

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def xdg_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "SPINEDESK_"))}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"), XDG_STATE_HOME=str(home / "state"),
               XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"))
    return env


def run_service_and_check(home: Path, extra: list[str], check) -> None:  # type: ignore[no-untyped-def]
    """Start ``python -m app service`` (umask 022, like a login shell), wait until it answers, run ``check``
    while it runs, stop it."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "app", "service", "--port", str(port), *extra], cwd=ROOT,
                            env=xdg_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: os.umask(0o022))  # a login shell's umask
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"GET /_status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(100).startswith(b"HTTP/1.1 200"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the service did not start: {proc.stderr.read().decode(errors='replace')[-2000:]}")
            time.sleep(0.1)
        check()
    finally:
        proc.terminate()
        proc.wait(30)


def service_files(home: Path) -> tuple[Path, Path]:
    import platformdirs

    env = xdg_env(home)
    saved = {k: os.environ.get(k) for k in env if k.startswith("XDG_") or k == "HOME"}
    os.environ.update({k: env[k] for k in saved})
    try:
        dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
        return Path(dirs.user_data_dir), Path(dirs.user_log_dir)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_a_fresh_service_creates_its_files_private(tmp_path):
    data, logs = service_files(tmp_path)

    def check() -> None:
        db = data / "service.db"
        assert mode(data) == 0o700
        for f in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            assert f.exists() and mode(f) == 0o600, f
        assert mode(logs) == 0o700
        assert mode(logs / "spinedesk.log") == 0o600

    run_service_and_check(tmp_path, [], check)


def test_files_left_readable_are_tightened_on_start(tmp_path):
    data, logs = service_files(tmp_path)
    data.mkdir(parents=True, mode=0o755)
    logs.mkdir(parents=True, mode=0o755)
    os.chmod(data, 0o755)
    os.chmod(logs, 0o755)
    db = data / "old.db"
    for f in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), logs / "spinedesk.log", logs / "spinedesk.log.1"):
        f.write_bytes(b"")
        os.chmod(f, 0o644)

    def check() -> None:
        assert mode(logs) == 0o700
        for f in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), logs / "spinedesk.log", logs / "spinedesk.log.1"):
            assert mode(f) == 0o600, f

    run_service_and_check(tmp_path, ["--database", f"sqlite:///{db}"], check)


def test_helpers_never_loosen(tmp_path):
    f = tmp_path / "f"
    create_private_file(f)
    assert mode(f) == 0o600
    os.chmod(f, 0o400)
    tighten([f, tmp_path / "missing"])
    assert mode(f) == 0o400
    d = private_dir(tmp_path / "a" / "b")
    assert mode(d) == 0o700
