"""Production mode never serves plain HTTP to the network: `spinedesk service` with a site configuration refuses to
start without TLS, unless it listens on loopback only and the site configuration names the TLS-terminating proxy
in front of it. Real processes (`python -m app service …`), a site file written here, real sockets."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from app.pki import TrainingCA

from .conftest import free_port
from .test_tls import write_self_signed

ROOT = Path(__file__).resolve().parents[2]
EXIT_NO_TLS = 4  # app.__main__.EXIT_REFUSED: the configuration is unsafe to serve, nothing was started
PROXY = "https://spine.example.invalid"


def site_file(tmp: Path, service_extra: str = "") -> Path:
    """A production site configuration: trust anchored at a CA made here, its CRL published beside it."""
    ca = TrainingCA.load_or_create(tmp / "ca")
    crl = tmp / "site" / "issuing.crl"
    crl.parent.mkdir(parents=True, exist_ok=True)
    crl.write_bytes(ca.crl().public_bytes(serialization.Encoding.PEM))
    site = tmp / "site" / "spinedesk.toml"
    site.write_text(f'[service]\nurl = "{PROXY}"\n{service_extra}'
                    f'[trust]\nanchors = ["{ca.directory}/issuing.pem"]\ncrls = ["{crl}"]\n', encoding="utf-8")
    return site


def command(tmp: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "app", "service", "--database", f"sqlite:///{tmp}/s.db", *args]


def env(tmp: Path, site: Path) -> dict[str, str]:
    return {**os.environ, "SPINEDESK_DATA_DIR": str(tmp / "data"), "SPINEDESK_SITE_CONFIG": str(site)}


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def refused(tmp: Path, site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a service that must refuse to start: it must exit by itself (bounded wait), having listened nowhere."""
    try:
        return subprocess.run(command(tmp, *args), cwd=ROOT, env=env(tmp, site), capture_output=True, text=True,
                              timeout=60)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the service did not refuse to start: it was still running ({exc.stdout!r})")


@contextmanager
def started(tmp: Path, site: Path, port: int, *args: str) -> Iterator[Path]:
    """Start a service that must start; yield its stdout file once the port accepts connections."""
    out = tmp / "stdout.txt"
    with out.open("w") as stdout, (tmp / "stderr.txt").open("w") as stderr:
        proc = subprocess.Popen(command(tmp, "--port", str(port), *args), cwd=ROOT, env=env(tmp, site),
                                stdout=stdout, stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        while not listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the service did not start (exit {proc.poll()}): "
                            f"{(tmp / 'stderr.txt').read_text()[-2000:]}")
            time.sleep(0.1)
        yield out
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(20)


def test_production_without_tls_refuses_a_network_address(tmp_path):
    """(a) Production, no certificate, listening on every interface: refused, with what to do, and no server."""
    site, port = site_file(tmp_path), free_port()
    done = refused(tmp_path, site, "--host", "0.0.0.0", "--port", str(port))
    assert done.returncode == EXIT_NO_TLS, done.stderr
    assert "will not serve plain HTTP" in done.stderr and "0.0.0.0" in done.stderr
    assert "--tls-cert" in done.stderr and "--tls-key" in done.stderr  # give a certificate and key …
    assert "tls_proxy" in done.stderr and "127.0.0.1" in done.stderr  # … or bind to loopback and name the proxy
    assert "Traceback" not in done.stderr and not listening(port)


def test_production_without_tls_on_loopback_still_needs_the_proxy_named(tmp_path):
    """(b) Loopback alone is not enough: the site configuration must say which proxy terminates TLS."""
    site, port = site_file(tmp_path), free_port()
    done = refused(tmp_path, site, "--host", "127.0.0.1", "--port", str(port))
    assert done.returncode == EXIT_NO_TLS, done.stderr
    assert "will not serve plain HTTP" in done.stderr and "tls_proxy" in done.stderr
    assert "Traceback" not in done.stderr and not listening(port)


def test_a_proxy_named_does_not_allow_a_network_address(tmp_path):
    """Naming a proxy does not let plain HTTP out on the network: it is for a loopback listener only."""
    site, port = site_file(tmp_path, f'tls_proxy = "{PROXY}"\n'), free_port()
    done = refused(tmp_path, site, "--host", "0.0.0.0", "--port", str(port))
    assert done.returncode == EXIT_NO_TLS, done.stderr
    assert "0.0.0.0" in done.stderr and "Traceback" not in done.stderr and not listening(port)


def test_production_on_loopback_behind_the_named_proxy_starts(tmp_path):
    """(c) Loopback plus a named TLS-terminating proxy: it starts, says so, and links point at the proxy."""
    site, port = site_file(tmp_path, f'tls_proxy = "{PROXY}"\n'), free_port()
    with started(tmp_path, site, port, "--host", "127.0.0.1") as out:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(b"GET /_status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert raw.recv(200).startswith(b"HTTP/1.1 200")
        line = out.read_text()
        assert "production" in line and f"behind the TLS proxy {PROXY}" in line, line


def test_production_with_tls_from_the_site_configuration_serves_https(tmp_path):
    """(d) Production with the certificate and key named in the site configuration: HTTPS only."""
    cert, key = write_self_signed(tmp_path)
    site, port = site_file(tmp_path, f'tls_cert = "{cert}"\ntls_key = "{key}"\n'), free_port()
    with started(tmp_path, site, port, "--host", "127.0.0.1") as out:
        ctx = ssl.create_default_context(cafile=str(cert))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /_status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert tls.recv(200).startswith(b"HTTP/1.1 200")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:  # plain HTTP gets no answer
            raw.sendall(b"GET /_status HTTP/1.1\r\nHost: x\r\n\r\n")
            assert not raw.recv(200).startswith(b"HTTP/1.1 200")
        assert f"https://127.0.0.1:{port}" in out.read_text()


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.1", False), ("localhost", False), ("spine.example.invalid", False),
    ("::ffff:127.0.0.1", False),
])
def test_only_loopback_addresses_count_as_loopback(host, loopback):
    from app.cli.service import is_loopback

    assert is_loopback(host) is loopback


def test_behind_the_proxy_links_in_answers_point_at_the_proxy(tmp_path):
    """The service's base URL (fullUrl, Location, self links) is where clients reach it: the proxy."""
    import argparse

    from app.cli.service import _config
    from app.config import load_settings

    site = site_file(tmp_path, f'tls_proxy = "{PROXY}/"\n')
    settings = load_settings({"SPINEDESK_SITE_CONFIG": str(site), "SPINEDESK_DATA_DIR": str(tmp_path / "data")})
    args = argparse.Namespace(host="127.0.0.1", port=8443, database=f"sqlite:///{tmp_path}/s.db", tls_cert=None,
                              tls_key=None, limit=[])
    assert _config(args, settings).base_url == PROXY


def test_an_unusable_certificate_or_key_is_named_not_a_traceback(tmp_path):
    """The site configuration names a certificate that is not there, or a key that is not the certificate's."""
    cert, _ = write_self_signed(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, wrong_key = write_self_signed(other)
    for name, (c, k) in {"missing": (tmp_path / "absent.pem", wrong_key), "mismatched": (cert, wrong_key)}.items():
        site, port = site_file(tmp_path, f'tls_cert = "{c}"\ntls_key = "{k}"\n'), free_port()
        done = refused(tmp_path, site, "--host", "0.0.0.0", "--port", str(port))
        assert done.returncode == 1, (name, done.stderr)
        assert "Traceback" not in done.stderr and not listening(port), (name, done.stderr)
        assert f"TLS certificate {c} and key {k} cannot be used" in done.stderr, (name, done.stderr)
