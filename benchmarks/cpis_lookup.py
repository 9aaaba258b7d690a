"""CP-IS lookups over HTTP: GET /cpis/FHIR/R4/CareTeam throughput and latency, measured with wrk on loopback.

Three request mixes, each against a fresh ``spinedesk service`` process (1 or more workers) over the same database:

* ``scheduled``: a B0170 role, ``IsUnscheduledAccessEvent: false``; half the patients have plans, half none
  (authenticated, role-checked, plans + local authority joined, audited in the hash chain);
* ``unscheduled``: a B0107 role looking up children WITH plans: every request also writes the access event and an
  Access to Service Notification to the outbox in the same transaction as its audit record, while the service's
  deliverer POSTs the notifications to the built-in local-authority inbox (the same service) — the worst case;
* ``history``: ``GET /AuditEvent`` (the last 25 accesses) of those children.

After the unscheduled mix the service keeps running until its outbox is drained: the figures include how many
notifications were created and how long delivery took to catch up. Reuses benchmarks/pds_read.py's runner pieces.

Usage: python benchmarks/cpis_lookup.py [--patients 100000] [--workers 1 2] [--connections 64] [--duration 15]
       [--database postgresql://…] [--markdown docs/benchmarks/cpis_lookup.md]
Needs wrk (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pds_read import _ms, free_port  # noqa: E402

from app.service.core.auth import token_hash  # noqa: E402
from app.service.cpis import seed as seed_cpis  # noqa: E402
from app.service.pds.seed import generate_patients  # noqa: E402
from app.service.storage import open_store  # noqa: E402
from app.service.store import RoleProfile, open_seal  # noqa: E402

TOKEN = "benchmark-token-cpis-" + "y" * 20
ROLES = {"scheduled": "bench-b0170", "unscheduled": "bench-b0107", "history": "bench-b0170"}


def token_for(urid: str) -> str:
    return f"{TOKEN}-{urid}"
IDENT = "patient%3Aidentifier=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number%7C"
LUA = """
counter = 0
nonce = "%s"
ids = {%s}
request = function()
  counter = counter + 1
  local id = ids[(counter %% #ids) + 1]
  local rid = string.format("%%08x-" .. nonce .. "-4000-8000-%%012x", math.random(0, 2147483647), counter)
  return wrk.format("GET", "/cpis/FHIR/R4/%s?%s" .. id,
    {["Authorization"] = "Bearer %s", ["NHSD-Session-URID"] = "%s", ["X-Request-ID"] = rid,
     ["IsUnscheduledAccessEvent"] = "%s"})
end
"""


def prepare(url: str, patients: int) -> tuple[list[str], list[str]]:
    """Seed patients and CP-IS plans (as ``spinedesk service seed`` does); returns (with plans, without)."""
    with_plans: list[str] = []
    without: list[str] = []
    with open_store(url) as store:
        fresh = store.get_patient("9000000009") is None
        for chunk in generate_patients(patients, seed=1, chunk_size=50_000):
            if fresh:
                store.put_patients(chunk)
                seed_cpis.seed_rows(store, chunk, 1)
            codes = [a.code for a in seed_cpis.local_authorities()]
            planned = {p.nhs_number for p in seed_cpis.plans_for(chunk, 1, date.today(), codes) if p.end_date is None}
            with_plans += sorted(planned)
            without += [r.nhs_number for r in chunk[:5000] if r.nhs_number not in planned and not r.deceased]
        if store.get_user("bench-cpis") is None:
            store.add_user("bench-cpis", "Benchmark User", card_uuids=["00000000-0000-4000-8000-0000000cafe5"])
            for urid, acts in (("bench-b0107", ("B0107",)), ("bench-b0170", ("B0170",))):
                store.add_role_profile(RoleProfile(urid, "bench-cpis", "RXX01", "Bench Hospital",
                                                   "S8000:G8000:R8000", "Clinical", acts))
        for urid in set(ROLES.values()):  # a session serves the one role it is bound to
            store.create_session(token_hash(token_for(urid)), "bench-cpis", datetime.now(UTC) + timedelta(hours=2),
                                 role_profile_id=urid)
    return with_plans, without[: len(with_plans)]


def outbox_state(url: str) -> tuple[int, int]:
    with open_store(url) as store:
        items = store.cpis_notifications()
    return len(items), sum(1 for i in items if i.delivered_at is not None)


def run(url: str, mix: str, workers: int, connections: int, duration: int, lua: Path, data_dir: Path) -> dict:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "app", "service", "--database", url, "--port", str(port),
                             "--workers", str(workers)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "SPINEDESK_DATA_DIR": str(data_dir)})
    drain = None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_status").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        time.sleep(0.5 * workers)
        before = outbox_state(url)
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(lua),
                              f"http://127.0.0.1:{port}"], capture_output=True, text=True).stdout or "wrk failed"
        ended = time.monotonic()
        made, delivered = outbox_state(url)
        made, at_end = made - before[0], delivered - before[1]
        if mix == "unscheduled":
            while delivered < made + before[0] and time.monotonic() - ended < 120:
                time.sleep(0.5)
                _, delivered = outbox_state(url)
            drain = time.monotonic() - ended
        delivered -= before[1]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    if "Requests/sec" not in out:
        raise SystemExit(f"wrk did not run against the service: {out}\n{proc.stderr.read() if proc.stderr else ''}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"mix": mix, "workers": workers, "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": _ms(re.search(r"\s50%\s+([\d.]+\w+)", out).group(1)),
            "p99": _ms(re.search(r"\s99%\s+([\d.]+\w+)", out).group(1)),
            "non2xx": int(errors.group(1)) if errors else 0, "made": made, "at_end": at_end,
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "delivered": delivered, "drain": drain}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--mixes", nargs="+", default=["scheduled", "unscheduled", "history"])
    parser.add_argument("--database", help="default: a fresh SQLite file")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{tmp}/bench.db"
        started = time.monotonic()
        planned, unplanned = prepare(url, args.patients)
        seeded = time.monotonic() - started
        results = []
        for run_no, (mix, workers) in enumerate((m, w) for m in args.mixes for w in args.workers):
            ids = planned if mix != "scheduled" else [x for pair in zip(planned, unplanned, strict=False)
                                                     for x in pair]
            lua = Path(tmp) / f"{mix}-{workers}.lua"
            # X-Request-IDs unique per run: a repeated id is the SAME access (no second notification)
            lua.write_text(LUA % (f"{run_no:04x}", ",".join(f'"{i}"' for i in ids),
                                  "AuditEvent" if mix == "history" else "CareTeam", IDENT, token_for(ROLES[mix]),
                                  ROLES[mix],
                                  "true" if mix == "unscheduled" else "false"))
            results.append(run(url, mix, workers, args.connections, args.duration, lua, Path(tmp)))
        # the service's audit key is in its data folder (SPINEDESK_DATA_DIR)
        with open_store(url, audit_seal=open_seal(Path(tmp) / "audit.key", create=False)) as store:
            chain = store.verify_audit()
    kind = url.split(":", 1)[0]
    lines = [f"CP-IS lookups — {kind}, {args.patients:,} patients ({len(planned):,} with an open plan; seeded with "
             f"plans in {seeded:.0f} s), wrk -t1 -c{args.connections} -d{args.duration}s on loopback; "
             f"{platform.node()}, {os.cpu_count()} cores, 1-minute load average at the end "
             f"{os.getloadavg()[0]:.1f}; audit chain after the runs: {'intact' if chain.ok else 'BROKEN'} "
             f"({chain.checked:,} records)", "",
             "| mix | workers | requests/s | p50 ms | p99 ms | non-2xx | requests | notifications made "
             "| delivered by wrk's end | drained after (s) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        drain = f"{r['drain']:.1f}" if r["drain"] is not None else "n/a"
        lines.append(f"| {r['mix']} | {r['workers']} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
                     f"{r['non2xx']} | {r['requests']:,} | {r['made']:,} | {r['at_end']:,} | {drain} |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + f"\n\nCommand: `python benchmarks/cpis_lookup.py --patients {args.patients} "
                                 f"--workers {' '.join(map(str, args.workers))}`\n", encoding="utf-8")
    ok = chain.ok and all(r["non2xx"] == 0 for r in results)
    # every unscheduled request (a fresh X-Request-ID, a child with one open plan) made exactly one notification
    # (wrk counts only completed requests; one cut off at the end may still have been recorded)
    exact = all(0 <= r["made"] - r["requests"] <= args.connections for r in results if r["mix"] == "unscheduled")
    return 0 if ok and exact and all(r["delivered"] >= r["made"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
