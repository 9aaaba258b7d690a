"""What both ends of the connection agree on: the login protocol's constants, resource paths and header names.

Imported by the service (``app.service``) and its client (``app.client``) alike, so neither imports the other.
"""

from __future__ import annotations

from urllib.parse import urlsplit

LOGIN_CONTEXT = b"SpineDesk-Login-v2\x00"
RENEWAL_CONTEXT = b"SpineDesk-Renewal-v1\x00"  # the card's current key consents to a renewal (never a login)
AUTH_CHALLENGE_PATH = "/auth/challenge"
AUTH_SESSION_PATH = "/auth/session"
AUTH_ROLE_PATH = "/auth/session/role"  # binds the session's role profile, once
CARD_RENEWAL_PATH = "/card/renewal"  # POST: the session's certificate + a CSR -> the renewed certificate
CARD_RENEWAL_CHECK_PATH = "/card/renewal/check"  # may the session's certificate be renewed now
CARD_RENEWAL_CONFIRM_PATH = "/card/renewal/confirm"  # the card stores the new certificate: revoke the old one
CARD_UNBLOCK_PATH = "/card/unblock"  # a Local Smartcard Unlocker asks for a card's unblock code
PDS_BASE = "/personal-demographics/FHIR/R4"
SCR_BASE = "/summary-care-record/FHIR/R4"
FLAGS_BASE = "/patient-flags/FHIR/R4"
CPIS_BASE = "/cpis/FHIR/R4"

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"

HEADER_REQUEST_ID = "X-Request-ID"
HEADER_CORRELATION_ID = "X-Correlation-ID"
HEADER_URID = "NHSD-Session-URID"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_audience(url: str) -> str:
    """A service's identity as both ends write it: its public base URL, scheme and host in lower case, the port
    only when it is not the scheme's default, no trailing slash, no query or fragment. ``ValueError`` if ``url`` is
    not an absolute http(s) URL."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    port = parts.port
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def login_message(nonce: str, audience: str) -> bytes:
    """What the card signs: a fixed context (never a bare value another protocol might sign too), the audience
    (the canonical base URL of the service the signature is for, so that no other service can relay it) and the
    nonce, each field ended by a NUL (neither may contain one)."""
    audience = canonical_audience(audience)
    if "\x00" in nonce or "\x00" in audience:
        raise ValueError("a login nonce or audience may not contain NUL")
    return LOGIN_CONTEXT + audience.encode("utf-8") + b"\x00" + nonce.encode("ascii")


def renewal_message(nonce: str, audience: str) -> bytes:
    """What the card's CURRENT key signs before it is replaced, to show the service that the card itself (not
    only a session's bearer token) asks for a renewal: like :func:`login_message` under its own context, so a
    login signature is never a renewal's and a renewal's never logs in."""
    return RENEWAL_CONTEXT + login_message(nonce, audience)[len(LOGIN_CONTEXT):]
