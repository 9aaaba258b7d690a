"""`spinedesk service --tls-cert --tls-key`: HTTPS with TLS 1.2 and 1.3 only (a real process, real handshakes)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_self_signed(tmp: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, written to ``tmp`` as cert.pem and key.pem."""
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
    return tmp / "cert.pem", tmp / "key.pem"


@pytest.fixture(scope="module")
def https(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls")
    write_self_signed(tmp)
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


def client_context(cafile: Path, version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that offers exactly ``version``. For TLS 1.0/1.1 it drops to security level 0 (and SHA-1
    signatures), which Debian's OpenSSL otherwise forbids, so that it can offer them at all."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    with warnings.catch_warnings():  # Python deprecates naming TLS 1.0/1.1; offering them is the point here
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ctx.maximum_version = version
    if version < ssl.TLSVersion.TLSv1_2:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    return ctx


def handshake(port: int, cafile: Path, version: ssl.TLSVersion) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            client_context(cafile, version).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"GET /_status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return tls.recv(200).decode("latin-1")


def negotiated(port: int, cafile: Path, version: ssl.TLSVersion) -> tuple[str | None, OSError | None]:
    """Offer only ``version``: the version the handshake settled on (``None`` if it never completed) and the
    error that ended it. Any ``OSError`` counts (``ssl.SSLError`` and its subclasses, a reset, a closed
    socket): which one a refusal surfaces as depends on the OpenSSL build, not on the server."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            client_context(cafile, version).wrap_socket(raw, server_hostname="127.0.0.1",
                                                         do_handshake_on_connect=False) as tls:
        try:
            tls.do_handshake()
        except OSError as error:
            return tls.version(), error
        return tls.version(), None


@pytest.fixture(scope="module")
def permissive_server(https):
    """A local server that accepts TLS 1.0 and 1.1 (same certificate): proof this client really offers them."""
    _, cert = https
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.load_cert_chain(cert, cert.parent / "key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    with ctx.wrap_socket(conn, server_side=True) as tls:
                        tls.recv(1)  # the client closes without sending anything
                except OSError:
                    pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_12_and_13_are_served(https, version):
    port, cafile = https
    assert handshake(port, cafile, version).startswith("HTTP/1.1 200")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_tls_10_and_11_are_refused(https, permissive_server, version):
    port, cafile = https
    if not getattr(ssl, f"HAS_{version.name}"):
        pytest.skip(f"this OpenSSL was built without {version.name}: no client here can offer it")
    # the client can offer this version: a server that allows it completes the handshake with it
    offered, error = negotiated(permissive_server, cafile, version)
    assert (offered, error) == (version.name.replace("_", "."), None), f"this client cannot offer it: {error!r}"
    # the service refuses it: no TLS session, whatever exception this OpenSSL build raises for the refusal
    agreed, error = negotiated(port, cafile, version)
    assert agreed is None, f"the service negotiated {agreed}"
    assert error is not None and not isinstance(error, TimeoutError), f"no prompt refusal: {error!r}"


def test_plain_http_gets_no_answer(https):
    port, _ = https
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(b"GET /_status HTTP/1.1\r\nHost: x\r\n\r\n")
        assert not raw.recv(200).startswith(b"HTTP/1.1 200")
