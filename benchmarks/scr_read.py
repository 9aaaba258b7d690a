"""Audited SCR reads over HTTP: GET /Bundle (the whole Summary Care Record) throughput and latency, with wrk.

Every request is authenticated (bearer session looked up in the database), role-checked (B0370), then the
service reads the patient's PDS record (registered practice), the SCR head and latest document, and the
episode's grants (self-claimed relationship + permission to view), decides access, and audits the read in the
hash chain before the response leaves. Each response is a full SCR Bundle (a few KB of FHIR JSON). The service
runs as ``spinedesk service`` in its own process(es); wrk runs beside it. Process and wrk machinery are
``benchmarks/pds_read.py``'s.

Usage: python benchmarks/scr_read.py [--patients 100000] [--workers 1 2] [--connections 64] [--duration 15]
       [--database postgresql://…] [--markdown docs/benchmarks/scr_read.md]
Needs wrk (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pds_read import run_one  # noqa: E402 - the same service process + wrk machinery

from app.service.core.auth import token_hash  # noqa: E402
from app.service.pds.seed import generate_patients  # noqa: E402
from app.service.scr import seed as seed_scr  # noqa: E402
from app.service.scr.store import ScrGrant  # noqa: E402
from app.service.storage import open_store  # noqa: E402
from app.service.store import RoleProfile, open_seal  # noqa: E402

TOKEN = "benchmark-scr-token-" + "x" * 20
URID = "bench-scr-role"
SEED = 1
LUA = """
counter = 0
paths = {%s}
request = function()
  counter = counter + 1
  local path = paths[(counter %% #paths) + 1]
  local rid = string.format("%%08x-0000-4000-8000-%%012x", math.random(0, 2147483647), counter)
  return wrk.format("GET", path,
    {["Authorization"] = "Bearer %s", ["NHSD-Session-URID"] = "%s", ["X-Request-ID"] = rid})
end
"""


def prepare(url: str, patients: int, limit: int = 2000) -> tuple[list[str], int]:
    """Seed patients with their SCR content; give the benchmark user an episode (self-claimed relationship and
    permission to view) for up to ``limit`` patients with an SCR. Returns their GET /Bundle paths and the
    mean document size."""
    targets: list[tuple[str, str, int]] = []
    with open_store(url) as store:
        fresh = store.get_patient("9000000009") is None
        for chunk in generate_patients(patients, seed=SEED, chunk_size=50_000):
            if fresh:
                store.put_patients(chunk)
                seed_scr.seed_rows(store, chunk, SEED)
            for row in chunk:
                record = store.scr_record(row.nhs_number) if len(targets) < limit else None
                if record is not None and record.latest is not None and record.consent != "No":
                    targets.append((row.nhs_number, record.latest.id, len(str(record.latest.bundle))))
        if store.get_user("bench-scr") is None:
            store.add_user("bench-scr", "SCR Benchmark User")
            store.add_role_profile(RoleProfile(URID, "bench-scr", "RXX01", "Bench ED", "S8000:G8000:R8000",
                                               "Clinical", ("B0370",)))
        now = datetime.now(UTC)
        store.put_scr_grants([ScrGrant("bench-scr", URID, nhs, kind, True, "benchmark", "bench", now,
                                       now + timedelta(hours=6)) for nhs, _, _ in targets for kind in ("lr", "ptv")])
        store.create_session(token_hash(TOKEN), "bench-scr", now + timedelta(hours=2), role_profile_id=URID)
    paths = [f"/summary-care-record/FHIR/R4/Bundle?composition.identifier={scr_id}&composition.subject:Patient."
             f"identifier=https://fhir.nhs.uk/Id/nhs-number%7C{nhs}" for nhs, scr_id, _ in targets]
    return paths, sum(size for _, _, size in targets) // max(1, len(targets))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--database", help="default: a fresh SQLite file")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{tmp}/bench.db"
        paths, doc_size = prepare(url, args.patients)
        if not paths:
            raise SystemExit("no seeded patient has an SCR")
        lua = Path(tmp) / "scr.lua"
        lua.write_text(LUA % (",".join(f'"{p}"' for p in paths), TOKEN, URID))
        load = os.getloadavg()[0]  # the machine may be shared: other work skews the figures
        results = [run_one(url, w, args.connections, args.duration, lua, Path(tmp)) for w in args.workers]
        # the service's audit key is in its data folder (SPINEDESK_DATA_DIR)
        with open_store(url, audit_seal=open_seal(Path(tmp) / "audit.key", create=False)) as store:
            chain = store.verify_audit()
            reads = len(store.query_audit(action="scr.read", limit=10_000_000))
    kind = url.split(":", 1)[0]
    lines = [f"Audited GET /Bundle (full SCR; access rules checked: role, relationship, permission to view) — {kind}, "
             f"{args.patients:,} patients, {len(paths):,} distinct SCRs read (mean stored document "
             f"{doc_size:,} characters), wrk -t1 -c{args.connections} -d{args.duration}s on loopback; "
             f"{platform.node()}, {os.cpu_count()} cores, load average {load:.1f} before the runs; "
             "audit chain after the runs: "
             f"{'intact' if chain.ok else 'BROKEN'} ({chain.checked:,} records, {reads:,} scr.read)", "",
             "| workers | requests/s | p50 ms | p99 ms | non-2xx |", "|---|---|---|---|---|"]
    lines += [f"| {r['workers']} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['non2xx']} |"
              for r in results]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + f"\n\nCommand: `python benchmarks/scr_read.py --patients {args.patients} "
                                 f"--workers {' '.join(map(str, args.workers))}`\n", encoding="utf-8")
    return 0 if chain.ok and all(r["non2xx"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
