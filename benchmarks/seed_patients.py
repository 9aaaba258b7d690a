"""Synthetic patient generation speed: rows per second of CPU for ``app.service.pds.seed.generate_patients``.

Generation only (the store's JSON encoding and inserts are measured by the store's own benchmark). The target is
1,000,000 rows in well under two minutes of CPU on a 2-core machine.

Usage: python benchmarks/seed_patients.py [--rows 1000000] [--seed 0] [--chunk 10000]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.service.pds.seed import generate_patients  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=10_000)
    args = parser.parse_args(argv)

    cpu, wall = time.process_time(), time.perf_counter()
    rows = restricted = 0
    for chunk in generate_patients(args.rows, args.seed, chunk_size=args.chunk):
        rows += len(chunk)
        restricted += sum(1 for row in chunk if row.restricted)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall

    print(f"python {platform.python_version()} on {platform.machine()}, chunk {args.chunk}")
    print(f"rows:       {rows:,} ({restricted:,} restricted)")
    print(f"cpu time:   {cpu:.1f} s   wall time: {wall:.1f} s")
    print(f"throughput: {rows / cpu:,.0f} rows/s of CPU")
    print(f"1,000,000 rows would take {1_000_000 / (rows / cpu):.0f} s of CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
