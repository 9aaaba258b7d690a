"""How long a full WES check takes on this machine with a reachable service (target: ≤ 1 s).

A real Spine Desk service runs on a loopback port (``python -m app service``, SQLite, training), a training card
sits in pcscd's virtual reader (served by ``spinedesk card insert``, as in real use), and every check runs with
the real Linux probes. Three figures:

* in-process — ``wes.run_checks()`` as the desktop client calls it (the first run separately: it imports the
  probes and warms pcscd's connection);
* HTTPS — the same against the service serving HTTPS, so the TLS check makes its four handshakes;
* command line — ``spinedesk wes check --format json`` end to end, Python start-up and imports included.

Usage: python benchmarks/wes_check.py [--runs 20] [--markdown docs/benchmarks/wes_check.md]
                                      [--png docs/screenshots/wes-report.png]
Needs pcscd with the vsmartcard virtual reader (scripts/setup.sh test installs and starts both).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from app.card.pcsc import PcscSystem  # noqa: E402
from app.card.virtual import issue_card  # noqa: E402
from app.config import Mode, Paths, Settings  # noqa: E402
from app.pki import TrainingCA  # noqa: E402
from wes import run_checks  # noqa: E402

READER = "Virtual PCD 00 00"


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(data: Path, tls: tuple[Path, Path] | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    args = [sys.executable, "-m", "app", "service", "--port", str(port), "--database", f"sqlite:///{data}/svc.db"]
    if tls:
        args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "SPINEDESK_DATA_DIR": str(data)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            if not tls:
                urllib.request.urlopen(f"{url}/_status", timeout=2).read()  # loopback only
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit("the service did not start")


def tls_files(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (folder / "tls.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return folder / "tls.pem", folder / "tls.key"


def insert_card(data: Path) -> subprocess.Popen:
    ca = TrainingCA.load_or_create(data / "training-pki")
    card, _ = issue_card(ca, name="Dr Benchmark", algorithm="p256", pin="24681357")
    card.save(data / "card.json")
    proc = subprocess.Popen([sys.executable, "-m", "app", "card", "insert", str(data / "card.json")], cwd=ROOT,
                            env={**os.environ, "SPINEDESK_DATA_DIR": str(data)}, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if {s.name: s.card_present for s in PcscSystem().reader_states()}.get(READER):
            return proc
        time.sleep(0.05)
    proc.terminate()
    raise SystemExit(f"the training card never appeared in {READER} (is another card in it?)")


def _cpu() -> float:
    """CPU seconds used so far by this process (all threads) and its finished children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn, runs: int) -> tuple[list[float], list[float]]:  # type: ignore[no-untyped-def]
    """Wall-clock and CPU milliseconds per run."""
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), _cpu()
        fn()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((_cpu() - start_cpu) * 1000)
    return wall, cpu


def row(name: str, values: tuple[list[float], list[float]]) -> str:
    wall, cpu = values
    return (f"| {name} | {len(wall)} | {statistics.median(wall):.0f} | {percentile(wall, 95):.0f} | "
            f"{max(wall):.0f} | {statistics.median(cpu):.0f} | ≤ 1000 |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--markdown", type=Path, help="write the results table here")
    parser.add_argument("--png", type=Path, help="render the first page of the HTML report here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wes-bench-") as tmp:
        data = Path(tmp)
        card = insert_card(data)
        (data / "http").mkdir()
        (data / "https").mkdir()
        http_service, http_url = start_service(data / "http", None)
        cert, key = tls_files(data / "https")
        https_service, https_url = start_service(data / "https", (cert, key))
        try:
            training = Settings(paths=Paths(data / "config", data, data / "log", data / "site.toml"))
            production = Settings(paths=training.paths, mode=Mode.PRODUCTION, service_url=https_url, service_ca=cert,
                                  trust_anchors=(data / "training-pki" / "root.pem",))
            start, start_cpu = time.perf_counter(), _cpu()
            first = run_checks(mode="training", settings=training, service_url=http_url)
            cold, cold_cpu = (time.perf_counter() - start) * 1000, (_cpu() - start_cpu) * 1000
            warm = timed(lambda: run_checks(mode="training", settings=training, service_url=http_url), args.runs)
            secure = timed(lambda: run_checks(mode="production", settings=production), args.runs)
            env = {**os.environ, "SPINEDESK_DATA_DIR": str(data)}
            cli = timed(lambda: subprocess.run([sys.executable, "-m", "app", "wes", "check", "--format", "json",
                                                "--service-url", http_url], cwd=ROOT, env=env, check=False,
                                               capture_output=True), max(5, args.runs // 4))
            report = run_checks(mode="training", settings=training, service_url=http_url)
            tls = run_checks(mode="production", settings=production, checks=["tls"]).result("tls")
        finally:
            for proc in (card, http_service, https_service):
                proc.terminate()
                proc.wait(10)
        if args.png:
            from app.ui.pdf import html_to_png
            from wes.report.html import render_html

            args.png.parent.mkdir(parents=True, exist_ok=True)
            html_to_png(render_html(report), args.png)
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    slowest = sorted(report.results, key=lambda r: -r.duration_ms)[:3]
    lines = [
        f"Full WES check ({len(report.results)} checks) with a reachable service — {platform.node()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {dt.date.today().isoformat()}",
        "",
        f"Load average during the run: {load} (other work on the machine slows wall-clock figures; the CPU column "
        "is this work's own CPU time, all threads and child processes).",
        "",
        "| run | runs | median ms | p95 ms | max ms | CPU ms (median) | target (wall) |",
        "|---|---|---|---|---|---|---|",
        f"| in-process, first run (cold) | 1 | {cold:.0f} | {cold:.0f} | {cold:.0f} | {cold_cpu:.0f} | ≤ 1000 |",
        row("in-process, training, HTTP service, card inserted", warm),
        row("in-process, production, HTTPS service (TLS check: 4 handshakes)", secure),
        row("`spinedesk wes check --format json` (process start to exit)", cli),
        "",
        f"Verdict of the measured run: {'compliant' if first.compliant else 'not compliant'} "
        f"({', '.join(f'{k} {v}' for k, v in report.counts().items() if v)}); TLS check on the HTTPS service: "
        f"{tls.status.value}. Slowest checks in the last run: "
        + ", ".join(f"{r.id} {r.duration_ms:.0f} ms" for r in slowest) + ".",
        "",
        f"Command: `python benchmarks/wes_check.py --runs {args.runs}"
        + (f" --markdown {args.markdown}" if args.markdown else "") + (f" --png {args.png}" if args.png else "") + "`",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
