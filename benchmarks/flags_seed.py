"""What Reasonable Adjustment Flags add to seeding: ``seed.flags.seed_rows`` per 50,000-patient chunk.

``spinedesk service seed`` calls it after each chunk of patients; seeding 1 M patients must stay under two minutes
in all, so this times only the flags' share (choosing patients, building the FHIR resources, the bulk insert of
flags and their first versions), not generating or storing the patients themselves. Then it times the store's
per-patient flag lookup (what ``GET /Flag?patient=`` costs below HTTP and audit) over the flagged patients.

Usage: python benchmarks/flags_seed.py [--patients 1000000] [--database sqlite:///… | postgresql://…]
       [--markdown docs/benchmarks/flags_seed.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.service.flags import seed as seed_flags  # noqa: E402
from app.service.pds.seed import generate_patients  # noqa: E402
from app.service.storage import open_store  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--database", default=None, help="default: a new SQLite file in a temp dir")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    url = args.database or f"sqlite:///{tmp.name}/flags.db"
    kind = url.split(":", 1)[0]
    flagged: list[str] = []
    spent, cpu, written, chunks = 0.0, 0.0, 0, 0
    with open_store(url) as store:
        for chunk in generate_patients(args.patients, seed=args.seed, chunk_size=50_000):
            began, began_cpu = time.perf_counter(), time.process_time()
            written += seed_flags.seed_rows(store, chunk, args.seed)
            spent += time.perf_counter() - began
            cpu += time.process_time() - began_cpu
            chunks += 1
            flagged.extend(p.nhs_number for p in chunk if seed_flags.chosen(p, args.seed))
        lookups = flagged[:: max(1, len(flagged) // 2000)]
        times = []
        for nhs in lookups:
            began = time.perf_counter()
            assert store.flags_for_patient(nhs)
            times.append((time.perf_counter() - began) * 1000)
    times.sort()
    p50, p99 = statistics.median(times), times[int(len(times) * 0.99) - 1]
    per_million = spent * 1_000_000 / max(args.patients, 1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    line = (f"Flags seeding — {kind}, {args.patients:,} patients in {chunks} chunks, {written:,} flags "
            f"({written / max(args.patients, 1):.1%}); {platform.node() or 'host'}, {os.cpu_count()} cores, load "
            f"average {load:.1f} at the end (wall time includes waiting for the disk and other processes)")
    table = ("| measure | value |\n|---|---|\n"
             f"| seed_rows, all chunks (wall / this process's CPU) | {spent:.1f} s / {cpu:.1f} s |\n"
             f"| per 1 M patients (wall / CPU) | {per_million:.1f} s / "
             f"{cpu * 1_000_000 / max(args.patients, 1):.1f} s |\n"
             f"| flags written per second | {written / spent:,.0f} |\n"
             f"| store lookup by patient (p50 / p99, {len(times):,} lookups) | {p50:.2f} ms / {p99:.2f} ms |\n")
    command = f"Command: `python benchmarks/flags_seed.py --patients {args.patients}" + \
        (" --database postgresql://…`" if kind.startswith("postgres") else "`")
    report = f"{line}\n\n{table}\n{command}\n"
    print(report)
    if args.markdown:
        existing = args.markdown.read_text(encoding="utf-8") if args.markdown.exists() else ""
        args.markdown.write_text(existing + ("\n" if existing else "") + report, encoding="utf-8")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
