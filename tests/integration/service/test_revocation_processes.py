"""Two ``python -m app service`` processes over one SQLite file, revocation while they run: neither shares memory
with the other, so each must re-read the training CA's CRL itself, and a session ended by one is ended for both.
SIGHUP asks a process to re-read its CRLs; it must never stop the service (its default action would).
Real clock throughout (the CA's and the services')."""

from __future__ import annotations

import base64
import signal
import uuid

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from app.pki import TrainingCA
from app.protocol import PDS_BASE, login_message
from app.service.storage import open_store
from tests.integration.service.test_scale_out import ServiceProcess
from tests.support.service.live import seed

PATIENT = f"{PDS_BASE}/Patient/9000000009"


def login(base: str, key: ec.EllipticCurvePrivateKey, der: bytes, urid: str = "clin-1") -> httpx.Response:
    cert = base64.b64encode(der).decode()
    challenge = httpx.post(f"{base}/auth/challenge", json={"certificate": cert})
    if challenge.status_code != 200:
        return challenge
    nonce, audience = challenge.json()["nonce"], challenge.json()["audience"]
    signature = base64.b64encode(key.sign(login_message(nonce, audience), ec.ECDSA(hashes.SHA256()))).decode()
    return httpx.post(f"{base}/auth/session", json={"nonce": nonce, "signature": signature, "certificate": cert,
                                                    "urid": urid})


def read(base: str, token: str, urid: str = "clin-1") -> httpx.Response:
    return httpx.get(f"{base}{PATIENT}", headers={"Authorization": f"Bearer {token}", "NHSD-Session-URID": urid,
                                                  "X-Request-ID": str(uuid.uuid4())})


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_each_process_sees_a_revocation_without_restart_and_sighup_reloads_without_stopping(tmp_path):
    data = tmp_path / "data"
    ca = TrainingCA.load_or_create(data / "training-pki")  # what both processes trust (training mode)
    database = f"sqlite:///{tmp_path / 'service.db'}"
    with open_store(database) as store:
        keys, certs = seed(store, ca, patients=5)
    procs = [ServiceProcess(database, data, tmp_path / f"service-{name}.log").start() for name in "ab"]
    try:
        for p in procs:
            p.wait_ready()
        a, b = (p.url for p in procs)
        session = login(a, keys["alice"], certs["alice"])
        assert session.status_code == 201, session.text
        token = session.json()["token"]
        assert [read(base, token).status_code for base in (a, b)] == [200, 200]

        ca.revoke(x509.load_der_x509_certificate(certs["alice"]).serial_number)  # crl.pem republished

        for base in (b, a):  # b first: b never served alice, yet ends her session; a then finds it gone too
            answer = read(base, token)
            assert answer.status_code == 401, answer.text
        refused = login(b, keys["alice"], certs["alice"])
        assert refused.status_code == 403 and "revoked" not in refused.text  # the reason goes to b's log only

        procs[0].proc.send_signal(signal.SIGHUP)  # a reload, not a stop
        assert login(a, keys["bob"], certs["bob"], "po-1").status_code == 201  # served after the signal arrived
        assert login(a, keys["alice"], certs["alice"]).status_code == 403
        assert procs[0].proc.poll() is None, procs[0].output()
    finally:
        for p in procs:
            p.stop()
