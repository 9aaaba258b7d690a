"""Card login for the service: challenge → card signature → session, and bearer-token authentication.

1. ``challenge(certificate)``: the card's PIV Authentication certificate is checked with ``app.pki.validate``
   (chain to the configured anchors, validity, CRL, key usage); the user is found by the certificate's SHA-256
   fingerprint or, failing that, by the card UUID in it; a single-use random nonce with a short expiry is stored.
2. ``complete(nonce, signature)``: the nonce is consumed atomically (single use, even across processes), the
   certificate is checked again (it may have been revoked meanwhile), and the signature over
   ``login_message(nonce)`` is verified: RSA PKCS#1 v1.5 / SHA-256 or ECDSA P-256 / SHA-256. A random token
   is returned once; only its SHA-256 is stored.
3. ``authenticate(token, urid)``: the session must be live, the user active, the certificate the session was
   opened with not revoked according to the CRLs as they are now, and the role profile (the
   ``NHSD-Session-URID``) must be the user's own.

Revocation while the service runs (see :mod:`app.pki.live_trust`): each process re-reads the CRL files when they
change, so the next login with a revoked certificate is refused, and so is the next request on any session opened
with it; on every reload the sessions of newly revoked certificates are ended in the database (which is all the
processes share). When a CRL has run out and no fresh one has been published, logins and requests are refused with
``revocation-info-stale`` (503), whose text tells IT which file to replace.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from app.errors import AppError, CertificateRejected, RevocationInfoStale, user_text
from app.pki import Status, TrustStore, card_uuid, load_certificate, validate
from app.pki.live_trust import LiveTrust
from app.pki.revocation_view import CertRef, RevocationView
from app.protocol import login_message
from app.service.store import RoleProfile, SessionPrincipal, Store, User

MAX_CERTIFICATE_BYTES = 8192
log = logging.getLogger(__name__)


class AuthError(AppError):
    """A login or authentication failure. ``status`` is 401 or 403; ``reason`` a stable machine-readable code."""

    def __init__(self, status: int, reason: str, message: str, user: User | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.user = user  # set when the caller was authenticated but is still refused (their URID)


@dataclass(frozen=True)
class IssuedChallenge:
    nonce: str
    expires_at: datetime


@dataclass(frozen=True)
class IssuedSession:
    token: str  # shown once; the store keeps its hash
    expires_at: datetime
    user: User


@dataclass(frozen=True)
class Reload:
    """What a reload of the CRLs found: the view now in use, sessions ended, stale authorities, file problems."""

    view: RevocationView
    ended: int
    stale: tuple[RevocationInfoStale, ...]
    errors: tuple[str, ...]


@dataclass(frozen=True)
class Principal:
    user: User
    role: RoleProfile
    token_hash: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


class AuthService:
    def __init__(self, store: Store, trust: TrustStore | LiveTrust, *,
                 challenge_ttl: timedelta = timedelta(seconds=60), session_ttl: timedelta = timedelta(hours=8),
                 clock: Callable[[], datetime] | None = None) -> None:
        """``trust``: a :class:`LiveTrust` (the service: CRLs re-read while it runs) or a fixed ``TrustStore``."""
        self._store = store
        self._trust = trust if isinstance(trust, LiveTrust) else LiveTrust.fixed(trust)
        self._challenge_ttl = challenge_ttl
        self._session_ttl = session_ttl
        self._now = clock or (lambda: datetime.now(UTC))
        self._swept = -1  # the view generation whose revocations have been applied to the sessions table
        self._sweep_lock = threading.Lock()
        self._stale_logged: set[tuple[int, str]] = set()

    @property
    def trust(self) -> LiveTrust:
        return self._trust

    def reload_revocation(self) -> Reload:
        """Re-read the CRLs now and end the sessions of certificates they revoke (SIGHUP's work, the admin
        command's, and each worker's when it sees a new CRL)."""
        now = self._now()
        view = self._trust.reload(now)
        ended = self._end_revoked_sessions(view)
        return Reload(view, ended, tuple(view.stale_authorities(now)), self._trust.errors)

    # --- step 1 ----------------------------------------------------------------------------------------------

    def challenge(self, certificate_b64: str) -> IssuedChallenge:
        cert = self._certificate(certificate_b64, self._view())
        user = self._user_for(cert)
        nonce = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")
        expires = self._now() + self._challenge_ttl
        self._store.create_challenge(nonce, fingerprint(cert), user.id, expires, now=self._now())
        return IssuedChallenge(nonce, expires)

    # --- step 2 ----------------------------------------------------------------------------------------------

    def complete(self, nonce: str, signature_b64: str, certificate_b64: str) -> IssuedSession:
        if not isinstance(nonce, str) or not 16 <= len(nonce) <= 128 or not nonce.isascii():
            raise AuthError(401, "invalid-nonce", "the login nonce is malformed; ask for a new challenge")
        cert = self._certificate(certificate_b64, self._view())
        challenge = self._store.consume_challenge(nonce, now=self._now())
        if challenge is None:
            raise AuthError(401, "nonce-not-valid", "the login challenge is unknown, expired or already used; "
                            "ask for a new one")
        if challenge.cert_fingerprint != fingerprint(cert):
            raise AuthError(401, "certificate-mismatch", "the certificate is not the one the challenge was issued "
                            "for")
        signature = _b64(signature_b64, "signature")
        if not _verify(cert, signature, login_message(nonce)):
            raise AuthError(401, "bad-signature", "the card's signature over the challenge does not verify")
        user = self._store.get_user(challenge.user_id)
        if user is None or not user.active:
            raise AuthError(403, "user-inactive", "this smartcard's user is not active on this service")
        token = secrets.token_urlsafe(32)
        expires = self._now() + self._session_ttl
        ref = CertRef.of(cert)
        self._store.create_session(token_hash(token), user.id, expires, now=self._now(), cert_issuer=ref.issuer,
                                   cert_serial=ref.serial)
        return IssuedSession(token, expires, user)

    # --- every request ---------------------------------------------------------------------------------------

    def authenticate(self, authorization: str | None, urid: str | None) -> Principal:
        if not authorization or not authorization.startswith("Bearer ") or len(authorization) > 512:
            raise AuthError(401, "missing-token", "missing or malformed Authorization: Bearer token; log in")
        hashed = token_hash(authorization[7:].strip())
        found = self._store.session_principal(hashed, urid or "", now=self._now())
        if found is None:
            raise AuthError(401, "session-not-valid", "the session is unknown, expired or revoked, or its user is no "
                            "longer active; log in again")
        self._check_session_certificate(found, hashed)
        user, role = found.user, found.role
        if not urid:
            raise AuthError(403, "missing-urid", "NHSD-Session-URID (the selected role) is required", user)
        if role is None:
            raise AuthError(403, "urid-not-yours", "NHSD-Session-URID names a role profile that is not this "
                            "user's", user)
        return Principal(user, role, hashed)

    def logout(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Bearer "):
            return False
        return self._store.revoke_session(token_hash(authorization[7:].strip()))

    # --- revocation ------------------------------------------------------------------------------------------

    def _view(self) -> RevocationView:
        """The CRLs as they are now (re-read if they changed), their revocations applied to the sessions table."""
        view = self._trust.current(self._now())
        if view.generation != self._swept:
            self._end_revoked_sessions(view)
        return view

    def _end_revoked_sessions(self, view: RevocationView) -> int:
        with self._sweep_lock:
            if view.generation == self._swept:
                return 0
            now = self._now()
            doomed = [ref for ref in self._store.live_session_certificates(now=now)
                      if isinstance(view.problem(CertRef(*ref), now), CertificateRejected)]
            ended = self._store.end_sessions_for_certificates(doomed) if doomed else 0
            self._swept = view.generation
        if ended:
            log.info("ended %d session(s) opened with a certificate that is now revoked", ended)
        return ended

    def _check_session_certificate(self, found: SessionPrincipal, hashed: str) -> None:
        view = self._view()
        if not found.cert_issuer:
            if view.store.require_revocation:  # deny by default: nothing to check this session against
                raise AuthError(401, "session-without-certificate", "this session was not opened with a smartcard "
                                "certificate, so it cannot be checked for revocation; log in again")
            return
        problem = view.problem(CertRef(found.cert_issuer, found.cert_serial), self._now())
        if isinstance(problem, RevocationInfoStale):
            raise self._stale(problem, view)
        if problem is not None:
            self._store.revoke_session(hashed)
            raise AuthError(401, "certificate-revoked", "the smartcard certificate this session was opened with "
                            f"has been revoked ({problem.detail}); the session has ended", found.user)

    def _stale(self, problem: RevocationInfoStale, view: RevocationView) -> AuthError:
        if (view.generation, problem.authority) not in self._stale_logged:  # once per reload, not per request
            self._stale_logged = {k for k in self._stale_logged if k[0] == view.generation}
            self._stale_logged.add((view.generation, problem.authority))
            log.warning("%s", user_text(problem))
        return AuthError(503, "revocation-info-stale", user_text(problem).rstrip("."))  # like the other messages

    # --- helpers ---------------------------------------------------------------------------------------------

    def _certificate(self, certificate_b64: str, view: RevocationView) -> x509.Certificate:
        der = _b64(certificate_b64, "certificate")
        if len(der) > MAX_CERTIFICATE_BYTES:
            raise AuthError(401, "malformed-certificate", "the certificate is implausibly large")
        try:
            cert = load_certificate(der)
        except CertificateRejected as exc:
            raise AuthError(401, "malformed-certificate", f"the certificate cannot be read: {exc.detail}") from exc
        verdict = validate(cert, view.store, now=self._now())
        if verdict.status is Status.UNTRUSTED_ISSUER and (stale := view.stale(CertRef.of(cert).issuer, self._now())):
            raise self._stale(stale, view)  # the service's revocation information is at fault, not the card
        if not verdict.ok:
            raise AuthError(403, f"certificate-{verdict.status.value.replace('_', '-')}",
                            f"the card's certificate is {verdict.status.value.replace('_', ' ')}: {verdict.detail}")
        return cert

    def _user_for(self, cert: x509.Certificate) -> User:
        user = self._store.user_by_cert_fingerprint(fingerprint(cert))
        if user is None:
            uuid = card_uuid(cert)
            user = self._store.user_by_card_uuid(str(uuid).lower()) if uuid else None
        if user is None:
            raise AuthError(401, "unknown-card", "this smartcard is not registered with the service; ask your "
                            "registration authority to add it")
        if not user.active:
            raise AuthError(403, "user-inactive", "this smartcard's user is not active on this service")
        return user


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str) or len(value) > 16384:
        raise AuthError(401, f"malformed-{what}", f"the {what} must be base64 text")
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_" if "-" in value or "_" in value
                                else None, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AuthError(401, f"malformed-{what}", f"the {what} is not valid base64") from exc


def _verify(cert: x509.Certificate, signature: bytes, message: bytes) -> bool:
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True

