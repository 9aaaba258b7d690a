"""Loaded by every Python process of the clock-shifted test run (``scripts/clock-shift-tests.sh`` puts this folder
first on PYTHONPATH), never by the product or the ordinary run.

That run moves the wall clock with libfaketime and leaves the monotonic clock real
(``FAKETIME_DONT_FAKE_MONOTONIC=1``): Debian 12's libfaketime 0.9.10 otherwise hands a shifted monotonic deadline to
the semaphore waits behind every ``threading`` time-out, which then sleep for the whole shift. With the monotonic
clock left alone its ``clock_nanosleep`` wrapper rejects Python's absolute-deadline sleeps with EINVAL, so
``time.sleep`` is replaced here by a wait on ``select`` (a relative time-out libfaketime does not touch) until the
real monotonic deadline. Nothing else is changed: the product still reads the shifted wall clock.
"""

from __future__ import annotations

import os
import select
import time

if os.environ.get("FAKETIME") and os.environ.get("FAKETIME_DONT_FAKE_MONOTONIC") == "1":
    _monotonic = time.monotonic

    def _sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        deadline = _monotonic() + seconds
        while (left := deadline - _monotonic()) > 0:
            select.select([], [], [], left)

    time.sleep = _sleep
