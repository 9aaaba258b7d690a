"""Which ASGI framework + server meets "audited PDS reads >= 3,200 req/s, p99 <= 25 ms" on this 2-core machine?

Every candidate serves the same audited read (``framework_apps/workload.py``): bearer-token session lookup, URID
check, a patient read from a 100k-row SQLite file (WAL), and a SHA-256 hash-chained audit record that is COMMITted
before the response leaves. This script builds the database, then for each row of the matrix starts the server on
a free loopback port, warms it up, runs ``wrk`` (load generator on the same machine, 127.0.0.1 only) ``--repeats``
times, takes the median, stops the server and checks the audit chain (contiguous, every hash recomputes, one record
per answered request). Prints a markdown table.

Two load shapes:
* ``sat``  — closed loop, ``-c64``: the saturation throughput and the p99 at that throughput (queueing included:
  by Little's law 64 connections at 3,200 req/s already mean 20 ms average latency);
* ``3200`` — paced to 3,200 req/s (a LuaJIT schedule in the wrk script, at most 64 in flight): the p99 at the
  target rate itself.

The frameworks and servers are not project dependencies: install them into a throwaway venv and run this script
with that venv's Python (it needs only the standard library itself)::

    python3.11 -m venv /tmp/fwbench/.venv
    /tmp/fwbench/.venv/bin/pip install $(python3.11 benchmarks/framework_choice.py --requirements)
    apt-get install -y wrk
    /tmp/fwbench/.venv/bin/python benchmarks/framework_choice.py --markdown /tmp/fwbench/table.md

``--only TEXT`` runs the rows whose name contains TEXT (comma-separated alternatives); ``--list`` shows the rows;
``--inprocess`` only times each app called in-process as an ASGI callable (framework overhead, no server, no audit).
The full matrix (21 rows, 8 s runs, 3 repeats) takes about 15 minutes on a quiet machine; waiting for
other people's jobs (``--quiet``/``--patience``, ``--noisy``/``--retries``) can add a few.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from framework_apps.workload import (  # noqa: E402
    BENCH_TOKEN,
    BENCH_URID,
    PREFIX,
    create_database,
    reset_audit,
    verify_chain,
)

PINS = {
    "uvicorn": "0.54.0", "uvloop": "0.23.0", "httptools": "0.9.0", "granian": "2.8.7", "hypercorn": "0.18.0",
    "starlette": "1.10.0", "fastapi": "0.165.0", "pydantic": "2.14.3", "litestar": "2.25.0", "blacksheep": "2.6.4",
}
OPENAPI_PATH: dict[str, str] = {"raw": "/openapi.json", "starlette": "/openapi.json", "fastapi": "/openapi.json",
                "fastapi_lean": "/openapi.json",
                "litestar": "/schema/openapi.json", "blacksheep": "/openapi.json"}


@dataclass(frozen=True)
class Case:
    name: str
    framework: str  # raw | starlette | fastapi | litestar | blacksheep
    server: str  # uvicorn | granian | hypercorn
    audit: str  # none | naive | group-thread | group-loop
    sync: str = "FULL"  # NORMAL | FULL
    workers: int = 1
    wait_ms: float = 0.0
    batch_max: int = 256
    load: str = "sat"  # sat | 3200
    xlock: bool = False  # writers of all processes queue on a flock before BEGIN IMMEDIATE


def matrix() -> list[Case]:
    cases: list[Case] = []

    def add(framework: str, server: str, audit: str, sync: str = "FULL", workers: int = 1, wait_ms: float = 0.0,
            load: str = "sat", xlock: bool = False) -> None:
        a = audit if audit == "none" else f"{audit}/{sync}" + (f"/wait{wait_ms:g}ms" if wait_ms else "")
        a += "+flock" if xlock else ""
        name = f"{framework}+{server} {a} w{workers}" + ("" if load == "sat" else f" @{load}")
        cases.append(Case(name, framework, server, audit, sync, workers, wait_ms, load=load, xlock=xlock))

    # A. framework x server, the same audit (group commit on a writer thread, synchronous=FULL), one worker
    for framework in ("raw", "starlette", "fastapi"):
        for server in ("uvicorn", "granian"):
            add(framework, server, "group-thread")
    add("starlette", "hypercorn", "group-thread")
    add("litestar", "granian", "group-thread")
    add("blacksheep", "granian", "group-thread")
    # B. ceilings: the same read with no audit at all
    add("raw", "granian", "none")
    add("fastapi", "granian", "none")
    # C. audit strategies x workers on Starlette + granian
    add("starlette", "granian", "naive", "NORMAL")
    add("starlette", "granian", "naive", "FULL")
    add("starlette", "granian", "group-loop", "FULL")
    add("starlette", "granian", "group-thread", "FULL", wait_ms=2)
    add("starlette", "granian", "group-thread", "FULL", workers=2)
    add("starlette", "granian", "group-thread", "FULL", workers=2, xlock=True)
    add("fastapi", "granian", "group-thread", "FULL", workers=2, xlock=True)
    # D. p99 at the target rate itself
    add("starlette", "granian", "group-thread", "FULL", load="3200")
    add("starlette", "granian", "group-thread", "FULL", workers=2, load="3200", xlock=True)
    add("fastapi", "granian", "group-thread", "FULL", workers=2, load="3200", xlock=True)
    return cases


# --- machine facts -----------------------------------------------------------------------------------------------

def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _stat_ticks() -> tuple[int, int]:
    """(all ticks, busy ticks) of the whole machine from /proc/stat (iowait counts as idle)."""
    vals = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(vals), sum(vals) - vals[3] - vals[4]


def cpu_busy(seconds: float = 1.0) -> float:
    """Percent of the machine (all CPUs) busy over ``seconds`` — other engineers' jobs included."""
    t0, b0 = _stat_ticks()
    time.sleep(seconds)
    t1, b1 = _stat_ticks()
    return 100.0 * (b1 - b0) / max(1, t1 - t0)


def group_ticks(pgid: int) -> int:
    """utime + stime (clock ticks) of the live processes in process group ``pgid`` (a server and its workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                total += int(fields[11]) + int(fields[12])
    return total


def wait_quiet(threshold: float, patience: float) -> float:
    """Wait (at most ``patience`` s) until the machine is at most ``threshold`` % busy for a second; returns the
    last reading. Other engineers share this machine."""
    deadline = time.monotonic() + patience
    busy = cpu_busy(1.0)
    while busy > threshold and time.monotonic() < deadline:
        busy = cpu_busy(1.0)
    return busy


def versions() -> dict[str, str]:
    out = {}
    for name in PINS:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


# --- servers -----------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(case: Case, port: int) -> list[str]:
    bindir = Path(sys.executable).parent
    target = f"framework_apps.{case.framework}_app:app"
    if case.server == "uvicorn":
        return [str(bindir / "uvicorn"), target, "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop",
                "--http", "httptools", "--no-access-log", "--log-level", "warning", "--workers", str(case.workers)]
    if case.server == "granian":
        return [str(bindir / "granian"), "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(case.workers), "--loop", "uvloop", "--http", "1", "--no-ws",
                "--log-level", "warning", target]
    if case.server == "hypercorn":
        return [str(bindir / "hypercorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(case.workers),
                "--worker-class", "uvloop", "--log-level", "warning", target]
    raise ValueError(case.server)


def get(port: int, path: str, headers: dict[str, str] | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


class Server:
    def __init__(self, case: Case, db: Path, logdir: Path) -> None:
        self.case, self.port = case, free_port()
        self.stats_dir = Path(tempfile.mkdtemp(prefix="stats-", dir=logdir))
        env = dict(os.environ, PYTHONPATH=str(HERE), FWBENCH_DB=str(db), FWBENCH_AUDIT=case.audit,
                   FWBENCH_STATS=str(self.stats_dir), FWBENCH_XLOCK="flock" if case.xlock else "",
                   FWBENCH_SYNC=case.sync, FWBENCH_BATCH_MAX=str(case.batch_max),
                   FWBENCH_BATCH_WAIT_MS=str(case.wait_ms))
        self.log = (logdir / (re.sub(r"[^A-Za-z0-9]+", "_", case.name) + ".log")).open("w")
        self.proc = subprocess.Popen(server_command(case, self.port), cwd=HERE, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, key: str, timeout: float = 30) -> None:
        headers = {"Authorization": f"Bearer {BENCH_TOKEN}", "NHSD-Session-URID": BENCH_URID,
                   "X-Request-ID": "00000000-0000-4000-8000-000000000000"}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.case.name}: server exited ({self.proc.returncode}), see {self.log.name}")
            try:
                status = get(self.port, PREFIX + key, headers)
                if status == 200:
                    return
                raise RuntimeError(f"{self.case.name}: readiness request answered {status}")
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.case.name}: not ready after {timeout} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        # a worker that outlived its parent would hold the DB and the port: end the group for sure
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()

    def audit_stats(self) -> dict[str, float]:
        """Audit transactions summed over the workers that wrote their stats on the way out."""
        total = {"transactions": 0, "records": 0, "seconds": 0.0, "largest": 0}
        for f in self.stats_dir.glob("*.json"):
            st = json.loads(f.read_text())
            for k in ("transactions", "records", "seconds"):
                total[k] += st[k]
            total["largest"] = max(total["largest"], st["largest"])
        return total


# --- wrk ---------------------------------------------------------------------------------------------------------

LUA = r"""
-- Counter-based: each request a different patient and a different X-Request-ID (UUID shape).
local keys = {}
for line in io.lines("%(keys)s") do keys[#keys + 1] = line end
local n = #keys
local counter = 0
local run = %(run)d
local headers = {["Authorization"] = "Bearer %(token)s", ["NHSD-Session-URID"] = "%(urid)s"}
request = function()
  counter = counter + 1
  headers["X-Request-ID"] = string.format("%%08x-0000-4000-8000-%%012x", run, counter)
  return wrk.format("GET", "%(prefix)s" .. keys[(counter * 7919) %% n + 1], headers)
end
"""

PACED = r"""
-- Paced: one thread-wide schedule of slots every 1/rate s; a request waits for its slot (at most the
-- connections are in flight). Missed slots are not made up (no burst after a stall).
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } fwb_ts; int clock_gettime(int, fwb_ts *); ]]
local ts = ffi.new("fwb_ts")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local interval = 1000 / %(rate)d
local last = nil
delay = function()
  local t = now_ms()
  if last == nil or last + interval < t then last = t else last = last + interval end
  return math.floor(last - t + 0.5)
end
"""


def write_lua(path: Path, keys_file: Path, run: int, rate: int | None) -> None:
    text = LUA % {"keys": keys_file, "run": run, "token": BENCH_TOKEN, "urid": BENCH_URID, "prefix": PREFIX}
    if rate:
        text += PACED % {"rate": rate}
    path.write_text(text)


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(out: str) -> dict[str, float]:
    res: dict[str, float] = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError("wrk printed no Requests/sec:\n" + out)
    res["rps"] = float(m.group(1))
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        res[f"p{pct}"] = _ms(m.group(1)) if m else float("nan")
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["sockerr"] = sum(int(g) for g in m.groups()) if m else 0
    return res


def run_wrk(port: int, lua: Path, duration: float, connections: int, threads: int,
            server_pgid: int | None = None) -> dict[str, float]:
    """One wrk run; adds ``others``: % of the machine (all CPUs) used during the run by anything but wrk and the
    server's processes — the other engineers' share of this machine."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency", "--timeout", "5s",
           "-s", str(lua), f"http://127.0.0.1:{port}/"]
    hz = os.sysconf("SC_CLK_TCK")
    with tempfile.TemporaryFile("w+") as out:
        t0, b0 = _stat_ticks()
        s0 = group_ticks(server_pgid) if server_pgid else 0
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)
        guard = threading.Timer(duration + 30, proc.kill)  # wrk stops by itself; this is only a backstop
        guard.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # wait4: wrk's own CPU time comes with it
        finally:
            guard.cancel()
            proc.returncode = 0
        s1 = group_ticks(server_pgid) if server_pgid else 0
        t1, b1 = _stat_ticks()
        out.seek(0)
        text = out.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"wrk failed: {text.strip()[:200]}")
    res = parse_wrk(text)
    wrk_ticks = (usage.ru_utime + usage.ru_stime) * hz
    res["others"] = max(0.0, 100.0 * ((b1 - b0) - (s1 - s0) - wrk_ticks) / max(1, t1 - t0))
    # CPU per request, which other people's jobs disturb far less than req/s and latency do
    n = max(1, res["requests"])
    res["server_us"] = (s1 - s0) / hz * 1e6 / n
    res["wrk_us"] = wrk_ticks / hz * 1e6 / n
    return res


# --- one row -----------------------------------------------------------------------------------------------------

@dataclass
class Result:
    case: Case
    runs: list[dict[str, float]] = field(default_factory=list)
    chain: str = ""
    openapi: int = 0
    tx: dict[str, float] = field(default_factory=dict)
    error: str = ""

    def med(self, key: str) -> float:
        return statistics.median(r[key] for r in self.runs) if self.runs else float("nan")

    @property
    def spread(self) -> float:
        rps = [r["rps"] for r in self.runs]
        return (max(rps) - min(rps)) / statistics.median(rps) * 100 if len(rps) > 1 else 0.0

    @property
    def batching(self) -> str:
        """Mean records per audit transaction / mean ms inside one (BEGIN IMMEDIATE .. COMMIT, lock wait too)."""
        n = self.tx.get("transactions", 0)
        if not n:
            return "-"
        return f"{self.tx['records'] / n:.1f} / {self.tx['seconds'] / n * 1e3:.2f}"

    @property
    def cpu(self) -> str:
        """Server CPU µs per request (all its processes and threads) and the ceiling that implies for 2 CPUs shared
        with wrk: 2 s of CPU per second / (server + wrk CPU per request)."""
        if not self.runs or "server_us" not in self.runs[0]:
            return "-"
        server, wrk = self.med("server_us"), self.med("wrk_us")
        return f"{server:.0f} / {2e6 / (server + wrk):,.0f}"

    @property
    def others(self) -> float:
        """The most that other processes took of the machine during one of the kept runs (%)."""
        return max((r["others"] for r in self.runs), default=0.0)

    @property
    def meets(self) -> str:
        if self.error or not self.runs:
            return "error"
        if self.case.load == "sat":
            return "rps ok" if self.med("rps") >= 3200 else "no"
        return "yes" if self.med("rps") >= 3200 * 0.97 and self.med("p99") <= 25 else "no"


def run_case(case: Case, args: argparse.Namespace, db: Path, keys_file: Path, key0: str, work: Path) -> Result:
    res = Result(case)
    reset_audit(str(db))
    server = Server(case, db, work)
    answered = 1  # the readiness request
    try:
        server.wait_ready(key0)
        res.openapi = get(server.port, OPENAPI_PATH[case.framework])
        rate = 3200 if case.load == "3200" else None
        lua = work / "load.lua"
        write_lua(lua, keys_file, 0, rate)
        warm = run_wrk(server.port, lua, args.warmup, args.connections, args.threads, server.proc.pid)
        answered += warm["requests"]
        for i in range(args.repeats):
            write_lua(lua, keys_file, i + 1, rate)
            for attempt in range(args.retries + 1):
                wait_quiet(args.quiet, args.patience)
                r = run_wrk(server.port, lua, args.duration, args.connections, args.threads, server.proc.pid)
                answered += r["requests"]
                r["attempts"] = attempt + 1
                if r["others"] <= args.noisy:
                    break
            res.runs.append(r)
            if r["non2xx"] or r["sockerr"]:
                res.error = f"{int(r['non2xx'])} non-2xx, {int(r['sockerr'])} socket errors"
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        res.error = str(exc).splitlines()[0][:200]
    finally:
        server.stop()
        res.tx = server.audit_stats()
    if case.audit != "none":
        ok, records, msg = verify_chain(str(db))
        # wrk counts answered requests; up to one in-flight request per connection per run may be audited
        # without being counted (answered after wrk stopped reading)
        slack = args.connections * (sum(int(r["attempts"]) for r in res.runs) + 1)
        if ok and not (answered <= records <= answered + slack):
            ok, msg = False, f"{records} records for {answered} answered requests"
        res.chain = ("ok " if ok else "BROKEN ") + msg
        if not ok:
            res.error = res.error or "audit chain: " + msg
    else:
        res.chain = "-"
    return res


# --- in-process framework cost -------------------------------------------------------------------------------

def inprocess(frameworks: list[str], db: Path, keys: list[str], n: int = 5000, rounds: int = 5) -> str:
    """Per-request cost of each app called directly as an ASGI callable (no server, no sockets, no audit): the
    framework's own overhead on top of the same handler. Best of ``rounds`` (others share this machine)."""
    import asyncio
    import importlib

    os.environ.update(FWBENCH_DB=str(db), FWBENCH_AUDIT="none")

    def scope(i: int) -> dict:
        path = PREFIX + keys[(i * 7919) % len(keys)]
        return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {BENCH_TOKEN}".encode()),
                            (b"x-request-id", b"00000000-0000-4000-8000-000000000001"),
                            (b"nhsd-session-urid", BENCH_URID.encode())],
                "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {}}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    rows = [f"| framework | µs per request (best of {rounds} rounds of {n}) |", "|---|---|"]
    for fw in frameworks:
        app = importlib.import_module(f"framework_apps.{fw}_app").app
        sent: list[dict] = []

        async def send(m: dict, sent: list[dict] = sent) -> None:
            sent.append(m)

        async def run(count: int, app=app, sent: list[dict] = sent, fw: str = fw) -> None:
            for i in range(count):
                sent.clear()
                await app(scope(i), receive, send)
                if sent[0]["status"] != 200:
                    raise RuntimeError(f"{fw}: {sent[0]}")

        asyncio.run(run(300))
        best = float("inf")
        for _ in range(rounds):
            t = time.perf_counter()
            asyncio.run(run(n))
            best = min(best, (time.perf_counter() - t) / n * 1e6)
        rows.append(f"| {fw} | {best:.0f} |")
    return "\n".join(rows)


# --- report ------------------------------------------------------------------------------------------------------

def table(results: list[Result]) -> str:
    lines = ["| # | framework | server | audit | sync | wait | workers | load | req/s (median) | spread | "
             "p50 ms | p99 ms | >= 3,200/s & p99 <= 25 | others' CPU % (max) | "
             "server CPU µs/req / 2-CPU ceiling req/s | records/tx / ms per tx | "
             "OpenAPI | audit chain |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(results, 1):
        c = r.case
        if not r.runs:
            lines.append(f"| {i} | {c.framework} | {c.server} | {c.audit} | {c.sync} | {c.wait_ms:g} ms | "
                         f"{c.workers} | {c.load} | error | | | | | {r.others:.0f} | | | | {r.error} |")
            continue
        noisy = " (noisy)" if r.spread > 10 else ""
        p99s = "/".join(f"{x['p99']:.1f}" for x in r.runs)
        audit = (c.audit if c.audit != "none" else "none (ceiling)") + (" + flock" if c.xlock else "")
        lines.append(
            f"| {i} | {c.framework} | {c.server} | {audit} | "
            f"{c.sync if c.audit != 'none' else '-'} | {c.wait_ms:g} ms | {c.workers} | "
            f"{'c64 saturation' if c.load == 'sat' else 'paced 3,200/s'} | {r.med('rps'):,.0f} | "
            f"{r.spread:.0f} %{noisy} | {r.med('p50'):.2f} | {r.med('p99'):.1f} ({p99s}) | "
            f"{r.meets if not r.error else 'ERROR: ' + r.error} | {r.others:.0f} | {r.cpu} | {r.batching} | "
            f"{r.openapi} | {r.chain} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "fwbench" / "pds.sqlite")
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load before the runs")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--quiet", type=float, default=15.0,
                    help="before each run wait until the machine is at most this %% busy (others share it)")
    ap.add_argument("--patience", type=float, default=5.0, help="seconds to wait for --quiet at most")
    ap.add_argument("--noisy", type=float, default=10.0,
                    help="a run during which other processes used more than this %% of the machine is repeated")
    ap.add_argument("--retries", type=int, default=0, help="repeats of a noisy run at most")
    ap.add_argument("--only", default="", help="comma-separated substrings of row names")
    ap.add_argument("--list", action="store_true", help="list the rows and exit")
    ap.add_argument("--inprocess", action="store_true",
                    help="only measure each framework's per-request cost in-process (no server, no audit)")
    ap.add_argument("--requirements", action="store_true", help="print the pinned packages and exit")
    ap.add_argument("--markdown", type=Path, help="also write the table here")
    ap.add_argument("--json", type=Path, help="also write every run's numbers here")
    args = ap.parse_args()

    if args.requirements:
        print(" ".join(f"{k}=={v}" for k, v in PINS.items()))
        return 0
    cases = matrix()
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        cases = [c for c in cases if any(w in c.name for w in wanted)]
    if args.list:
        print("\n".join(c.name for c in cases))
        return 0
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install -y wrk")
    have = versions()
    off = {k: v for k, v in have.items() if v != PINS[k]}
    if off:
        print(f"warning: not the pinned versions: {off}", file=sys.stderr)

    args.db.parent.mkdir(parents=True, exist_ok=True)
    keys_file = args.db.with_suffix(".keys")
    fresh = not args.db.exists() or not keys_file.exists()
    if not fresh:
        with sqlite3.connect(args.db) as conn:
            fresh = conn.execute("SELECT count(*) FROM patient").fetchone()[0] != args.patients
    if fresh:
        t = time.perf_counter()
        keys = create_database(str(args.db), args.patients)
        keys_file.write_text("\n".join(keys) + "\n")
        print(f"created {args.db} ({args.patients} patients) in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    key0 = keys_file.read_text().split("\n", 1)[0]
    if args.inprocess:
        print(inprocess(["raw", "starlette", "fastapi_lean", "fastapi", "litestar", "blacksheep"], args.db,
                        keys_file.read_text().split()))
        return 0

    started = datetime.now(UTC)
    header = (f"{started:%Y-%m-%d %H:%M} UTC — {os.cpu_count()} CPUs ({cpu_model()}), {platform.platform()}, "
              f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
              f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s (+{args.warmup:g} s warm-up), "
              f"median of {args.repeats}\n\nversions: " + ", ".join(f"{k} {v}" for k, v in have.items()))
    print(header, file=sys.stderr)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="fwbench-") as tmp:
        work = Path(tmp)
        for n, case in enumerate(cases, 1):
            r = run_case(case, args, args.db, keys_file, key0, work)
            results.append(r)
            if r.runs:
                print(f"[{n}/{len(cases)}] {case.name}: {r.med('rps'):,.0f} req/s, p99 {r.med('p99'):.1f} ms, "
                      f"spread {r.spread:.0f} %, others {r.others:.0f} %, cpu {r.cpu}, tx {r.batching}, "
                      f"chain {r.chain} {r.error}",
                      file=sys.stderr, flush=True)
            else:
                print(f"[{n}/{len(cases)}] {case.name}: ERROR {r.error}", file=sys.stderr, flush=True)
                log = work / (re.sub(r"[^A-Za-z0-9]+", "_", case.name) + ".log")
                if log.exists():
                    print(log.read_text()[-2000:], file=sys.stderr)
    elapsed = (datetime.now(UTC) - started).total_seconds()
    out = f"{header}\n\n{table(results)}\n\nCommand: `{' '.join([Path(sys.executable).name, *sys.argv])}` " \
          f"({elapsed / 60:.1f} min)\n"
    print(out)
    if args.markdown:
        args.markdown.write_text(out)
    if args.json:
        args.json.write_text(json.dumps([{**asdict(r.case), "runs": r.runs,  "chain": r.chain,
                                          "error": r.error, "audit_tx": r.tx} for r in results], indent=1))
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
