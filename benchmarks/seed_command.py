"""The whole ``spinedesk service seed --patients N`` command, timed end to end as a user runs it.

Generation, encoding, inserts, index builds and the clinical content (SCR, CP-IS, flags) for the seeded patients,
into a fresh SQLite file and, with ``--postgres URL``, into an empty PostgreSQL database (each run gets its own
schema, dropped afterwards). The target is 1,000,000 patients in under 2 minutes on the 2-core machine.

Usage: python benchmarks/seed_command.py [--patients 1000000] [--postgres postgresql://…] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(database: str, patients: int, data_dir: Path) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "app", "service", "--database", database, "seed", "--patients",
                           str(patients)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "SPINEDESK_DATA_DIR": str(data_dir)})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"seed failed ({done.returncode}): {done.stderr[-2000:]}")
    return {"wall": wall, "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "rss_mib": after.ru_maxrss / 1024}


def with_schema(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--postgres", help="an empty PostgreSQL database to seed too (a schema is created in it)")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("SQLite", run(f"sqlite:///{tmp}/seed.db", args.patients, Path(tmp))))
    if args.postgres:
        import psycopg

        schema = f"seed_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        try:
            with tempfile.TemporaryDirectory() as tmp:
                rows.append(("PostgreSQL", run(with_schema(args.postgres, schema), args.patients, Path(tmp))))
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")
    lines = [f"`spinedesk service seed --patients {args.patients:,}` end to end — {platform.node()}, "
             f"{os.cpu_count()} cores, Python {platform.python_version()}", "",
             "| store | wall s | CPU s | peak RSS MiB |", "|---|---|---|---|"]
    lines += [f"| {name} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['rss_mib']:.0f} |" for name, r in rows]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + f"\n\nCommand: `python benchmarks/seed_command.py --patients {args.patients}"
                                 f"{' --postgres URL' if args.postgres else ''}`\n", encoding="utf-8")
    return 0 if all(r["wall"] < 120 for _, r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
