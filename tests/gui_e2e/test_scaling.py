"""The client at 200% (QT_SCALE_FACTOR=2): a child pytest, because Qt reads the scale factor once at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.pcsc


def test_the_window_works_at_200_percent(xdisplay):
    env = {**os.environ, "QT_SCALE_FACTOR": "2", "SPINEDESK_XVFB_SCREEN": "2400x1800x24"}
    env.pop("DISPLAY", None)  # the child starts its own (bigger) Xvfb
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests/gui_e2e/scaled_check.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout
