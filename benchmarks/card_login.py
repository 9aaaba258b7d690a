"""Card login cost through the real pcscd: SELECT + read certificate + VERIFY PIN + GENERAL AUTHENTICATE.

Each training card (RSA-2048 and P-256) is served by a separate ``spinedesk card insert`` process, as in
real use, and the client side runs here through pyscard. Two figures per algorithm:

* one connection — the four steps on an open connection (what a login costs once the card is connected);
* with connect — SCardConnect + the four steps + SCardDisconnect.

Then one login through each card back-end, as the client does it over the login-card port (open the token, read
its certificate, verify the PIN, sign a 64-byte message, log out, close), RSA-2048:

* PKCS#11, OpenSC's opensc-pkcs11.so over the same virtual card through pcscd + vpcd;
* PKCS#11, SoftHSM2 (no reader: the module's own cost);
* direct PIV over pcscd (connect, select, read certificate, VERIFY, GENERAL AUTHENTICATE, reset, disconnect).

Usage: python benchmarks/card_login.py [--runs 50] [--markdown docs/benchmarks/card_login.md]
Needs pcscd with the vsmartcard virtual reader (scripts/setup.sh test installs and starts both).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.card.backend import LoginToken  # noqa: E402
from app.card.login_card import PivLoginCard  # noqa: E402
from app.card.pcsc import PcscSystem  # noqa: E402
from app.card.piv import PivSession, algorithm_for  # noqa: E402
from app.card.virtual import issue_card  # noqa: E402
from app.pki import TrainingCA  # noqa: E402

PIN = "24681357"
READER = "Virtual PCD 00 00"
OPENSC = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
MESSAGE = bytes(range(64))


def login(session: PivSession) -> None:
    session.select()
    cert = session.read_certificate()
    session.verify_pin(PIN)
    session.sign(os.urandom(32), algorithm_for(cert.public_key()))


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def wait_present(system: PcscSystem, present: bool, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if {s.name: s.card_present for s in system.reader_states()}.get(READER) is present:
            return
        time.sleep(0.02)
    raise SystemExit(f"card {'never appeared in' if present else 'never left'} {READER}")


@contextlib.contextmanager
def inserted_card(alg: str, workdir: Path, ca: TrainingCA | None = None) -> Iterator[None]:
    """A training card served to pcscd's virtual reader by a separate ``spinedesk card insert`` process."""
    ca = ca or TrainingCA.load_or_create(workdir / "pki")
    card, _ = issue_card(ca, name=f"Benchmark {alg}", algorithm=alg, pin=PIN)
    path = workdir / f"{alg}.json"
    card.save(path)
    proc = subprocess.Popen([sys.executable, "-m", "app", "card", "insert", str(path)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "SPINEDESK_DATA_DIR": str(workdir)})
    system = PcscSystem()
    try:
        wait_present(system, True)
        yield
    finally:
        proc.terminate()
        proc.wait(10)
        wait_present(system, False)


def measure(alg: str, runs: int, workdir: Path, ca: TrainingCA) -> dict[str, list[float]]:
    system = PcscSystem()
    with inserted_card(alg, workdir, ca):
        one, connected = [], []
        with system.connect(READER) as conn:
            session = PivSession(conn)
            login(session)  # warm-up
            for _ in range(runs):
                t = time.perf_counter()
                login(session)
                one.append((time.perf_counter() - t) * 1000)
        for _ in range(runs):
            t = time.perf_counter()
            with system.connect(READER) as conn:
                login(PivSession(conn))
            connected.append((time.perf_counter() - t) * 1000)
        return {"one connection": one, "with connect": connected}


def backend_login(open_token: Callable[[], LoginToken], pin: str) -> None:
    token = open_token()
    try:
        token.certificate_der()
        token.verify_pin(pin)
        token.sign(MESSAGE)
        token.forget_pin()
    finally:
        token.close()


def timed(func: Callable[[], None], runs: int) -> list[float]:
    """``runs`` timings after the first; the first (module load, OpenSC reading the card's objects) comes first."""
    t = time.perf_counter()
    func()
    values = [(time.perf_counter() - t) * 1000]
    for _ in range(runs):
        t = time.perf_counter()
        func()
        values.append((time.perf_counter() - t) * 1000)
    return values


def open_piv() -> LoginToken:
    conn = PcscSystem().connect(READER)
    try:
        return PivLoginCard(PivSession(conn), reader=READER, atr=conn.atr, close=lambda: conn.close(reset=True))
    except BaseException:
        conn.close()
        raise


def measure_backends(runs: int, workdir: Path, ca: TrainingCA) -> list[tuple[str, list[float], float]]:
    from app.card.pkcs11 import Pkcs11Backend
    from tests.support.softhsm import USER_PIN, SoftHsm

    rows = []
    with inserted_card("rsa2048", workdir, ca):
        opensc = Pkcs11Backend(OPENSC)
        rows.append(("PKCS#11 OpenSC over vpcd", timed(lambda: backend_login(lambda: opensc.open(READER), PIN), runs),
                     50.0))
        rows.append(("direct PIV over pcscd", timed(lambda: backend_login(open_piv, PIN), runs), 20.0))
    hsm = SoftHsm(workdir / "softhsm")
    hsm.make_card("Benchmark", "rsa2048")
    os.environ["SOFTHSM2_CONF"] = str(hsm.conf)  # read once, when the module is first loaded (just below)
    softhsm = Pkcs11Backend(hsm.module)
    rows.append(("PKCS#11 SoftHSM2", timed(lambda: backend_login(lambda: softhsm.open(None), USER_PIN), runs), 50.0))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--markdown", type=Path, help="also write the results table to this file")
    parser.add_argument("--backends-only", action="store_true", help="only the login through each back-end")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ca = TrainingCA.load_or_create(Path(tmp) / "pki")
        if not args.backends_only:
            for alg, target in (("rsa2048", 20.0), ("p256", 5.0)):
                for label, values in measure(alg, args.runs, Path(tmp), ca).items():
                    rows.append((alg, label, statistics.median(values), percentile(values, 95), target))
        backends = measure_backends(args.runs, Path(tmp), ca)
    lines = [f"Card login through pcscd, {args.runs} runs each — {platform.node()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}", ""]
    if rows:
        lines += ["| algorithm | measured | median ms | p95 ms | target (median) |", "|---|---|---|---|---|"]
        lines += [f"| {a} | {label} | {med:.2f} | {p95:.2f} | ≤ {t:.0f} ms |" for a, label, med, p95, t in rows]
        lines.append("")
    lines += ["Login through each back-end (open token, read certificate, verify PIN, sign 64 bytes, log out, close), "
              "RSA-2048:", "",
              "| back-end | median ms | p95 ms | first login ms | target (median) |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {statistics.median(v[1:]):.2f} | {percentile(v[1:], 95):.2f} | {v[0]:.1f} | ≤ {t:.0f} ms |"
              for name, v, t in backends]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + "\n\nCommand: `python benchmarks/card_login.py --runs "
                                 f"{args.runs}`\n\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
