"""A production ``python -m app service`` process trusting the NHS-shaped test PKI through a real site configuration
(`[trust]` anchors, intermediates, CRL files and `identity`), its user registered with ``service users add --uuid``:
a card logs in by the UUID in its certificate's subject, a renewed card too, a card without the UUID is told why,
and revoking a certificate (its CRL file rewritten) ends its session and refuses it at once. Loopback behind the
site's TLS proxy (plain HTTP on 127.0.0.1); real clock throughout (the PKI is made for now)."""

from __future__ import annotations

import base64
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from app.protocol import PDS_BASE, login_message
from app.service.storage import open_store
from tests.integration.service.test_scale_out import ServiceProcess
from tests.support.nhs_pki import CardCredential, NhsTestPki
from tests.support.service.fixtures import ROOT, child_env

SITE_URL = "https://spine.example.test"
ADA = "555000111222"


def site_config(pki: NhsTestPki, path: Path) -> Path:
    path.write_text(f"""
[service]
url = "{SITE_URL}"
tls_proxy = "{SITE_URL}"
[trust]
anchors = ["{pki.root_path}"]
intermediates = ["{pki.issuing_path}"]
crls = ["{pki.crl_paths[0]}", "{pki.crl_paths[1]}"]
identity = {{ "{pki.root_path}" = "serialNumber" }}
""", encoding="utf-8")
    return path


class ProductionService(ServiceProcess):
    """``ServiceProcess`` with the site configuration instead of training mode."""

    def __init__(self, database: str, data_dir: Path, log: Path, site: Path) -> None:
        super().__init__(database, data_dir, log)
        self.site = site

    def start(self) -> ProductionService:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "app", "service", "--database", self.database,
                                          "--port", str(self.port)], cwd=ROOT, env=self.env(), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def env(self) -> dict[str, str]:
        return child_env(SPINEDESK_DATA_DIR=str(self.data_dir), SPINEDESK_SITE_CONFIG=str(self.site))

    def admin(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "app", "service", "--database", self.database, *argv],
                              cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=60)


def login(url: str, card: CardCredential) -> httpx.Response:
    cert = base64.b64encode(card.der()).decode()
    answer = httpx.post(f"{url}/auth/challenge", json={"certificate": cert}).json()
    assert answer["audience"] == SITE_URL  # signatures name the site's address, not the loopback one
    assert isinstance(card.key, ec.EllipticCurvePrivateKey)
    signature = card.key.sign(login_message(answer["nonce"], answer["audience"]), ec.ECDSA(hashes.SHA256()))
    return httpx.post(f"{url}/auth/session", json={"nonce": answer["nonce"], "certificate": cert, "urid": "ada-clin",
                                                   "signature": base64.b64encode(signature).decode()})


def read(url: str, token: str) -> httpx.Response:
    return httpx.get(f"{url}{PDS_BASE}/Patient/9000000009", headers={
        "Authorization": f"Bearer {token}", "NHSD-Session-URID": "ada-clin", "X-Request-ID": str(uuid.uuid4())})


def test_a_production_process_maps_cards_by_the_uuid_in_the_subject(tmp_path):
    now = datetime.now(UTC)
    pki = NhsTestPki.create(tmp_path / "nhs", now=now)
    database = f"sqlite:///{tmp_path / 'service.db'}"
    service = ProductionService(database, tmp_path / "data", tmp_path / "service.log",
                                site_config(pki, tmp_path / "spinedesk.toml"))
    added = service.admin("users", "add", "--id", "ada", "--name", "Dr Ada Lovelace", "--uuid", ADA)
    assert added.returncode == 0, added.stderr
    role = service.admin("users", "add-role", "--user", "ada", "--urid", "ada-clin", "--org", "A81001",
                         "--org-name", "Test Surgery", "--role", "S8000:G8000:R8000")
    assert role.returncode == 0, role.stderr
    assert f"NHS user UUIDs: {ADA}" in service.admin("users", "list").stdout

    service.start()
    try:
        service.wait_ready()
        card = pki.issue_card(name="Dr Ada Lovelace", uuid=ADA, now=now, alg="p256")
        first = login(service.url, card)
        assert first.status_code == 201, first.text + service.output()
        token = first.json()["token"]
        assert read(service.url, token).status_code == 404  # authorised: there is simply no such patient here

        renewed = pki.renew(card, now=now + timedelta(seconds=1))
        assert login(service.url, renewed).status_code == 201  # never registered, same UUID: same user

        bare = pki.issue_card(name="Dr Ada Lovelace", uuid=None, now=now, alg="p256", attribute="none")
        refused = login(service.url, bare)
        assert refused.status_code == 403
        assert "has no NHS user UUID in the subject's serialNumber" in refused.text

        pki.revoke(card, now=now + timedelta(seconds=2))  # the issuing CA's CRL file is rewritten
        assert read(service.url, token).status_code == 401  # the session of the revoked certificate has ended
        assert login(service.url, card).status_code == 403
        assert login(service.url, renewed).status_code == 201  # the renewed certificate is not revoked
    finally:
        service.stop()
    with open_store(database) as store:
        logins = store.query_audit(user_id="ada", action="auth.login", limit=10)
        assert len(logins) == 3 and {r.details["nhs_uuid"] for r in logins} == {ADA}
    verified = service.admin("audit", "verify")  # with the service's own audit key, as IT would
    assert verified.returncode == 0 and "Audit chain intact" in verified.stdout, verified.stdout + verified.stderr

