"""Card self-service: certificate renewal (POST /card/renewal/check, /card/renewal, /card/renewal/confirm) and the
service-authorised unblock (POST /card/unblock). Every call is audited, refusals too; no PIN or PUK is ever logged
or put in the audit trail.

Renewal needs a live session (any role, or none yet) opened with the certificate being renewed, which the client
sends again: the session remembers only its issuer and serial. That certificate must still pass the login checks
(chain, validity, revocation, key usage) and be within its renewal window (``RENEWAL_WINDOW_DAYS`` before expiry).
The card itself must ask: the check returns a single-use nonce which the card's CURRENT key signs
(``renewal_message``) before the card replaces it, sent as ``proof``, so a session's bearer token alone never becomes
a certificate. The request (PKCS#10) must be signed by its own key, an RSA key of 2048 to 4096 bits or an EC
P-256 key that is not the old one, for exactly the old certificate's subject. The training CA issues the new
certificate with the old one's subject and alternative names; the old one is revoked (reason superseded) when the
client confirms that the card stores the new one, or else at the new certificate's first login
(``CardAdmin.on_login``). At most one renewed certificate stands: a new renewal revokes the certificates earlier
renewals of the same certificate issued, and a confirmation revokes any other.

Unblock needs a role holding the operation ``card.unblock`` (the Local Smartcard Unlocker activity in
``resources/rbac.json``); the service releases the training card's PUK recorded when the card was issued, for a
card named by its certificate, never for the caller's own card (known by fingerprint, NHS user UUID or card
UUID). A production service has no CA or PUKs and answers 403 naming the registration authority.
"""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from app.errors import PkiError
from app.pki import card_uuid
from app.pki.csr import check_csr
from app.pki.revocation_view import CertRef
from app.protocol import (
    CARD_RENEWAL_CHECK_PATH,
    CARD_RENEWAL_CONFIRM_PATH,
    CARD_RENEWAL_PATH,
    CARD_UNBLOCK_PATH,
    HEADER_REQUEST_ID,
)
from app.service.core.auth import AuthError
from app.service.core.auth_routes import _body
from app.service.core.card_admin import PRODUCTION_REFUSAL, RENEWAL_WINDOW, RENEWED_DAYS, CardAdmin
from app.service.core.context import ServiceContext, access_denied
from app.service.core.http import Request, Response
from app.service.core.outcome import FhirError
from app.service.core.routes import Route
from app.service.store import AuditEntry, SessionPrincipal
from app.service.store.audit_chain import safe_text

MAX_DER = 8192
RSA_EXPONENT = 65537  # the only RSA public exponent accepted for a renewed key (as the training CA issues)
# How long the renewal nonce stays usable: it is signed before the card generates its new key and spent after, and a
# real card can take a minute or more to generate an RSA key.
RENEWAL_PROOF_TTL = timedelta(minutes=10)
NO_STORE = [("cache-control", "no-store")]


class _Renewal:
    """One renewal call: its session, the audit record it leaves whatever happens."""

    def __init__(self, ctx: ServiceContext, request: Request, action: str) -> None:
        self.ctx, self.request, self.action = ctx, request, action
        try:
            self.found: SessionPrincipal = ctx.auth.session_of(request.header("authorization"))
        except AuthError as exc:
            if exc.user is not None:
                self._write(exc.user.id, "", str(exc.status), {"reason": exc.reason})
            raise access_denied(exc) from exc
        self.request_id = ctx.request_id(request)
        self.details: dict[str, Any] = {}

    def audit(self, outcome: str) -> None:
        self._write(self.found.user.id, self.found.session_role, outcome, self.details)

    def _write(self, user_id: str, role: str, outcome: str, details: dict[str, Any]) -> None:
        entry = AuditEntry(user_id=user_id, role_profile_id=role, org="", action=self.action, nhs_number=None,
                           request_id=safe_text(self.request.header(HEADER_REQUEST_ID) or ""), outcome=outcome,
                           details=dict(details))
        self.ctx.record(entry)

    def run(self, work: Any) -> Response:
        try:
            response: Response = work(self)
        except FhirError as exc:
            self.details["error"] = exc.spine_code
            self.audit(str(exc.status))
            raise
        except Exception as exc:
            self.details["error"] = type(exc).__name__
            self.audit("500")
            raise
        self.audit(str(response.status))
        return response

    # --- checks shared by the three calls -----------------------------------------------------------------

    def admin(self) -> CardAdmin:
        admin: CardAdmin | None = self.ctx.card_admin
        if admin is None:
            self.details["reason"] = "production: no training CA"
            raise FhirError("ACCESS_DENIED", PRODUCTION_REFUSAL, status=403)
        return admin

    def session_certificate(self, body: dict[str, object]) -> x509.Certificate:
        """The certificate the session was opened with (sent again by the client), still passing the login checks."""
        cert = _certificate(body.get("certificate"), "certificate")
        ref = CertRef.of(cert)
        if (ref.issuer, ref.serial) != (self.found.cert_issuer, self.found.cert_serial):
            self.details["reason"] = "not the session's certificate"
            raise FhirError("ACCESS_DENIED", "the certificate is not the one this session was opened with",
                            status=403)
        self.details["serial"] = ref.serial
        verdict = self.ctx.auth.certificate_verdict(cert)
        if not verdict.ok:
            self.details["reason"] = f"certificate {verdict.status.value}"
            raise FhirError("ACCESS_DENIED", f"the session's certificate no longer passes the login checks "
                            f"({verdict.status.value.replace('_', ' ')}): {verdict.detail}", status=403)
        return cert


def _certificate(value: object, name: str) -> x509.Certificate:
    der = _der(value, name)
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise FhirError("INVALID_VALUE", f"'{name}' is not a DER certificate", expression=name) from exc


def _der(value: object, name: str) -> bytes:
    if not isinstance(value, str) or not value or len(value) > MAX_DER * 2:
        raise FhirError("INVALID_VALUE", f"'{name}' must be base64 DER", expression=name)
    try:
        der = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FhirError("INVALID_VALUE", f"'{name}' is not valid base64", expression=name) from exc
    if len(der) > MAX_DER:
        raise FhirError("INVALID_VALUE", f"'{name}' is implausibly large", expression=name)
    return der


def _window_opens(cert: x509.Certificate) -> str:
    return f"{cert.not_valid_after_utc - RENEWAL_WINDOW:%Y-%m-%d}"


def _in_window(ctx: ServiceContext, cert: x509.Certificate, call: _Renewal) -> None:
    if ctx.now() < cert.not_valid_after_utc - RENEWAL_WINDOW:
        call.details["reason"] = "not in renewal window"
        raise FhirError("PRECONDITION_FAILED", f"this certificate can be renewed from {_window_opens(cert)} "
                        f"({RENEWAL_WINDOW.days} days before it expires on {cert.not_valid_after_utc:%Y-%m-%d})",
                        status=409)


def _window(cert: x509.Certificate) -> dict[str, object]:
    return {"serial": format(cert.serial_number, "x"), "not_after": cert.not_valid_after_utc.isoformat(),
            "renew_from": (cert.not_valid_after_utc - RENEWAL_WINDOW).isoformat()}


# --- renewal -------------------------------------------------------------------------------------------------


def renewal_check(ctx: ServiceContext, request: Request) -> Response:
    """May the session's certificate be renewed now? Asked before the card's key is touched."""
    def work(call: _Renewal) -> Response:
        call.admin()
        body = _body(request)
        cert = call.session_certificate(body)
        _in_window(ctx, cert, call)
        try:  # the nonce the card's current key signs (renewal_message) before the card replaces it
            issued = ctx.auth.challenge(str(body["certificate"]), ttl=RENEWAL_PROOF_TTL)
        except AuthError as exc:
            call.details["reason"] = exc.reason
            raise FhirError("SERVICE_UNAVAILABLE", exc.message, status=503) from exc
        return Response.json(200, {**_window(cert), "nonce": issued.nonce, "audience": issued.audience},
                             content_type="application/json", headers=NO_STORE)

    return _Renewal(ctx, request, "card.renewal.check").run(work)


def renew(ctx: ServiceContext, request: Request) -> Response:
    def work(call: _Renewal) -> Response:
        admin = call.admin()
        body = _body(request)
        old = call.session_certificate(body)
        _in_window(ctx, old, call)
        if not ctx.auth.card_consents(old, body.get("proof")):
            call.details["reason"] = "no proof from the card's current key"
            raise FhirError("ACCESS_DENIED", "the renewal must be signed by the card's current key (over the nonce "
                            f"from {CARD_RENEWAL_CHECK_PATH}, used once): a session alone cannot renew a card",
                            status=403)
        try:
            csr = check_csr(_der(body.get("csr"), "csr"))
        except ValueError as exc:
            call.details["reason"] = "bad request signature"
            raise FhirError("INVALID_VALUE", str(exc), expression="csr") from exc
        key = csr.public_key()
        if not ((isinstance(key, rsa.RSAPublicKey) and 2048 <= key.key_size <= 4096
                 and key.public_numbers().e == RSA_EXPONENT)
                or (isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1))):
            call.details["reason"] = "key type"
            raise FhirError("INVALID_VALUE", "the new key must be RSA (2048 to 4096 bits, public exponent 65537) or "
                            "EC P-256", expression="csr")
        if key == old.public_key():
            call.details["reason"] = "same key"
            raise FhirError("INVALID_VALUE", "the request names the old key; the card must generate a new one",
                            expression="csr")
        if csr.subject != old.subject:
            call.details["reason"] = "subject differs"
            raise FhirError("INVALID_VALUE", "the request's subject is not the certificate's: a renewal keeps the "
                            "holder's identity", expression="csr")
        if old.issuer != admin.ca.issuing.subject:
            call.details["reason"] = "not issued by the training CA"
            raise FhirError("ACCESS_DENIED", "this certificate was not issued by this service's training CA, so "
                            "it cannot renew it; ask your registration authority", status=403)
        if superseded := admin.supersede(old.serial_number):
            call.details["superseded"] = [format(serial, "x") for serial in superseded]
        try:
            new = admin.ca.renew_card_certificate(old, key, days=RENEWED_DAYS)
        except PkiError as exc:
            call.details["reason"] = "CA refused"
            raise FhirError("INVALID_VALUE", str(exc)) from exc
        admin.records.record_renewal(new.serial_number, old.serial_number, call.found.user.id)
        call.details["new_serial"] = format(new.serial_number, "x")
        der = new.public_bytes(serialization.Encoding.DER)
        return Response.json(201, {"certificate": base64.b64encode(der).decode("ascii"), **_window(new)},
                             content_type="application/json", headers=NO_STORE)

    return _Renewal(ctx, request, "card.renewal.issue").run(work)


def confirm(ctx: ServiceContext, request: Request) -> Response:
    """The card stores the new certificate: revoke the session's (old) one."""
    def work(call: _Renewal) -> Response:
        admin = call.admin()
        new = _certificate(_body(request).get("certificate"), "certificate")
        pending = admin.records.pending_renewal(new.serial_number)
        if pending is None or format(pending.old_serial, "x") != call.found.cert_serial \
                or new.issuer != admin.ca.issuing.subject:
            call.details["reason"] = "no such renewal for this session"
            raise FhirError("INVALID_VALUE", "the certificate is not one renewed for this session's certificate",
                            expression="certificate")
        admin.settle(pending)
        call.details.update(old_serial=format(pending.old_serial, "x"), new_serial=format(new.serial_number, "x"))
        return Response.json(200, {"revoked": format(pending.old_serial, "x")}, content_type="application/json",
                             headers=NO_STORE)

    return _Renewal(ctx, request, "card.renewal.confirm").run(work)


# --- unblock -------------------------------------------------------------------------------------------------


def unblock(ctx: ServiceContext, request: Request) -> Response:
    call = ctx.authorise(request, "card.unblock")

    def work(details: Any) -> Response:
        admin: CardAdmin | None = ctx.card_admin
        if admin is None:
            details["reason"] = "production: no training records"
            raise FhirError("ACCESS_DENIED", PRODUCTION_REFUSAL, status=403)
        target = _certificate(_body(request).get("certificate"), "certificate")
        uuid = card_uuid(target)
        names = target.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        details.update(card_uuid=str(uuid) if uuid else None, card_serial=format(target.serial_number, "x"),
                       card_holder=safe_text(str(names[0].value)) if names else None)
        try:
            target.verify_directly_issued_by(admin.ca.issuing)
        except (ValueError, TypeError, InvalidSignature) as exc:
            details["reason"] = "not a training card"
            raise FhirError("INVALID_VALUE", "this card was not issued by this service's training CA; its "
                            "registration authority unlocks it", expression="certificate") from exc
        verdict = ctx.auth.certificate_verdict(target)
        if not verdict.ok:  # a revoked or expired card is replaced, not unblocked
            details["reason"] = f"certificate {verdict.status.value}"
            raise FhirError("ACCESS_DENIED", f"this card's certificate is {verdict.status.value.replace('_', ' ')}, "
                            "so unblocking it would not let it log in; its holder needs a new card from the "
                            "registration authority", status=403)
        holders = ctx.auth.users_named_by(target)  # by fingerprint, NHS user UUID or card UUID, as logins do
        details["card_user"] = holders[0] if holders else None
        if call.principal.user.id in holders:
            details["reason"] = "own card"
            raise FhirError("ACCESS_DENIED", "nobody may unblock their own smartcard; ask another Local Smartcard "
                            "Unlocker", status=403)
        if not holders:
            details["reason"] = "card not registered"
            raise FhirError("RESOURCE_NOT_FOUND", "this card is not registered to anyone on this service",
                            status=404)
        org = call.principal.role.org_ods  # a Local Smartcard Unlocker acts for their own organisation's people
        if not any(profile.org_ods == org for user_id in holders if (user := ctx.store.get_user(user_id))
                   for profile in user.role_profiles):
            details["reason"] = "another organisation's user"
            raise FhirError("ACCESS_DENIED", f"this card's holder has no role at {org}, the organisation this "
                            "role unblocks cards for; ask an unlocker at their organisation", status=403)
        code = admin.records.unblock_code(uuid) if uuid else None
        if code is None:
            details["reason"] = "no unblock code recorded"
            raise FhirError("RESOURCE_NOT_FOUND", "no unblock code is recorded for this card", status=404)
        return Response.json(200, {"unblock_code": code}, content_type="application/json", headers=NO_STORE)

    return ctx.audited(call, "card.unblock", None, work)


ROUTES: tuple[Route, ...] = (
    ("POST", CARD_RENEWAL_CHECK_PATH, renewal_check),
    ("POST", CARD_RENEWAL_PATH, renew),
    ("POST", CARD_RENEWAL_CONFIRM_PATH, confirm),
    ("POST", CARD_UNBLOCK_PATH, unblock),
)
