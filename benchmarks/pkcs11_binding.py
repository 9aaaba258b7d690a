"""Which Python PKCS#11 binding: python-pkcs11 against PyKCS11, measured on the same tokens.

Import time (fresh interpreter, median of 10), then open session + login + find certificate and key + sign 64 bytes
(RSA PKCS#1 v1.5 over SHA-256) + logout + close, median and p95, through (a) SoftHSM2 and (b) OpenSC's module over the
virtual PIV card in pcscd's vpcd reader (a separate ``spinedesk card insert`` process, as in real use).

Usage: python benchmarks/pkcs11_binding.py [--runs 30]
Needs softhsm2, opensc-pkcs11, pcscd with vsmartcard-vpcd (scripts/setup.sh test installs them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.card_login import PIN, inserted_card, percentile  # noqa: E402
from tests.support.softhsm import USER_PIN, SoftHsm  # noqa: E402

OPENSC = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
MESSAGE = bytes(range(64))


def import_ms(module: str, runs: int = 10) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print((time.perf_counter() - t) * 1000)"
    return statistics.median(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                  check=True).stdout) for _ in range(runs))


def pykcs11_login(path: str, pin: str, runs: int) -> list[float]:
    import PyKCS11 as P

    lib = P.PyKCS11Lib().load(path)
    slot = next(s for s in lib.getSlotList(tokenPresent=True) if lib.getTokenInfo(s).flags & P.CKF_USER_PIN_INITIALIZED)
    times = []
    for _ in range(runs + 1):
        t = time.perf_counter()
        session = lib.openSession(slot, P.CKF_SERIAL_SESSION)
        session.login(pin)
        cert = session.findObjects([(P.CKA_CLASS, P.CKO_CERTIFICATE)])[0]
        ident, = session.getAttributeValue(cert, [P.CKA_ID])
        session.getAttributeValue(cert, [P.CKA_VALUE], allAsBinary=True)
        key = session.findObjects([(P.CKA_CLASS, P.CKO_PRIVATE_KEY), (P.CKA_ID, ident)])[0]
        session.sign(key, MESSAGE, P.Mechanism(P.CKM_SHA256_RSA_PKCS))
        session.logout()
        session.closeSession()
        times.append((time.perf_counter() - t) * 1000)
    return times[1:]


def python_pkcs11_login(path: str, pin: str, runs: int) -> list[float]:
    import pkcs11
    from pkcs11 import Attribute, Mechanism, ObjectClass

    lib = pkcs11.lib(path)
    token = next(s.get_token() for s in lib.get_slots(token_present=True)
                 if s.get_token().flags & pkcs11.TokenFlag.USER_PIN_INITIALIZED)
    times = []
    for _ in range(runs + 1):
        t = time.perf_counter()
        with token.open(user_pin=pin) as session:
            cert = next(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}))
            ident = cert[Attribute.ID]
            _ = cert[Attribute.VALUE]
            key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=ident)
            key.sign(MESSAGE, mechanism=Mechanism.SHA256_RSA_PKCS)
        times.append((time.perf_counter() - t) * 1000)
    return times[1:]


def in_child(func: str, path: str, pin: str, runs: int, env: dict[str, str]) -> list[float]:
    """Each binding in its own process: both load the same module, and neither should see the other's state."""
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from benchmarks.pkcs11_binding import {func}; "
            f"print(' '.join(map(str, {func}({path!r}, {pin!r}, {runs}))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    return [float(v) for v in out.split()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    imports = f"import PyKCS11: {import_ms('PyKCS11'):.1f} ms; python-pkcs11: {import_ms('pkcs11'):.1f} ms"
    rows = [imports,
            "", "| token | binding | median ms | p95 ms |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        hsm = SoftHsm(Path(tmp) / "softhsm")
        hsm.make_card("Bench", "rsa2048", distractor=False)
        targets = [("SoftHSM2", str(hsm.module), USER_PIN, hsm.env())]
        for name, path, pin, env in targets:
            for label, func in (("PyKCS11", "pykcs11_login"), ("python-pkcs11", "python_pkcs11_login")):
                v = in_child(func, path, pin, args.runs, env)
                rows.append(f"| {name} | {label} | {statistics.median(v):.2f} | {percentile(v, 95):.2f} |")
        with inserted_card("rsa2048", Path(tmp)):
            for label, func in (("PyKCS11", "pykcs11_login"), ("python-pkcs11", "python_pkcs11_login")):
                v = in_child(func, OPENSC, PIN, args.runs, dict(os.environ))
                rows.append(f"| OpenSC over vpcd | {label} | {statistics.median(v):.2f} | {percentile(v, 95):.2f} |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
