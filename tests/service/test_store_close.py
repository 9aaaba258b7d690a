"""Closing a SQLite store while other threads still use it (a service shutting down with its CP-IS deliverer or a
request mid-query) never closes a connection under a running statement: that crashed the whole process with a
segmentation fault. Threads using the store see a clear "closed" StoreError, nothing else."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT, child_env

# In a child process: a crash there (SIGSEGV) fails this test instead of killing the test run.
RACE = r"""
import sqlite3, sys, tempfile, threading
from app.service.storage import open_store
from app.service.store.errors import StoreError

surprises = []
for round_ in range(int(sys.argv[1])):
    folder = tempfile.mkdtemp()
    store = open_store(f"sqlite:///{folder}/race.db")
    go = threading.Event()

    def reader():
        go.wait()
        while True:
            try:
                store.cpis_outbox_due()
            except StoreError as exc:
                if "closed" not in str(exc):
                    surprises.append(repr(exc))
                return
            except Exception as exc:  # sqlite3.ProgrammingError: a connection closed under the thread
                surprises.append(repr(exc))
                return

    threads = [threading.Thread(target=reader) for _ in range(6)]
    for t in threads:
        t.start()
    go.set()
    store.close()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a reader never noticed the store was closed"
print("surprises", len(surprises), sorted(set(surprises))[:3])
sys.exit(1 if surprises else 0)
"""


def test_closing_a_sqlite_store_under_busy_threads_is_clean() -> None:
    done = subprocess.run([sys.executable, "-c", RACE, "40"], cwd=ROOT, env=child_env(), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stdout}{done.stderr[-3000:]}"
