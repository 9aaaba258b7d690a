"""SoftHSM2 as a PKCS#11 smartcard: private tokens with a login key + certificate and a distractor, made for a test.

SoftHSM reads ``SOFTHSM2_CONF`` (and so its token folder) once, in ``C_Initialize``, and does not see tokens made
or deleted by ``softhsm2-util`` afterwards. The product loads each PKCS#11 module once per process and never
finalises it, so every test gets its OWN copy of ``libsofthsm2.so`` in its tmp folder: a distinct file is a distinct
module instance for the dynamic loader, initialised with that test's configuration. The tokens are made with the
real ``softhsm2-util`` before the copy is loaded; keys and certificates are written through the PKCS#11 interface.

The certificates come from :func:`issue_certificates`, the one place that makes them (a small local CA for now), so
an NHS-shaped test PKI can replace it.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
REQUIRED = bool(os.environ.get("SPINEDESK_REQUIRE_SOFTHSM") or os.environ.get("SPINEDESK_REQUIRE_PCSC"))
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
    """One key with its certificate, and the CA that signed it."""

    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    ca_certificate: x509.Certificate


def _new_key(alg: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if alg == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    raise ValueError(alg)


def issue_certificates(alg: str, *, name: str = "Dr Ada Token",
                       now: dt.datetime | None = None) -> tuple[Issued, Issued]:
    """The login certificate (digitalSignature, EKU clientAuth, the card UUID as subject serialNumber) and a
    distractor from the same CA (nonRepudiation only, EKU emailProtection), each with its own key."""
    now = now or dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Spine Desk Tests"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "PKCS#11 Test CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .sign(ca_key, hashes.SHA256()))

    def leaf(key, usage: x509.KeyUsage, eku, cn: str) -> x509.Certificate:
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Spine Desk Tests"),
                             x509.NameAttribute(NameOID.COMMON_NAME, cn),
                             x509.NameAttribute(NameOID.SERIAL_NUMBER, CARD_UUID)])
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=90))
                .add_extension(usage, critical=True)
                .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
                .sign(ca_key, hashes.SHA256()))

    def usage(digital_signature: bool, non_repudiation: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=digital_signature, content_commitment=non_repudiation,
                             key_encipherment=False, data_encipherment=False, key_agreement=False,
                             key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False)

    login_key, other_key = _new_key(alg), _new_key(alg)
    login = Issued(login_key, leaf(login_key, usage(True, False), ExtendedKeyUsageOID.CLIENT_AUTH, name), ca_cert)
    other = Issued(other_key, leaf(other_key, usage(False, True), ExtendedKeyUsageOID.EMAIL_PROTECTION,
                                   f"{name} (signing)"), ca_cert)
    return login, other


@dataclass
class SoftHsm:
    """A private SoftHSM2 installation: its configuration, token folder and module copy."""

    root: Path
    conf: Path = field(init=False)
    module: Path = field(init=False)

    def __post_init__(self) -> None:
        tokens = self.root / "tokens"
        tokens.mkdir(parents=True, exist_ok=True)
        self.conf = self.root / "softhsm2.conf"
        self.conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
                             "slots.removable = false\n", encoding="utf-8")
        self.module = self.root / "libsofthsm2.so"
        shutil.copyfile(SOFTHSM_MODULE, self.module)

    def env(self) -> dict[str, str]:
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf)}

    def init_token(self, label: str, *, pin: str = USER_PIN, so_pin: str = SO_PIN) -> None:
        """A new empty token (through the real softhsm2-util); call before the module is first loaded."""
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", so_pin],
                       env=self.env(), check=True, capture_output=True)

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
        subprocess.run(["pkcs11-tool", "--module", str(SOFTHSM_MODULE), "--token-label", label, "--login",
                        "--pin", pin, "--write-object", str(cert_file), "--type", "cert", "--id", object_id.hex(),
                        "--label", object_label], env=self.env(), check=True, capture_output=True)

    def make_card(self, label: str, alg: str, *, with_certificate: bool = True,
                  distractor: bool = True) -> Issued | None:
        """A token shaped like a login card: the login key + certificate (CKA_ID 01, labelled as a signing key so
        that a label-based search would pick wrong) and a non-login key + certificate (CKA_ID 02, labelled
        "Authentication")."""
        self.init_token(label)
        login, other = issue_certificates(alg)
        if distractor:
            self.write(label, other, OTHER_ID, "Authentication")
        if not with_certificate:
            return None
        self.write(label, login, LOGIN_ID, "Digital Signature")
        return login


@pytest.fixture
def softhsm(tmp_path, monkeypatch) -> SoftHsm:
    """An empty private SoftHSM2 (SOFTHSM2_CONF set for this test): make tokens, then open its ``module``."""
    softhsm_available()
    hsm = SoftHsm(tmp_path / "softhsm")
    monkeypatch.setenv("SOFTHSM2_CONF", str(hsm.conf))
    return hsm
