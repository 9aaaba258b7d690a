"""Guards against PySide6 6.12.0's reference-count bugs on CPython 3.11, and ``emit(signal, *args)``.

PySide6 6.12.0 (an abi3 wheel, also installed on 3.11) treats ``None``, ``True`` and ``False`` as immortal, as they
are from CPython 3.12 on: every Qt method returning ``void`` called from Python drops a reference to ``None``
(measured: 2,000 ``QLabel.setText`` calls, 2,000 references), every ``QRunnable.run`` Qt calls on its own threads
does too, and ``Signal.emit`` drops one to ``True``. On 3.11 those objects are not immortal, so a client that has
made some tens of thousands of Qt calls aborts with "Fatal Python error: none_dealloc". :func:`protect_singletons`
gives the three objects the same practically-infinite reference count 3.12 gives them (they are static and never
freed, so nothing else changes); ``run_client``, the GUI tests and the UI benchmark call it before Qt starts.

PySide6 6.12.0's ``SignalInstance.emit`` returns ``True`` without taking a reference to it, so every emit made from
Python drops one reference to ``True``; after a few thousand emits CPython 3.11 (where ``True`` is not immortal)
aborts with "Fatal Python error: bool_dealloc". Measured here: 100 emits → ``sys.getrefcount(True)`` 100 lower.
This helper checks once whether the running PySide6 has the bug and, if so, gives the reference back after each
emit; with a fixed PySide6 it does nothing extra. Never call ``.emit`` directly in ``app.ui`` (a test checks).
"""

from __future__ import annotations

import ctypes
import sys
import threading
from typing import Any

from PySide6.QtCore import QObject, Signal

_incref = ctypes.pythonapi.Py_IncRef
_incref.argtypes = [ctypes.py_object]
_incref.restype = None
_PROBES = 200
_lock = threading.Lock()
_broken: bool | None = None


_IMMORTAL = 1 << 60


def protect_singletons() -> None:
    """Make ``None``, ``True`` and ``False`` effectively immortal (a no-op from CPython 3.12, where they are)."""
    if sys.version_info >= (3, 12):
        return
    for obj in (None, True, False):
        count = ctypes.c_ssize_t.from_address(id(obj))  # ob_refcnt is the first field of every PyObject
        if count.value < _IMMORTAL:
            count.value += _IMMORTAL


class _Probe(QObject):
    ping = Signal()


def emit_drops_a_reference() -> bool:
    """Whether ``Signal.emit`` loses a reference to its result (decided once, by measuring)."""
    global _broken
    with _lock:
        if _broken is None:
            probe = _Probe()
            before = sys.getrefcount(True)
            for _ in range(_PROBES):
                probe.ping.emit()
            lost = before - sys.getrefcount(True)
            _broken = lost > _PROBES // 2  # other threads may move the count a little either way
            if _broken:
                for _ in range(_PROBES):  # repair what the probe itself took
                    _incref(True)
        return _broken


def emit(signal: Any, *args: Any) -> None:
    result = signal.emit(*args)
    if emit_drops_a_reference():
        _incref(result)
