"""``spinedesk`` on a machine with no display says so and points to ``spinedesk service``; it never crashes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.cli.wiring import has_display

ROOT = Path(__file__).resolve().parents[2]


def test_has_display():
    if sys.platform.startswith("linux"):
        assert not has_display({})
        assert has_display({"DISPLAY": ":0"}) and has_display({"WAYLAND_DISPLAY": "wayland-0"})


def test_spinedesk_without_a_display(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["SPINEDESK_DATA_DIR"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-m", "app"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "No display found" in result.stdout and "spinedesk service" in result.stdout
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "training-service.db").exists()  # nothing started
