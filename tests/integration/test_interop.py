"""Interoperability: OpenSC, pkcs11-tool + openssl and yubico-piv-tool accept the training card as genuine PIV."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import PIN, READER0, REQUIRED

pytestmark = [pytest.mark.pcsc, pytest.mark.interop]

PKCS11_MODULES = [Path("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"),
                  Path("/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so"), Path("/usr/lib/opensc-pkcs11.so")]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if REQUIRED:
            pytest.fail(f"{name} is required for the interoperability tests (apt-get install opensc yubico-piv-tool)")
        pytest.skip(f"{name} not installed")
    return path


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


def test_opensc_identifies_a_piv_card(rsa_card, insert):
    insert(rsa_card)
    result = run(tool("opensc-tool"), "--reader", READER0, "--name")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Personal Identity Verification Card", result.stdout  # OpenSC's PIV driver


@pytest.mark.parametrize("alg", ["rsa", "p256"])
def test_pkcs11_tool_signs_and_openssl_verifies(rsa_card, p256_card, insert, tmp_path, alg):
    pkcs11_tool, openssl = tool("pkcs11-tool"), tool("openssl")
    module = next((m for m in PKCS11_MODULES if m.exists()), None)
    assert module is not None, "opensc-pkcs11.so not found"
    card = insert(rsa_card if alg == "rsa" else p256_card)
    data = tmp_path / "data.bin"
    data.write_bytes(b"interop check " * 10)
    cert_pem = tmp_path / "cert.pem"
    cert_pem.write_bytes(_pem(card.card.certificate))
    pub = tmp_path / "pub.pem"
    pub.write_text(run(openssl, "x509", "-in", str(cert_pem), "-pubkey", "-noout").stdout)
    sig = tmp_path / "sig.bin"
    mechanism = "SHA256-RSA-PKCS" if alg == "rsa" else "ECDSA-SHA256"
    extra = [] if alg == "rsa" else ["--signature-format", "openssl"]
    signed = run(pkcs11_tool, "--module", str(module), "--slot-index", "0", "--login", "--pin", PIN, "--sign",
                 "--id", "01", "--mechanism", mechanism, "--input-file", str(data), "--output-file", str(sig), *extra)
    assert signed.returncode == 0, signed.stdout + signed.stderr
    verified = run(openssl, "dgst", "-sha256", "-verify", str(pub), "-signature", str(sig), str(data))
    assert verified.returncode == 0 and "Verified OK" in verified.stdout, verified.stdout + verified.stderr


def test_yubico_piv_tool_reads_status(rsa_card, insert):
    card = insert(rsa_card)
    result = run(tool("yubico-piv-tool"), "-r", "Virtual PCD", "-a", "status")
    assert result.returncode == 0, result.stdout + result.stderr
    assert card.card.card_uuid.hex in result.stdout.split("CHUID:")[1].splitlines()[0]  # GUID inside the CHUID
    assert "Slot 9a:" in result.stdout and "CN=Dr Ada Training" in result.stdout
    assert "Algorithm:\tRSA2048" in result.stdout
    assert "PIN tries left:\t3" in result.stdout

def _pem(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)
