"""PySide6 6.12.0 on CPython 3.11 (see app/ui/signals.py): the client survives sustained Qt use.

Unprotected, 2,000 ``QLabel.setText`` calls drop 2,000 references to ``None`` and a few tens of thousands abort the
interpreter ("Fatal Python error: none_dealloc"); ``Signal.emit`` does the same to ``True`` and ``QRunnable.run``
to ``None``. These tests make far more calls than that and must simply survive, with the counts still huge.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel

from app.ui.signals import emit
from app.ui.tasks import Background

UI = Path(__file__).resolve().parents[3] / "app" / "ui"
FLOOR = 1 << 59


class _Thing(QObject):
    ping = Signal(object)


def _counts() -> list[int]:
    return [sys.getrefcount(x) for x in (None, True, False)]


def test_singletons_are_protected(qapp):
    if sys.version_info < (3, 12):
        assert all(c > FLOOR for c in _counts())


def test_hundreds_of_thousands_of_void_calls_and_emits(qtbot):
    label = QLabel()
    for i in range(150_000):
        label.setText("x" if i % 2 else "y")  # returns void: the call that drains None unprotected
    thing = _Thing()
    got = []
    thing.ping.connect(lambda value: got.append(type(value).__name__))
    for i in range(20_000):
        emit(thing.ping, None if i % 2 else False)
    assert len(got) == 20_000
    if sys.version_info < (3, 12):
        assert all(c > FLOOR for c in _counts())


def test_thousands_of_background_tasks(qtbot):
    background = Background(threads=2)
    done, failed = [], []
    for i in range(3000):
        if i % 3 == 0:
            background.run(lambda: (_ for _ in ()).throw(ValueError("x")), lambda v: done.append(1),
                           lambda e: failed.append(type(e).__name__))
        else:
            background.run(lambda i=i: None if i % 2 else True, lambda v: done.append(1), failed.append)
    qtbot.waitUntil(lambda: len(done) + len(failed) == 3000, timeout=60_000)
    assert len(failed) == 1000 and set(failed) == {"ValueError"}
    background.shutdown()


def test_no_direct_emits_in_the_ui_package():
    offenders = [f"{p.name}:{n}" for p in UI.glob("*.py") if p.name not in ("signals.py", "pdf.py")
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if re.search(r"\.emit\b", line)]
    assert offenders == []
