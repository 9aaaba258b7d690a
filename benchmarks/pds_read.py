"""Audited PDS reads over HTTP: GET /Patient/{id} throughput and latency, measured with wrk on loopback.

Every request is authenticated (bearer session looked up in the database), role-checked, read from the store
and audited in the hash chain (committed before the response leaves). The service runs as ``spinedesk service``
in its own process(es); wrk runs beside it on the same 2-core machine.

Usage: python benchmarks/pds_read.py [--patients 100000] [--workers 1 2] [--connections 32 64] [--duration 15]
       [--threads 2] [--database postgresql://…] [--markdown docs/benchmarks/pds_read.md]
Needs wrk (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.service.core.auth import token_hash  # noqa: E402
from app.service.pds.seed import generate_patients  # noqa: E402
from app.service.storage import open_store  # noqa: E402
from app.service.store import RoleProfile, open_seal  # noqa: E402

TOKEN = "benchmark-token-" + "x" * 24
URID = "bench-role"
LUA = """
counter = 0
ids = {%s}
request = function()
  counter = counter + 1
  local id = ids[(counter %% #ids) + 1]
  local rid = string.format("%%08x-0000-4000-8000-%%012x", math.random(0, 2147483647), counter)
  return wrk.format("GET", "/personal-demographics/FHIR/R4/Patient/" .. id,
    {["Authorization"] = "Bearer %s", ["NHSD-Session-URID"] = "%s", ["X-Request-ID"] = rid})
end
"""


def prepare(url: str, patients: int) -> list[str]:
    with open_store(url) as store:
        if store.get_patient("9000000009") is None:
            for chunk in generate_patients(patients, seed=1, chunk_size=50_000):
                store.put_patients(chunk)
        if store.get_user("bench") is None:
            store.add_user("bench", "Benchmark User", card_uuids=["00000000-0000-4000-8000-00000000beef"])
            store.add_role_profile(RoleProfile(URID, "bench", "A81001", "Bench", "S8000:G8000:R8000", "Clinical",
                                               ("B0264",)))
        store.create_session(token_hash(TOKEN), "bench", datetime.now(UTC) + timedelta(hours=2),
                             role_profile_id=URID)
        rows = store.search(__import__("app.service.store", fromlist=["SearchFilter"]).SearchFilter(
            birth_date_from=datetime(1950, 1, 1).date(), birth_date_to=datetime(1990, 1, 1).date(), limit=2000))
        return [r.nhs_number for r in rows]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_one(url: str, workers: int, connections: int, duration: int, lua: Path, data_dir: Path,
            threads: int | None = None) -> dict:
    port = free_port()
    extra = ["--threads", str(threads)] if threads is not None else []
    proc = subprocess.Popen([sys.executable, "-m", "app", "service", "--database", url, "--port", str(port),
                             "--workers", str(workers), *extra], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "SPINEDESK_DATA_DIR": str(data_dir)})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_status").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        time.sleep(0.5 * workers)  # let every worker finish starting
        cpu_before = _cpu_seconds(proc.pid)
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(lua),
                              f"http://127.0.0.1:{port}"], capture_output=True, text=True).stdout or "wrk failed"
        cpu = _cpu_seconds(proc.pid) - cpu_before
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    if "Requests/sec" not in out:
        raise SystemExit(f"wrk did not run against the service: {out}\n{proc.stderr.read() if proc.stderr else ''}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {p: _ms(re.search(rf"\s{p}%\s+([\d.]+\w+)", out).group(1)) for p in ("50", "99")}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    done = int(re.search(r"(\d+) requests in", out).group(1))
    return {"workers": workers, "connections": connections, "rps": rps, "p50": lat["50"], "p99": lat["99"],
            "non2xx": int(errors.group(1)) if errors else 0, "cpu_us": cpu / done * 1e6 if done else 0.0,
            "raw": out}


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of the service process and its worker processes so far (Linux; else 0). Unlike
    requests/s it hardly depends on what else the machine is running."""
    try:
        pids = [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
        ticks = sum(sum(map(int, Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[11:13]))
                    for p in pids)
    except (OSError, ValueError):
        return 0.0
    return ticks / os.sysconf("SC_CLK_TCK")


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--connections", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--database", help="default: a fresh SQLite file")
    parser.add_argument("--threads", type=int, help="the service's database threads per worker (default: its own)")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{tmp}/bench.db"
        ids = prepare(url, args.patients)
        lua = Path(tmp) / "read.lua"
        lua.write_text(LUA % (",".join(f'"{i}"' for i in ids), TOKEN, URID))
        results = [run_one(url, w, c, args.duration, lua, Path(tmp), args.threads)
                   for w in args.workers for c in args.connections]
        # the service's audit key is in its data folder (SPINEDESK_DATA_DIR)
        with open_store(url, audit_seal=open_seal(Path(tmp) / "audit.key", create=False)) as store:
            chain = store.verify_audit()
    kind = url.split(":", 1)[0]
    lines = [f"Audited GET /Patient/{{id}} — {kind}, {args.patients:,} patients, wrk -t1 "
             f"-d{args.duration}s on loopback; database threads per worker: "
             f"{args.threads if args.threads is not None else 'default'}; {platform.node()}, {os.cpu_count()} cores; "
             f"audit chain after the runs: {'intact' if chain.ok else 'BROKEN'} ({chain.checked:,} records)", "",
             "| workers | connections | requests/s | p50 ms | p99 ms | service CPU µs/request | non-2xx |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['workers']} | {r['connections']} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
              f"{r['cpu_us']:,.0f} | {r['non2xx']} |" for r in results]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + f"\n\nCommand: `python benchmarks/pds_read.py --patients {args.patients} "
                                 f"--workers {' '.join(map(str, args.workers))} "
                                 f"--connections {' '.join(map(str, args.connections))} "
                                 f"--duration {args.duration}"
                                 f"{f' --threads {args.threads}' if args.threads is not None else ''}`\n",
                                 encoding="utf-8")
    return 0 if chain.ok and all(r["non2xx"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
