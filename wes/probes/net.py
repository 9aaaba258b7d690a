"""Network probes: the service's health endpoint over HTTP(S), and which TLS versions it accepts."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
import uuid
import warnings
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

from wes.probes.facts import ServiceFacts, TlsAttempt, TlsFacts

STATUS_PATH = "/_status"
TLS_VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
                "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
# the client side's own refusal to offer a version (this machine's OpenSSL), as opposed to the server's
_LOCAL_REFUSALS = ("NO_PROTOCOLS_AVAILABLE", "UNSUPPORTED_PROTOCOL", "NO_SUITABLE_SIGNATURE_ALGORITHM")


def host_port(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), parts.scheme


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the service's TLS certificate is not trusted ({exc.verify_message})"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listening on that port)"
    if isinstance(exc, socket.gaierror):
        return f"the host name cannot be resolved ({exc.strerror})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}"


def probe_service(url: str, *, cafile: Path | None, timeout: float) -> ServiceFacts:
    """GET ``{url}/_status``: reachability, latency (connect + TLS + answer) and the server's Date header."""
    host, port, scheme = host_port(url)
    path = (urlsplit(url).path.rstrip("/") or "") + STATUS_PATH
    if scheme == "https":
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    start = time.perf_counter()
    try:
        conn.request("GET", path, headers={"User-Agent": "spinedesk-wes", "X-Request-ID": str(uuid.uuid4()),
                                           "Accept": "application/json"})
        response = conn.getresponse()
        body = response.read(4096).decode("utf-8", "replace")
        latency = (time.perf_counter() - start) * 1000
        local = datetime.now(UTC)
        server_date = None
        if date_header := response.getheader("Date"):
            with contextlib.suppress(TypeError, ValueError):
                server_date = parsedate_to_datetime(date_header)
        return ServiceFacts(url, True, response.status, latency, server_date, local, body[:1000])
    except (OSError, http.client.HTTPException) as exc:
        return ServiceFacts(url, False, error=_describe(exc, timeout))
    finally:
        conn.close()


def _contexts() -> dict[str, ssl.SSLContext]:
    """One client context per version, pinned to it. Certificates are not verified: this asks only which
    protocol versions the server will speak (net.spine verifies the certificate)."""
    contexts = {}
    with warnings.catch_warnings():  # TLSv1 / TLSv1_1 are deprecated: asking for them is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        for name, version in TLS_VERSIONS.items():
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.minimum_version = ctx.maximum_version = version
            if version < ssl.TLSVersion.TLSv1_2:  # OpenSSL 3 offers these only at security level 0
                ctx.set_ciphers("ALL:@SECLEVEL=0")
            contexts[name] = ctx
    return contexts


def _attempt(name: str, ctx: ssl.SSLContext, host: str, port: int, timeout: float) -> TlsAttempt:
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return TlsAttempt(name, False, detail=f"unreachable: {_describe(exc, timeout)}", tested=False)
    try:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            cipher = tls.cipher()
            return TlsAttempt(name, True, cipher=cipher[0] if cipher else None, detail="handshake completed")
    except ssl.SSLError as exc:
        text = str(exc)
        if any(r in text.upper() for r in _LOCAL_REFUSALS):
            return TlsAttempt(name, False, detail=f"not tested: this machine cannot offer {name} ({exc.reason})",
                              tested=False)
        return TlsAttempt(name, False, detail=f"refused by the service ({exc.reason or type(exc).__name__})")
    except OSError as exc:  # reset or closed during the hello: the server refused
        return TlsAttempt(name, False, detail=f"refused by the service ({_describe(exc, timeout)})")
    finally:
        raw.close()


def probe_tls(url: str, *, timeout: float) -> TlsFacts:
    """Try a handshake at each TLS version, concurrently; which ones the service accepted."""
    host, port, _ = host_port(url)
    contexts = _contexts()
    results: dict[str, TlsAttempt] = {}

    def worker(name: str) -> None:
        results[name] = _attempt(name, contexts[name], host, port, timeout)

    threads = [threading.Thread(target=worker, args=(n,), name=f"wes-tls-{n}", daemon=True) for n in contexts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout * 2 + 1)
    attempts = tuple(results.get(n, TlsAttempt(n, False, detail="no answer in time", tested=False))
                     for n in TLS_VERSIONS)
    unreachable = [a for a in attempts if a.detail.startswith("unreachable")]
    error = unreachable[0].detail if len(unreachable) == len(attempts) else ""
    return TlsFacts(host, port, attempts, error)
