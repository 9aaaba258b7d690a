"""A SoftHSM2 token holding a card certificate of the NHS-shaped test PKI signs in, end to end, to a production
service: a real ``python -m app service`` process over HTTPS on loopback from a real site configuration ([trust]
anchors, intermediates, CRL files, identity), its user registered only by the NHS user UUID; and a real
``python -m app login`` whose site configuration reaches cards only through PKCS#11 (``[cards] backends =
["pkcs11"]``, the test's copy of the SoftHSM2 module). Then the session reads a seeded patient through the client and
the audit holds the read. Through the same processes: a wrong PIN, a renewed certificate imported into the token
(same UUID, new key: the same user), a revoked certificate (its CRL file rewritten), a certificate from a foreign
PKI, a certificate without the UUID, two tokens and no reader named, and ``card status`` on the token. No PIN may
appear in any output or log of any of these processes. Real clock throughout (the PKI is made for now)."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import httpx
import pytest

from app.client.client import SpineClient
from app.client.models import Auth
from app.client.pds import Pds
from app.errors import ServiceRejected
from app.service.storage import open_store
from tests.integration.service.test_scale_out import ServiceProcess
from tests.integration.service.test_tls import write_self_signed
from tests.support.nhs_pki import NhsTestPki, make_foreign_pki
from tests.support.service.fixtures import ROOT, child_env, free_port
from tests.support.softhsm import USER_PIN, Issued, SoftHsm, issue_certificates, softhsm_available

ADA = "555000111222"
URID = "ada-clin"
PATIENT = "9000000009"  # NHS's sandbox reference patient: seeding always stores it
WRONG_PIN = "97531864"  # unusual digits: any appearance in an output or a log is a leak
ADA_TOKEN, RENEWED_TOKEN, REVOKED_TOKEN = "Dr Ada", "Dr Ada renewal", "Dr Ada revoked"
FOREIGN_TOKEN, BARE_TOKEN = "Foreign PKI", "No UUID"


def pin_forms(pin: str) -> list[str]:
    raw = pin.encode()
    return [pin, raw.hex(), raw.hex().upper(), raw.hex(" "), raw.hex(" ").upper()]


class HttpsService(ServiceProcess):
    """``ServiceProcess`` in production mode: the site configuration serves HTTPS with its own certificate."""

    def __init__(self, database: str, data_dir: Path, log: Path, site: Path, state: Path, port: int,
                 ca: Path) -> None:
        super().__init__(database, data_dir, log)
        self.site, self.state, self.port, self.ca = site, state, port, ca
        self.url = f"https://127.0.0.1:{port}"

    def env(self) -> dict[str, str]:
        return child_env(SPINEDESK_DATA_DIR=str(self.data_dir), SPINEDESK_SITE_CONFIG=str(self.site),
                         XDG_STATE_HOME=str(self.state))

    def start(self) -> HttpsService:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "app", "-v", "service", "--database", self.database,
                                          "--host", "127.0.0.1", "--port", str(self.port)], cwd=ROOT,
                                         env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        with httpx.Client(verify=self.tls(), timeout=2) as http:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    pytest.fail(f"service exited with {self.proc.returncode}:\n{self.output()}")
                try:
                    if http.get(f"{self.url}/_status").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        self.kill()
        pytest.fail(f"the service did not answer over HTTPS within {timeout} s:\n{self.output()}")

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def admin(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "app", "-v", "service", "--database", self.database, *argv],
                              cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=120)


@dataclass
class Site:
    """Everything the tests share: the PKI, the service, the client's configuration and the SoftHSM tokens."""

    tmp: Path
    pki: NhsTestPki
    service: HttpsService
    client_site: Path
    hsm: SoftHsm
    tokens: dict[str, Issued]
    outputs: list[str]  # every output of every command run, searched for the PIN at the end of each test

    def client_env(self) -> dict[str, str]:
        return {**child_env(SPINEDESK_DATA_DIR=str(self.tmp / "client-data"),
                            SPINEDESK_SITE_CONFIG=str(self.client_site), XDG_STATE_HOME=str(self.tmp / "client")),
                "SOFTHSM2_CONF": str(self.hsm.conf)}

    def spinedesk(self, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "app", "-v", *argv], cwd=ROOT, env=self.client_env(),
                              input=stdin, capture_output=True, text=True, timeout=120)
        self.outputs += [done.stdout, done.stderr]
        return done

    def login(self, token: str | None, pin: str = USER_PIN) -> subprocess.CompletedProcess[str]:
        reader = ("--reader", token) if token is not None else ()
        return self.spinedesk("login", "--role", URID, "--pin-stdin", *reader, stdin=pin + "\n")

    def logs(self) -> list[str]:
        files = [p for folder in (self.tmp / "client", self.tmp / "service-state") for p in folder.rglob("*")
                 if p.is_file()]
        stored = [p.read_bytes().decode("latin-1") for p in self.tmp.glob("service.db*")]  # with its WAL file
        return [p.read_text(errors="replace") for p in files] + [self.service.output(), *stored]

    def assert_no_pin(self) -> None:
        logs = self.logs()
        assert any("login certificate CKA_ID 01" in text for text in logs)  # the client's verbose log was searched
        for text in self.outputs + logs:
            for secret in (USER_PIN, WRONG_PIN):
                for form in pin_forms(secret):
                    assert form not in text, f"a PIN ({form!r}) appears in an output or a log"


def write_configs(tmp: Path, pki: NhsTestPki, port: int, cert: Path, key: Path, module: Path) -> tuple[Path, Path]:
    trust = (f'[trust]\nanchors = ["{pki.root_path}"]\nintermediates = ["{pki.issuing_path}"]\n'
             f'crls = ["{pki.crl_paths[0]}", "{pki.crl_paths[1]}"]\n')
    service = tmp / "service-site.toml"
    service.write_text(f'[service]\nurl = "https://127.0.0.1:{port}"\nca = "{cert}"\ntls_cert = "{cert}"\n'
                       f'tls_key = "{key}"\n{trust}identity = {{ "{pki.root_path}" = "serialNumber" }}\n',
                       encoding="utf-8")
    client = tmp / "client-site.toml"
    client.write_text(f'[service]\nurl = "https://127.0.0.1:{port}"\nca = "{cert}"\n{trust}'
                      f'[cards]\nbackends = ["pkcs11"]\npkcs11_modules = ["{module}"]\n', encoding="utf-8")
    return service, client


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    softhsm_available()
    tmp = tmp_path_factory.mktemp("p11e2e")
    now = datetime.now(UTC)
    pki = NhsTestPki.create(tmp / "nhs", now=now)
    foreign = make_foreign_pki(tmp / "foreign", now=now)
    hsm = SoftHsm(tmp / "softhsm", pki=pki, now=now)
    tokens = {label: hsm.make_card(label, alg, name="Dr Ada Lovelace") for label, alg in
              ((ADA_TOKEN, "p256"), (RENEWED_TOKEN, "rsa2048"), (REVOKED_TOKEN, "p256"))}
    foreign_login, _ = issue_certificates("p256", name="Dr Ada Lovelace", now=now, pki=foreign, uuid=ADA)
    tokens[FOREIGN_TOKEN] = hsm.make_card(FOREIGN_TOKEN, "p256", login=foreign_login)
    tokens[BARE_TOKEN] = hsm.make_card(BARE_TOKEN, "p256", name="Dr Ada Lovelace", uuid=None, attribute="none")
    (tmp / "tls").mkdir()
    cert, key = write_self_signed(tmp / "tls")
    port = free_port()
    service_site, client_site = write_configs(tmp, pki, port, cert, key, hsm.module)
    service = HttpsService(f"sqlite:///{tmp / 'service.db'}", tmp / "service-data", tmp / "service.log",
                           service_site, tmp / "service-state", port, cert)
    world = Site(tmp, pki, service, client_site, hsm, {k: v for k, v in tokens.items() if v is not None}, [])
    for argv in (("seed", "--patients", "20"),
                 ("users", "add", "--id", "ada", "--name", "Dr Ada Lovelace", "--uuid", ADA),
                 ("users", "add-role", "--user", "ada", "--urid", URID, "--org", "A81001", "--org-name",
                  "Test Surgery", "--role", "S8000:G8000:R8000")):
        done = service.admin(*argv)
        world.outputs += [done.stdout, done.stderr]
        assert done.returncode == 0, done.stderr
    service.start()
    try:
        service.wait_ready()
        assert "production" in service.output() and "training" not in service.output().lower(), service.output()
        yield world
    finally:
        service.stop()


def read_patient(site: Site, token: str) -> str:
    """The seeded reference patient read through the client's PDS use case, over the service's HTTPS."""
    with httpx.Client(verify=site.service.tls(), timeout=15) as http:
        patient = Pds(SpineClient(site.service.url, http), Auth(token, URID)).read(PATIENT)
    return patient.nhs_number


def audit(site: Site, action: str) -> list:
    with open_store(site.service.database) as store:
        return store.query_audit(user_id="ada", action=action, limit=50)


def test_the_token_logs_in_through_pkcs11_and_reads_a_patient_with_the_read_audited(site):
    done = site.login(ADA_TOKEN)
    assert done.returncode == 0, done.stderr + site.service.output()
    token = done.stdout.strip()
    assert "Logged in as Dr Ada Lovelace" in done.stderr and URID in done.stderr
    assert read_patient(site, token) == PATIENT
    reads = [r for r in audit(site, "pds.read") if r.nhs_number == PATIENT]
    assert reads and reads[0].role_profile_id == URID and reads[0].outcome.startswith("200")
    logins = audit(site, "auth.login")
    assert logins and logins[0].details["nhs_uuid"] == ADA  # matched by the UUID in the certificate's subject
    site.assert_no_pin()


def test_a_wrong_pin_says_what_the_module_reports(site):
    done = site.login(ADA_TOKEN, WRONG_PIN)
    assert done.returncode == 1
    assert "Incorrect PIN. The card does not say how many tries are left" in done.stderr  # SoftHSM gives no count
    assert "Traceback" not in done.stderr
    assert site.login(ADA_TOKEN).returncode == 0  # the right PIN still works
    site.assert_no_pin()


def test_two_tokens_and_no_reader_named_asks_for_one(site):
    done = site.login(None)
    assert done.returncode == 1 and "More than one smartcard is present" in done.stderr
    assert ADA_TOKEN in done.stderr and "Traceback" not in done.stderr
    site.assert_no_pin()


def test_a_renewed_certificate_imported_into_the_token_logs_in_as_the_same_user(site):
    old = site.tokens[RENEWED_TOKEN]
    assert site.login(RENEWED_TOKEN).returncode == 0
    renewed = site.pki.issue_card(name="Dr Ada Lovelace", uuid=ADA, now=datetime.now(UTC), alg="rsa2048")
    assert renewed.certificate.public_key() != old.certificate.public_key()
    site.hsm.replace_login(RENEWED_TOKEN, Issued.of(renewed, site.pki))  # never registered with the service
    done = site.login(RENEWED_TOKEN)
    assert done.returncode == 0, done.stderr + site.service.output()
    assert "Logged in as Dr Ada Lovelace" in done.stderr
    assert read_patient(site, done.stdout.strip()) == PATIENT
    login = next(r for r in audit(site, "auth.login") if r.details["cert_serial"] == f"{renewed.serial:x}")
    assert login.user_id == "ada" and login.details["matched_by"] == "nhs-uuid" and login.details["nhs_uuid"] == ADA
    site.assert_no_pin()


def test_a_revoked_certificate_is_refused_and_its_session_ended(site):
    first = site.login(REVOKED_TOKEN)
    assert first.returncode == 0, first.stderr
    token = first.stdout.strip()
    assert read_patient(site, token) == PATIENT
    site.pki.revoke(site.tokens[REVOKED_TOKEN].certificate.serial_number, now=datetime.now(UTC))
    reload = site.service.admin("reload-crl")
    site.outputs += [reload.stdout, reload.stderr]
    assert reload.returncode == 0, reload.stderr
    assert "1 revoked certificate(s)" in reload.stdout, reload.stdout  # the session may be ended by the service
    done = site.login(REVOKED_TOKEN)
    assert done.returncode == 1 and "The Spine service refused this: this smartcard cannot log in" in done.stderr
    assert "Traceback" not in done.stderr
    assert "certificate-revoked" in "\n".join(site.logs())  # the reason is in the service's log, not told
    with pytest.raises(ServiceRejected) as ended:
        read_patient(site, token)
    assert ended.value.status == 401  # the session opened with the revoked certificate has ended
    assert site.login(ADA_TOKEN).returncode == 0  # another certificate of the same user is not revoked
    site.assert_no_pin()


def test_a_certificate_from_a_foreign_pki_is_refused(site):
    done = site.login(FOREIGN_TOKEN)
    assert done.returncode == 1 and "this smartcard cannot log in to this service" in done.stderr
    assert "Traceback" not in done.stderr
    assert "certificate-untrusted-issuer" in "\n".join(site.logs())
    site.assert_no_pin()


def test_a_certificate_without_the_uuid_is_refused_in_words(site):
    done = site.login(BARE_TOKEN)
    assert done.returncode == 1
    assert "has no NHS user UUID in the subject's serialNumber" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    site.assert_no_pin()


@pytest.mark.parametrize("by", ["label", "slot"])
def test_card_status_names_the_back_end_module_token_and_family(site, by):
    reader = ADA_TOKEN
    if by == "slot":
        listed = subprocess.run(["pkcs11-tool", "--module", str(site.hsm.module), "-L"], env=site.hsm.env(),
                                capture_output=True, text=True, check=True).stdout
        lines = listed.splitlines()  # "Slot 0 (0x…): SoftHSM slot ID 0x…" then "  token label        : Dr Ada"
        reader = next(line.split(": ", 1)[1].strip() for line, following in pairwise(lines)
                      if line.startswith("Slot ") and following.strip().startswith("token label")
                      and following.split(":", 1)[1].strip() == ADA_TOKEN)
        assert reader.startswith("SoftHSM slot ID")
    done = site.spinedesk("card", "status", "--reader", reader)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"Back-end      PKCS#11 ({site.hsm.module})" in out
    assert f"Token label   {ADA_TOKEN}" in out
    assert "Card family   unknown" in out  # SoftHSM is no card family Spine Desk knows
    assert f"NHS user UUID {ADA}\n" in out  # the identity the service will know the holder by ([trust] identity)
    assert f"Certificate   serialNumber={ADA},CN=Dr Ada Lovelace" in out and "Trust         trusted" in out
    site.assert_no_pin()


def test_card_status_warns_about_a_certificate_without_the_uuid(site):
    done = site.spinedesk("card", "status", "--reader", BARE_TOKEN)
    assert done.returncode == 0, done.stderr  # trusted, but nobody is named by it
    assert "NHS user UUID" not in done.stdout.replace("has no NHS user UUID", "")
    assert ("Warning       its certificate has no NHS user UUID in the subject's serialNumber, so the service can "
            "tell who holds it only if this very certificate is registered there") in done.stdout, done.stdout
    site.assert_no_pin()
