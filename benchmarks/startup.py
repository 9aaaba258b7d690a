"""Frozen Spine Desk start-up time: ``spinedesk --version`` and ``spinedesk --self-test``, cold and warm.

    .venv/bin/python benchmarks/startup.py [--binary PATH] [--runs N] [--cold-runs N] [--markdown FILE]

``--binary`` defaults to the PyInstaller folder build (``build/installer/dist/spinedesk/spinedesk``; build it with
``installer/build_deb.sh``) or the installed ``/usr/bin/spinedesk``. *Cold* runs first drop the kernel's page cache
(``/proc/sys/vm/drop_caches``, root only; without it only warm figures are reported): every file of the build is
then read from disk again, as at the first start after boot. Wall time is measured around the whole process.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {"--version": ["--version"], "--self-test": ["--self-test"]}


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def shown(binary: str) -> str:
    """The binary's path as written into the figures: relative to the checkout, never one machine's absolute path."""
    path = Path(binary).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else binary


def timed(binary: str, args: list[str], cold: bool) -> float:
    if cold and not drop_caches():
        raise PermissionError("cannot drop the page cache (needs root)")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    started = time.perf_counter()
    result = subprocess.run([binary, *args], capture_output=True, text=True, env=env, timeout=300)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{binary} {' '.join(args)} exited {result.returncode}: {result.stdout}{result.stderr}")
    return elapsed


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered) * 1000:.0f} ms | {p95 * 1000:.0f} ms | {ordered[-1] * 1000:.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = ROOT / "build" / "installer" / "dist" / "spinedesk" / "spinedesk"
    parser.add_argument("--binary", default=str(default if default.exists() else "/usr/bin/spinedesk"))
    parser.add_argument("--runs", type=int, default=20, help="warm runs per command")
    parser.add_argument("--cold-runs", type=int, default=5, help="cold runs per command (0: none)")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()

    rows = []
    can_drop = args.cold_runs > 0 and drop_caches()
    for name, argv in COMMANDS.items():
        timed(args.binary, argv, cold=False)  # one warm-up so "warm" means warm
        warm = [timed(args.binary, argv, cold=False) for _ in range(args.runs)]
        rows.append((name, "warm", len(warm), summary(warm)))
        if can_drop:
            cold = [timed(args.binary, argv, cold=True) for _ in range(args.cold_runs)]
            rows.append((name, "cold (page cache dropped)", len(cold), summary(cold)))
    load = os.getloadavg()[0]
    lines = [
        "# Frozen start-up (PyInstaller one-folder build)",
        "",
        f"Binary `{shown(args.binary)}`; {platform.platform()}, {os.cpu_count()} cores, load average {load:.1f} at the "
        f"start. Command: `.venv/bin/python benchmarks/startup.py --runs {args.runs} --cold-runs {args.cold_runs}`.",
        "",
        "| command | cache | runs | median | p95 | max |",
        "|---|---|---|---|---|---|",
        *[f"| `spinedesk {name}` | {cache} | {n} | {stats} |" for name, cache, n, stats in rows],
        "",
        "Target: frozen cold start ≤ 1.0 s. `--self-test` does much more than start: it starts Qt offscreen and",
        "draws a widget, loads pyscard and asks pcscd for readers, builds the service on a fresh in-memory database",
        "with a new training PKI (key generation) and calls it, and loads the WES specification.",
    ]
    if not can_drop:
        lines.append("\nNo cold figures: the page cache could not be dropped (not root).")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
