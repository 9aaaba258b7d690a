"""Card login for the service: challenge → card signature → session (bound to one role), and bearer tokens.

1. ``challenge(certificate)``: the certificate is only read (size, DER); a single-use random nonce with a short
   expiry is stored with its fingerprint, and returned with the service's **audience** (its canonical public base
   URL). Nothing else is checked yet and no user is looked up, so the answer is the same for a good certificate
   and for an unknown, untrusted, expired, revoked or deactivated one: the challenge tells a caller nothing.
2. ``complete(nonce, signature, certificate, urid)``: the nonce is consumed atomically (single use, even across
   processes) and the signature over ``login_message(nonce, audience)`` is verified with THIS service's audience
   (RSA PKCS#1 v1.5 / SHA-256 or ECDSA P-256 / SHA-256), so a signature a user's client made for another
   service cannot be relayed here. Only then is the certificate validated (chain to the configured anchors,
   validity, CRL, key usage) and the user looked up: by the certificate's SHA-256 fingerprint (registered with
   ``--cert``), else by the identity its trust anchor's policy names (the 12-digit NHS user UUID in the subject's
   serialNumber or UID: a renewed or replacement card keeps it, so it logs in without being registered again),
   else by the card UUID in a ``urn:uuid`` subject alternative name (training cards). A certificate whose anchor
   names an NHS user UUID attribute it lacks (or carries malformed) is refused unless registered by fingerprint.
   Every refusal at this point is one generic 403 ``login-refused``; the detailed reason goes to the service's
   log. A random token is returned once; only its SHA-256 is stored. ``urid``, when given, binds the session to
   that role profile at once. The login's audit record names how the certificate was matched (and the UUID).
3. ``select_role(token, urid)``: binds a session that has no role yet to one of its user's role profiles, once.
   A role cannot be changed on a live session: changing role means logging in again.
4. ``authenticate(token, urid)``: the session must be live, the user active, the certificate the session was
   opened with not revoked according to the CRLs as they are now, and the role profile (the
   ``NHSD-Session-URID``) must be the one the session is bound to (and still the user's).

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

from app.error_text import user_text
from app.errors import AppError, CertificateIdentityMissing, CertificateRejected, RevocationInfoStale
from app.pki import (
    IdentityAttribute,
    IdentityPolicy,
    Status,
    TrustStore,
    Verdict,
    card_uuid,
    load_certificate,
    validate,
)
from app.pki.identity import subject_identity
from app.pki.live_trust import LiveTrust
from app.pki.revocation_view import CertRef, RevocationView
from app.protocol import AUTH_ROLE_PATH, canonical_audience, login_message, renewal_message
from app.service.store import RoleProfile, SessionPrincipal, Store, User

MAX_CERTIFICATE_BYTES = 8192
MAX_URID_LENGTH = 64
LOGIN_REFUSED = ("this smartcard cannot log in to this service; if it should, ask your registration authority "
                 "(the service's log names the reason)")
log = logging.getLogger(__name__)
# Refusals told to the caller in words: they concern only the certificate (its holder can read it), never whether
# or to whom anything is registered; every other refusal is the one generic LOGIN_REFUSED.
_SAID_TO_HOLDER = frozenset({"certificate-without-identity", "certificate-identity-unusable"})


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
    audience: str  # the service the card's signature must name


@dataclass(frozen=True)
class LoginIdentity:
    """How a login certificate was matched to its user, for the login's audit record."""

    matched_by: str  # "fingerprint", "nhs-uuid" or "card-uuid"
    attribute: str  # the identity attribute of the certificate's trust anchor (IdentityAttribute value)
    nhs_uuid: str | None  # the NHS user UUID the certificate carries there (None: none, or a san-uuid anchor)
    card_uuid: str | None  # the card UUID in its subject alternative name, if any
    cert_issuer: str
    cert_serial: str  # lower-case hex

    def audit_details(self) -> dict[str, object]:
        details: dict[str, object] = {"matched_by": self.matched_by, "identity_attribute": self.attribute,
                                      "cert_issuer": self.cert_issuer, "cert_serial": self.cert_serial}
        if self.nhs_uuid:
            details["nhs_uuid"] = self.nhs_uuid
        if self.card_uuid:
            details["card_uuid"] = self.card_uuid
        return details


@dataclass(frozen=True)
class IssuedSession:
    token: str  # shown once; the store keeps its hash
    expires_at: datetime
    user: User
    role: RoleProfile | None  # the role the session is bound to; None until one is selected
    identity: LoginIdentity | None = None  # how the certificate was matched to the user (the login's audit)


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
    def __init__(self, store: Store, trust: TrustStore | LiveTrust, *, audience: str,
                 challenge_ttl: timedelta = timedelta(seconds=60), session_ttl: timedelta = timedelta(hours=8),
                 clock: Callable[[], datetime] | None = None, identity: IdentityPolicy | None = None) -> None:
        """``trust``: a :class:`LiveTrust` (the service: CRLs re-read while it runs) or a fixed ``TrustStore``;
        ``audience``: the service's public base URL (what clients reach it at), named in every login signature;
        empty: this service takes no logins (only tokens, and CRL reloads); ``identity``: where certificates under
        each anchor name their holder (default: the NHS user UUID in the subject's serialNumber)."""
        self._store = store
        self._identity = identity or IdentityPolicy()
        self.audience = canonical_audience(audience) if audience else ""
        self._trust = trust if isinstance(trust, LiveTrust) else LiveTrust.fixed(trust)
        self._challenge_ttl = challenge_ttl
        self._session_ttl = session_ttl
        self._now = clock or (lambda: datetime.now(UTC))
        self._swept = -1  # the view generation whose revocations have been applied to the sessions table
        self._sweep_lock = threading.Lock()
        self._stale_logged: set[tuple[int, str]] = set()
        # called with the certificate of every successful login (training: a renewed card's first login revokes
        # the certificate it replaced); a failure there is logged, never a refused login
        self.on_login: Callable[[x509.Certificate], None] | None = None

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

    def challenge(self, certificate_b64: str, ttl: timedelta | None = None) -> IssuedChallenge:
        """The same answer for every readable certificate: no trust, revocation or user look-up happens here.
        ``ttl``: how long the nonce stays usable (default: the login challenge's)."""
        cert = _read_certificate(certificate_b64)
        if not self.audience:
            raise AuthError(503, "no-audience", "this service has no public base URL configured, so it cannot take "
                            "logins; ask IT to set it")
        nonce = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")
        expires = self._now() + (ttl or self._challenge_ttl)
        self._store.create_challenge(nonce, fingerprint(cert), expires, now=self._now())
        return IssuedChallenge(nonce, expires, self.audience)

    # --- step 2 ----------------------------------------------------------------------------------------------

    def complete(self, nonce: str, signature_b64: str, certificate_b64: str,
                 urid: str | None = None) -> IssuedSession:
        if not isinstance(nonce, str) or not 16 <= len(nonce) <= 128 or not nonce.isascii() or "\x00" in nonce:
            raise AuthError(401, "invalid-nonce", "the login nonce is malformed; ask for a new challenge")
        if urid is not None and not _plausible_urid(urid):
            raise AuthError(401, "malformed-urid", "the role profile (urid) must be short text")
        cert = _read_certificate(certificate_b64)
        challenge = self._store.consume_challenge(nonce, now=self._now())
        if challenge is None:
            raise AuthError(401, "nonce-not-valid", "the login challenge is unknown, expired or already used; "
                            "ask for a new one")
        if challenge.cert_fingerprint != fingerprint(cert):
            raise AuthError(401, "certificate-mismatch", "the certificate is not the one the challenge was issued "
                            "for")
        signature = _b64(signature_b64, "signature")
        if not _verify(cert, signature, login_message(nonce, self.audience)):
            raise AuthError(401, "bad-signature", "the card's signature over the challenge does not verify (was "
                            "it made for another service?)")
        # The caller holds the card's key. Only now is it told whether the card may log in, in one message.
        try:
            verdict = self._certificate(cert, self._view())
            user, identity = self._user_for(cert, self._identity.attribute_for(verdict.anchor))
        except AuthError as exc:
            if exc.status == 503:  # the service's revocation information is at fault, not the card
                raise
            log.warning("login refused (%s): %s; certificate %s", exc.reason, exc.message, fingerprint(cert))
            if exc.reason in _SAID_TO_HOLDER:  # about the certificate alone, which its holder can read anyway
                raise AuthError(403, "login-refused", f"this smartcard cannot log in to this service: {exc.message}; "
                                "ask your registration authority to renew the card's certificates") from exc
            raise AuthError(403, "login-refused", LOGIN_REFUSED) from exc
        role = None
        if urid is not None:
            role = next((r for r in user.role_profiles if r.id == urid), None)
            if role is None:
                raise AuthError(403, "urid-not-yours", "the role profile (urid) named at login is not one of "
                                "this user's", user)
        if self.on_login is not None:
            try:
                self.on_login(cert)
            except Exception:
                log.exception("the login hook failed for certificate %s", fingerprint(cert))
        token = secrets.token_urlsafe(32)
        expires = self._now() + self._session_ttl
        ref = CertRef.of(cert)
        self._store.create_session(token_hash(token), user.id, expires, now=self._now(), cert_issuer=ref.issuer,
                                   cert_serial=ref.serial, role_profile_id=role.id if role else "")
        log.info("session opened: user %s (matched by %s), role profile %s", user.id, identity.matched_by,
                 role.id if role else "(to be selected)")
        return IssuedSession(token, expires, user, role, identity)

    # --- step 3 (unless the role was named at step 2) ---------------------------------------------------------

    def select_role(self, authorization: str | None, urid: object) -> Principal:
        """Bind the session to ``urid``, once. Selecting the role it is already bound to again is harmless (a
        retry); any other role is refused: changing role means logging in again."""
        hashed = self._bearer(authorization)
        found = self.session_of(authorization)
        if not isinstance(urid, str) or not _plausible_urid(urid):
            raise AuthError(403, "missing-urid", "name the role profile to select (urid)", found.user)
        bound = self._store.bind_session_role(hashed, urid, now=self._now())
        if bound is None:
            raise AuthError(401, "session-not-valid", "the session is unknown, expired or revoked; log in again")
        if bound == "":
            raise AuthError(403, "urid-not-yours", "the role profile (urid) is not one of this user's", found.user)
        if bound != urid:
            raise AuthError(403, "role-already-selected", "this session's role is already selected; to work in "
                            "another role, log in again", found.user)
        log.info("role selected: user %s, role profile %s", found.user.id, urid)
        return self.authenticate(authorization, urid)

    # --- card self-service (a live session, whatever its role) ---------------------------------------------

    def session_of(self, authorization: str | None) -> SessionPrincipal:
        """The live session behind a bearer token, its certificate not revoked; no role is needed (renewing one's
        own card is not an activity of a role)."""
        hashed = self._bearer(authorization)
        found = self._store.session_principal(hashed, "", now=self._now())
        if found is None:
            raise AuthError(401, "session-not-valid", "the session is unknown, expired or revoked, or its user is no "
                            "longer active; log in again")
        self._check_session_certificate(found, hashed)
        return found

    def certificate_verdict(self, cert: x509.Certificate) -> Verdict:
        """How the login checks see ``cert`` now (chain, validity, revocation, key usage)."""
        return validate(cert, self._view().store, now=self._now())

    def card_consents(self, cert: x509.Certificate, proof: object) -> bool:
        """Did ``cert``'s key (the card, not only a session's bearer token) sign ``renewal_message`` over a nonce
        this service issued for ``cert`` (``{"nonce", "signature"}``)? The nonce is used up either way."""
        if not isinstance(proof, dict):
            return False
        nonce, signature = proof.get("nonce"), proof.get("signature")
        if not (isinstance(nonce, str) and 16 <= len(nonce) <= 128 and nonce.isascii() and "\x00" not in nonce
                and isinstance(signature, str) and self.audience):
            return False
        challenge = self._store.consume_challenge(nonce, now=self._now())
        if challenge is None or challenge.cert_fingerprint != fingerprint(cert):
            return False
        try:
            return _verify(cert, _b64(signature, "signature"), renewal_message(nonce, self.audience))
        except AuthError:
            return False

    def users_named_by(self, cert: x509.Certificate) -> list[str]:
        """Every user ``cert`` names, whichever way the service may know them: its registered fingerprint, an NHS
        user UUID in its subject (the anchor's attribute, serialNumber or UID), its card UUID; the one a login would
        pick first. Nothing is validated here: this answers "whose card is it?", not "may it log in?"."""
        found = [self._store.user_by_cert_fingerprint(fingerprint(cert))]
        preferred = self._identity.attribute_for(self.certificate_verdict(cert).anchor)
        for attribute in dict.fromkeys((preferred, IdentityAttribute.SERIAL_NUMBER, IdentityAttribute.UID)):
            if attribute is IdentityAttribute.SAN_UUID:
                continue
            try:
                named = subject_identity(cert, attribute)
            except CertificateIdentityMissing:
                continue
            if named is not None:
                found.append(self._store.user_by_nhs_uuid(named))
        if (san := card_uuid(cert)) is not None:
            found.append(self._store.user_by_card_uuid(str(san).lower()))
        return list(dict.fromkeys(user.id for user in found if user is not None))

    # --- every request ---------------------------------------------------------------------------------------

    def authenticate(self, authorization: str | None, urid: str | None) -> Principal:
        hashed = self._bearer(authorization)
        found = self._store.session_principal(hashed, urid or "", now=self._now())
        if found is None:
            raise AuthError(401, "session-not-valid", "the session is unknown, expired or revoked, or its user is no "
                            "longer active; log in again")
        self._check_session_certificate(found, hashed)
        user, role = found.user, found.role
        if not urid:
            raise AuthError(403, "missing-urid", "NHSD-Session-URID (the selected role) is required", user)
        if not found.session_role:
            raise AuthError(403, "role-not-selected", f"this session has no role yet: select one (POST "
                            f"{AUTH_ROLE_PATH}) before anything else", user)
        if urid != found.session_role:
            raise AuthError(403, "urid-not-session-role", "NHSD-Session-URID names a role other than the one "
                            "selected for this session; to work in another role, log in again", user)
        if role is None:
            raise AuthError(403, "urid-not-yours", "NHSD-Session-URID names a role profile that is not this "
                            "user's", user)
        return Principal(user, role, hashed)

    @staticmethod
    def _bearer(authorization: str | None) -> str:
        if not authorization or not authorization.startswith("Bearer ") or len(authorization) > 512:
            raise AuthError(401, "missing-token", "missing or malformed Authorization: Bearer token; log in")
        return token_hash(authorization[7:].strip())

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

    def _certificate(self, cert: x509.Certificate, view: RevocationView) -> Verdict:
        verdict = validate(cert, view.store, now=self._now())
        if verdict.status is Status.UNTRUSTED_ISSUER and (stale := view.stale(CertRef.of(cert).issuer, self._now())):
            raise self._stale(stale, view)  # the service's revocation information is at fault, not the card
        if not verdict.ok:
            raise AuthError(403, f"certificate-{verdict.status.value.replace('_', '-')}",
                            f"the card's certificate is {verdict.status.value.replace('_', ' ')}: {verdict.detail}")
        return verdict

    def _user_for(self, cert: x509.Certificate, attribute: IdentityAttribute) -> tuple[User, LoginIdentity]:
        """The user a VALIDATED certificate belongs to: by fingerprint, else by the identity ``attribute`` (its
        anchor's) names, else by the card UUID in its subject alternative name."""
        ref = CertRef.of(cert)
        san = card_uuid(cert)
        card = str(san).lower() if san else None
        problem: CertificateIdentityMissing | None = None
        try:
            named = subject_identity(cert, attribute)
        except CertificateIdentityMissing as exc:  # present but unusable: only an explicit registration may pass
            named, problem = None, exc
        nhs = named if attribute is not IdentityAttribute.SAN_UUID else None

        def found(user: User | None, matched_by: str) -> tuple[User, LoginIdentity] | None:
            if user is None:
                return None
            if not user.active:
                raise AuthError(403, "user-inactive", "this smartcard's user is not active on this service")
            return user, LoginIdentity(matched_by, attribute.value, nhs, card, ref.issuer, ref.serial)

        if hit := found(self._store.user_by_cert_fingerprint(fingerprint(cert)), "fingerprint"):
            return hit
        if problem is not None:
            raise AuthError(401, "certificate-identity-unusable", f"its certificate {problem.problem}")
        if nhs is not None and (hit := found(self._store.user_by_nhs_uuid(nhs), "nhs-uuid")):
            return hit
        if card is not None and (hit := found(self._store.user_by_card_uuid(card), "card-uuid")):
            return hit
        if named is None and card is None:  # nothing to look a user up by but the (unregistered) fingerprint
            raise AuthError(401, "certificate-without-identity", f"its certificate has no {attribute.label}, "
                            "which is how this service identifies the users of its issuer")
        raise AuthError(401, "unknown-card", "this smartcard is not registered with the service"
                        + (f" (NHS user UUID {nhs})" if nhs else f" (card UUID {card})" if card else "")
                        + "; ask your registration authority to add it")


def _read_certificate(certificate_b64: object) -> x509.Certificate:
    """Read, nothing more: any certificate that parses gets the same treatment until its signature verified."""
    der = _b64(certificate_b64, "certificate")
    if len(der) > MAX_CERTIFICATE_BYTES:
        raise AuthError(401, "malformed-certificate", "the certificate is implausibly large")
    try:
        return load_certificate(der)
    except CertificateRejected as exc:
        raise AuthError(401, "malformed-certificate", f"the certificate cannot be read: {exc.detail}") from exc


def _plausible_urid(urid: object) -> bool:
    return isinstance(urid, str) and 0 < len(urid) <= MAX_URID_LENGTH and urid.isprintable()


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

