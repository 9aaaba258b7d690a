"""Cold start of the desktop client (source tree) to the login window, in training mode.

Each run is a fresh Python process doing what ``spinedesk`` does — ``app.desktop.build_deps`` (open the training
database, start the in-process service, insert the training card into pcscd's virtual reader 00 01), then the Qt
window — until the WES gate has passed and the login page is shown. The first run seeds the database and issues
the card (reported separately); the others reuse them, as every later start does. The WES gate here is the real
checker when importable.

Usage: python benchmarks/ui_cold_start.py [--runs 5] [--markdown docs/benchmarks/ui_cold_start.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import io, sys, time
from contextlib import ExitStack
from app.config import Paths, Settings
from app.desktop import build_deps
from app.ui.signals import protect_singletons
protect_singletons()
from PySide6.QtWidgets import QApplication
from app.ui.app import STYLE
from app.ui.main_window import MainWindow
from pathlib import Path
base = Path(sys.argv[1])
settings = Settings(paths=Paths(base / "config", base / "data", base / "log", base / "none.toml"))
with ExitStack() as stack:
    app = QApplication(["spinedesk"])
    app.setStyleSheet(STYLE)
    deps = build_deps(settings, stack, io.StringIO(), vpcd_port=35964, only_reader="Virtual PCD 00 01")
    window = MainWindow(deps)
    window.show()
    window.start()
    while not (window.wes_report is not None and window.stack.currentWidget() is window.login_page
               and window.isVisible()):
        app.processEvents()
        time.sleep(0.001)
    print("READY", time.time(), "COMPLIANT" if window.wes_report.compliant else "NOT-COMPLIANT", flush=True)
    window.shutdown()
"""


def start_xvfb() -> subprocess.Popen | None:
    if os.environ.get("DISPLAY"):
        return None
    number = next(n for n in range(150, 250) if not Path(f"/tmp/.X{n}-lock").exists())
    proc = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1400x1000x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.environ["DISPLAY"] = f":{number}"
    return proc


def one(base: Path) -> tuple[float, str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "PYTHONPATH": str(ROOT)}
    started = time.time()
    out = subprocess.run([sys.executable, "-c", CHILD, str(base)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("READY")), None)
    if line is None:
        raise RuntimeError(out.stderr[-2000:])
    _, ready, verdict = line.split()
    return (float(ready) - started) * 1000, verdict


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    xvfb = start_xvfb()
    base = Path(tempfile.mkdtemp(prefix="spinedesk-cold-"))
    try:
        first, verdict = one(base)
        times = [one(base)[0] for _ in range(args.runs)]
    finally:
        shutil.rmtree(base, ignore_errors=True)
        if xvfb is not None:
            xvfb.terminate()
    text = "\n".join([
        f"Runs: {args.runs} fresh processes, {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, source tree (not frozen), Xvfb, real pcscd; WES gate verdict: "
        f"{verdict.lower()}.",
        "",
        "| measure | median ms | min ms | max ms |",
        "|---|---|---|---|",
        f"| process start → login window (training, database and card already there) | "
        f"{statistics.median(times):.0f} | {min(times):.0f} | {max(times):.0f} |",
        f"| first run ever (seeds 2,000 patients, issues the training card) | {first:.0f} | | |",
    ])
    print(text)
    if args.markdown:
        args.markdown.write_text("# Desktop client: cold start to the login window\n\nCommand: `python "
                                 "benchmarks/ui_cold_start.py --runs N --markdown docs/benchmarks/ui_cold_start.md`"
                                 "\n\n" + text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
