"""SoftHSM2 as a PKCS#11 smartcard: private tokens with a login key + certificate and a distractor, made for a test.

SoftHSM reads ``SOFTHSM2_CONF`` (and so its token folder) once, in ``C_Initialize``, and does not see tokens made
or deleted by ``softhsm2-util`` afterwards. The product loads each PKCS#11 module once per process and never
finalises it, so every test gets its OWN copy of ``libsofthsm2.so`` in its tmp folder: a distinct file is a distinct
module instance for the dynamic loader, initialised with that test's configuration. The tokens are made with the
real ``softhsm2-util`` before the copy is loaded; keys and certificates are written through the PKCS#11 interface.
A token changed afterwards (a renewed certificate) is seen by the next process that loads the module.

The certificates come from :func:`issue_certificates`, the one place that makes them: card certificates of the
NHS-shaped test PKI (:mod:`tests.support.nhs_pki`: root -> issuing CA -> card, the NHS user UUID in the subject's
serialNumber, a CRL from each CA). Each :class:`SoftHsm` has its own PKI (``SoftHsm.pki``) unless one is given.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.support.nhs_pki import CardCredential, NhsTestPki, UuidPlacement, card_subject

SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
REQUIRED = bool(os.environ.get("CI") or os.environ.get("SPINEDESK_REQUIRE_SOFTHSM")
                or os.environ.get("SPINEDESK_REQUIRE_PCSC"))
USER_PIN = "24681357"
SO_PIN = "11223344"
LOGIN_ID = bytes.fromhex("01")
OTHER_ID = bytes.fromhex("02")
CARD_UUID = "555000111222"


def softhsm_available() -> None:
    """Skip (or, where required, fail) when SoftHSM2 is not installed."""
    if SOFTHSM_MODULE.exists() and shutil.which("softhsm2-util") and shutil.which("pkcs11-tool"):
        return
    reason = "SoftHSM2 or OpenSC's pkcs11-tool is not installed (apt-get install softhsm2 opensc)"
    if REQUIRED:
        pytest.fail(f"SoftHSM tests must run here: {reason}")
    pytest.skip(reason)


@dataclass
class Issued:
    """One key with its certificate, and the CA that signed it (the test PKI's issuing CA)."""

    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    ca_certificate: x509.Certificate

    @classmethod
    def of(cls, card: CardCredential, pki: NhsTestPki) -> Issued:
        return cls(card.key, card.certificate, pki.issuing.certificate)


def _new_key(alg: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if alg == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    raise ValueError(alg)


def _signing_certificate(pki: NhsTestPki, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, name: str,
                         uuid: str | None, attribute: UuidPlacement, now: datetime) -> x509.Certificate:
    """A certificate of the same holder that is not for logging in (nonRepudiation only, EKU emailProtection)."""
    issuer = pki.issuing.certificate
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (x509.CertificateBuilder()
            .subject_name(card_subject(name, uuid, attribute, organisation=pki.organisation))
            .issuer_name(issuer.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=2 * 365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(pki.issuing.key, hashes.SHA256()))


def issue_certificates(alg: str, *, name: str = "Dr Ada Token", now: datetime | None = None,
                       pki: NhsTestPki | None = None, uuid: str | None = CARD_UUID,
                       attribute: UuidPlacement = "serialNumber") -> tuple[Issued, Issued]:
    """The login certificate (the test PKI's card certificate: digitalSignature, EKU clientAuth, ``uuid`` in the
    subject ``attribute``) and a distractor from the same issuing CA (nonRepudiation only, EKU emailProtection),
    each with its own key of ``alg`` (rsa2048, p256, p384). Without ``pki`` a throwaway one is made for the call."""
    now = now or datetime.now(UTC)
    if pki is None:
        with tempfile.TemporaryDirectory(prefix="spinedesk-pki-") as folder:
            return issue_certificates(alg, name=name, now=now, pki=NhsTestPki.create(Path(folder), now=now),
                                      uuid=uuid, attribute=attribute)
    login = pki.issue_card(name=name, uuid=uuid, now=now, attribute=attribute, key=_new_key(alg))
    other_key = _new_key(alg)
    other = Issued(other_key, _signing_certificate(pki, other_key, f"{name} (signing)", uuid, attribute, now),
                   pki.issuing.certificate)
    return Issued.of(login, pki), other


class SoftHsm:
    """A private SoftHSM2 installation: its configuration, token folder and module copy, and the test PKI its
    certificates come from (``pki``: the one given, else one made in ``root`` on first use, valid from ``now``)."""

    def __init__(self, root: Path, *, pki: NhsTestPki | None = None, now: datetime | None = None) -> None:
        self.root = root
        self._pki = pki
        self._now = now
        tokens = self.root / "tokens"
        tokens.mkdir(parents=True, exist_ok=True)
        self.conf = self.root / "softhsm2.conf"
        self.conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
                             "slots.removable = false\n", encoding="utf-8")
        self.module = self.root / "libsofthsm2.so"
        shutil.copyfile(SOFTHSM_MODULE, self.module)

    @property
    def pki(self) -> NhsTestPki:
        if self._pki is None:
            self._pki = NhsTestPki.create(self.root / "pki", now=self._now or datetime.now(UTC))
        return self._pki

    def env(self) -> dict[str, str]:
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf)}

    def init_token(self, label: str, *, pin: str = USER_PIN, so_pin: str = SO_PIN) -> None:
        """A new empty token (through the real softhsm2-util); call before the module is first loaded."""
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", so_pin],
                       env=self.env(), check=True, capture_output=True)

    def _tool(self, label: str, pin: str, *args: str) -> None:
        subprocess.run(["pkcs11-tool", "--module", str(SOFTHSM_MODULE), "--token-label", label, "--login",
                        "--pin", pin, *args], env=self.env(), check=True, capture_output=True)

    def write(self, label: str, issued: Issued, object_id: bytes, object_label: str, *, pin: str = USER_PIN) -> None:
        """Put a private key (CKA_SIGN) and its certificate on the token with the real tools (softhsm2-util,
        OpenSC's pkcs11-tool), in child processes: this process loads the module only once the token is made."""
        key_pem = issued.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption())
        key_file = self.root / f"{label}-{object_id.hex()}.pem"
        key_file.write_bytes(key_pem)
        try:
            subprocess.run(["softhsm2-util", "--import", str(key_file), "--token", label, "--label", object_label,
                            "--id", object_id.hex(), "--pin", pin], env=self.env(), check=True, capture_output=True)
        finally:
            key_file.unlink()
        cert_file = self.root / f"{label}-{object_id.hex()}.der"
        cert_file.write_bytes(issued.certificate.public_bytes(serialization.Encoding.DER))
        self._tool(label, pin, "--write-object", str(cert_file), "--type", "cert", "--id", object_id.hex(),
                   "--label", object_label)

    def delete(self, label: str, object_id: bytes, *, pin: str = USER_PIN) -> None:
        """Remove the certificate and key pair with ``object_id`` from the token (pkcs11-tool, a child process)."""
        for kind in ("cert", "privkey", "pubkey"):
            self._tool(label, pin, "--delete-object", "--type", kind, "--id", object_id.hex())

    def replace_login(self, label: str, issued: Issued, *, pin: str = USER_PIN) -> None:
        """Put ``issued`` (a renewed certificate with its new key, say) in place of the token's login key and
        certificate (CKA_ID 01). Processes that load the module afterwards see the change."""
        self.delete(label, LOGIN_ID, pin=pin)
        self.write(label, issued, LOGIN_ID, "Digital Signature", pin=pin)

    def make_card(self, label: str, alg: str, *, with_certificate: bool = True, distractor: bool = True,
                  name: str = "Dr Ada Token", uuid: str | None = CARD_UUID, attribute: UuidPlacement = "serialNumber",
                  login: Issued | None = None) -> Issued | None:
        """A token shaped like a login card: the login key + certificate (CKA_ID 01, labelled as a signing key so
        that a label-based search would pick wrong) and a non-login key + certificate (CKA_ID 02, labelled
        "Authentication"), both issued by ``pki`` to ``name`` with ``uuid`` in the subject ``attribute``
        (``"none"``: no UUID). ``login``: that key and certificate as the login pair instead (from another PKI,
        say)."""
        self.init_token(label)
        issued, other = issue_certificates(alg, name=name, now=self._now, pki=self.pki, uuid=uuid,
                                           attribute=attribute)
        if distractor:
            self.write(label, other, OTHER_ID, "Authentication")
        if not with_certificate:
            return None
        issued = login or issued
        self.write(label, issued, LOGIN_ID, "Digital Signature")
        return issued


@pytest.fixture
def softhsm(tmp_path, monkeypatch) -> SoftHsm:
    """An empty private SoftHSM2 (SOFTHSM2_CONF set for this test): make tokens, then open its ``module``."""
    softhsm_available()
    hsm = SoftHsm(tmp_path / "softhsm")
    monkeypatch.setenv("SOFTHSM2_CONF", str(hsm.conf))
    return hsm
