"""`spinedesk service --tls-cert --tls-key`: HTTPS with TLS 1.2 and 1.3 only (a real process, real handshakes)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def https(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress").ip_address(
                "127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "app", "service", "--database", f"sqlite:///{tmp}/s.db",
                             "--port", str(port), "--tls-cert", str(tmp / "cert.pem"), "--tls-key",
                             str(tmp / "key.pem")], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "SPINEDESK_DATA_DIR": str(tmp)})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield port, tmp / "cert.pem"
    proc.terminate()
    proc.wait(20)


def handshake(port: int, cafile: Path, version: ssl.TLSVersion) -> str:
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.minimum_version = ctx.maximum_version = version
    if version < ssl.TLSVersion.TLSv1_2:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"GET /_status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return tls.recv(200).decode("latin-1")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_12_and_13_are_served(https, version):
    port, cafile = https
    assert handshake(port, cafile, version).startswith("HTTP/1.1 200")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_tls_10_and_11_are_refused(https, version):
    port, cafile = https
    with pytest.raises(ssl.SSLError) as refused:
        handshake(port, cafile, version)
    # the server refused (an alert or it hung up on the hello) — not this client's own policy
    text = str(refused.value).upper()
    assert "NO_PROTOCOLS_AVAILABLE" not in text and "UNSUPPORTED_PROTOCOL" not in text, text
    assert "PROTOCOL_VERSION" in text or isinstance(refused.value, ssl.SSLEOFError), text


def test_plain_http_gets_no_answer(https):
    port, _ = https
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(b"GET /_status HTTP/1.1\r\nHost: x\r\n\r\n")
        assert not raw.recv(200).startswith(b"HTTP/1.1 200")
