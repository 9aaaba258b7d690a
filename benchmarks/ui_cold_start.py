"""Cold start of the desktop client, in training mode: process start → login window shown, and → ready to log in.

Each run starts ``spinedesk`` afresh exactly as a user does (``python -m app``, or the frozen binary with
``--binary``), with its data in a temporary directory, the training card served in pcscd's virtual reader 00 01
(``SPINEDESK_TRAINING_VPCD_PORT`` / ``SPINEDESK_TRAINING_READER``, so another suite's card in 00 00 is left alone),
and ``SPINEDESK_STARTUP_MARKS=1``, which makes the client write wall-clock marks on stderr: ``shown`` after the
main window's first paint (the card status line and the start-up/WES progress page), ``ready`` when the service is
up and the WES gate has answered (``closed`` if it did not open). The clock starts just before the process is
spawned, so interpreter start and every import count. The process is then ended with SIGTERM (as a desktop
session ends it: the training card is pulled and the service stopped). The first run seeds the database and
issues the card (reported separately); the others reuse them, as every later start does.

Usage: python benchmarks/ui_cold_start.py [--runs 5] [--binary PATH] [--markdown docs/benchmarks/ui_cold_start.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PORT, READER = 35964, "Virtual PCD 00 01"
MARK = re.compile(r"spinedesk-mark (\w+) ([0-9.]+)")


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


def one(base: Path, command: list[str]) -> dict[str, float]:
    """One start: {"shown": ms, "ready": ms} (and "closed" when the gate stayed shut)."""
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "SPINEDESK_STARTUP_MARKS": "1",
           "SPINEDESK_DATA_DIR": str(base / "data"), "XDG_CONFIG_HOME": str(base / "config"),
           "XDG_STATE_HOME": str(base / "state"), "SPINEDESK_SITE_CONFIG": str(base / "no-site.toml"),
           "SPINEDESK_TRAINING_VPCD_PORT": str(PORT), "SPINEDESK_TRAINING_READER": READER}
    marks: dict[str, float] = {}
    tail: list[str] = []
    started = time.time()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killer = threading.Timer(120, proc.kill)
    killer.start()
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            tail = [*tail, line][-30:]
            if (found := MARK.search(line)) is not None:  # the first run's seeding progress may share the line
                what, when = found.group(1), found.group(2)
                marks[what] = (float(when) - started) * 1000
                if what in ("ready", "closed"):
                    break
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        killer.cancel()
    if "shown" not in marks or not ({"ready", "closed"} & marks.keys()):
        raise RuntimeError("no start-up marks (a build without SPINEDESK_STARTUP_MARKS?):\n" + "".join(tail))
    return marks


def row(label: str, values: list[float]) -> str:
    return f"| {label} | {statistics.median(values):.0f} | {min(values):.0f} | {max(values):.0f} |"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--binary", type=Path, help="a frozen spinedesk to start instead of the source tree")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    command = [str(args.binary)] if args.binary else [sys.executable, "-m", "app"]
    xvfb = start_xvfb()
    base = Path(tempfile.mkdtemp(prefix="spinedesk-cold-"))
    load = os.getloadavg()[0]
    try:
        first = one(base, command)
        runs = [one(base, command) for _ in range(args.runs)]
    finally:
        shutil.rmtree(base, ignore_errors=True)
        if xvfb is not None:
            xvfb.terminate()
    verdict = "open (ready to log in)" if all("ready" in r for r in runs) else "closed (not compliant)"
    end_key = "ready" if "ready" in runs[0] else "closed"
    text = "\n".join([
        f"Runs: {args.runs} fresh processes, {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {'frozen: ' + args.binary.name if args.binary else 'source tree'}, "
        f"Xvfb, real pcscd, real WES checker; load average at start {load:.1f}; gate: {verdict}.",
        "",
        "| measure | median ms | min ms | max ms |",
        "|---|---|---|---|",
        row("process start → login window shown (card status, start-up and WES progress)",
            [r["shown"] for r in runs]),
        row("process start → ready to log in (service up, training card in, WES gate answered)",
            [r[end_key] for r in runs]),
        f"| first run ever (seeds 2,000 patients, issues the training card): shown / ready | "
        f"{first['shown']:.0f} / {first.get('ready', first.get('closed', 0)):.0f} | | |",
    ])
    print(text)
    if args.markdown:
        args.markdown.write_text("# Desktop client: cold start\n\nCommand: `python benchmarks/ui_cold_start.py "
                                 f"--runs {args.runs}{' --binary ' + str(args.binary) if args.binary else ''} "
                                 "--markdown docs/benchmarks/ui_cold_start.md`\n\n" + text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
