"""Fixtures for this folder: pcscd and virtual-card fixtures (they live in tests.support.pcscd, shared with other
folders, and are re-exported here: pytest reads ``pytest_plugins`` only in the root conftest), and a live
``spinedesk service`` process for the command-line tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.pcscd import *  # noqa: F403
from tests.support.pcscd import spinedesk


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def env(tmp_path):
    """The commands' data and logs (XDG_STATE_HOME: the log folder) in the test's own directory."""
    return {"SPINEDESK_DATA_DIR": str(tmp_path / "data"), "XDG_STATE_HOME": str(tmp_path / "state")}


@pytest.fixture
def service(env, tmp_path):
    port = free_port()
    db = f"sqlite:///{tmp_path / 'service.db'}"
    seeded = spinedesk("service", "--database", db, "seed", "--patients", "50", env=env)
    assert seeded.returncode == 0, seeded.stderr
    out = (tmp_path / "service.stdout").open("w")  # kept: tests search what the service printed
    err = (tmp_path / "service.stderr").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "app", "service", "--database", db, "--port", str(port)],
                            cwd=Path(__file__).parents[2], env={**os.environ, **env}, stdout=out, stderr=err,
                            text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_status").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        proc.kill()
        proc.wait(20)
        out.close()
        err.close()
        pytest.fail(f"service did not start: {(tmp_path / 'service.stderr').read_text()}")
    yield url, db
    proc.send_signal(signal.SIGTERM)
    proc.wait(20)
    out.close()
    err.close()
