"""Card self-service use cases: change the PIN, unblock it with the PUK or with the service's help, renew the card's
certificate with a key generated on the card.

``app.client`` never imports ``app.card``: the card comes in as a :class:`SelfServiceCard` (every login token is
one) or a :class:`RenewableCard` (a card whose key and certificate this client may replace: the training card and
PIV cards whose management key the site gives). Errors are the typed ones of ``app.errors`` (``InvalidPinFormat``
for a PIN the rules refuse before anything reaches the card, ``PinIncorrect``/``PinBlocked`` from the card,
``ServiceRejected`` from the service …); ``app.error_text.user_text`` turns them into words.

PINs pass through these functions and the card only: they are never logged, stored or sent to the service.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from cryptography import x509

from app.client.api import SelfServiceApi
from app.client.login import card_login
from app.errors import AudienceMismatch, CardError, RenewalIncomplete, ServiceError
from app.pin_rules import check_new_pin
from app.pki.csr import build_csr
from app.protocol import canonical_audience, renewal_message


class SelfServiceCard(Protocol):
    """What PIN self-service needs of a card (every ``app.card.backend.LoginToken`` offers it)."""

    def certificate_der(self) -> bytes: ...

    def verify_pin(self, pin: str) -> None: ...

    def sign(self, message: bytes) -> bytes: ...

    def forget_pin(self) -> None: ...

    def change_pin(self, old_pin: str, new_pin: str) -> None: ...

    def unblock_pin(self, puk: str, new_pin: str) -> None: ...


class RenewableCard(SelfServiceCard, Protocol):
    """A card whose login key and certificate this client may replace (PIV with its management key, a PKCS#11
    token whose module generates keys on it)."""

    def generate_key(self) -> bytes:
        """Generate a new key pair ON the card, of the same type as the current one, and return its public key as
        DER SubjectPublicKeyInfo; ``sign`` signs with the new key from now on. Called with the PIN verified. On PIV
        this replaces the old private key at once; a PKCS#11 token keeps the old one until the new certificate is
        stored."""
        ...

    def store_certificate(self, certificate_der: bytes) -> None:
        """Write the login certificate (which must match the new key); called with the PIN verified."""
        ...

    def discard_new_key(self, pin: str) -> bool:
        """After a failure between ``generate_key`` and the end of ``store_certificate``: undo the key generation
        where the card can. True when the card logs in with its old key and certificate as before (PKCS#11), False
        when its old key is gone (PIV)."""
        ...


class Outcome(StrEnum):
    PIN_CHANGED = "PIN changed"
    PIN_UNBLOCKED = "PIN unblocked"
    CERTIFICATE_RENEWED = "certificate renewed"


@dataclass(frozen=True, slots=True)
class PinResult:
    outcome: Outcome  # PIN_CHANGED or PIN_UNBLOCKED

    @property
    def message(self) -> str:
        if self.outcome is Outcome.PIN_UNBLOCKED:
            return "Your card is unlocked and has the new PIN. Use it from now on."
        return "Your PIN has been changed. Use the new PIN from now on."


@dataclass(frozen=True, slots=True)
class RenewalResult:
    outcome: Outcome  # CERTIFICATE_RENEWED
    serial: int  # the new certificate's serial number
    not_after: datetime  # UTC
    old_serial: int
    old_revoked: bool  # the service confirmed the old certificate is revoked

    @property
    def message(self) -> str:
        revoked = ("the old one is revoked" if self.old_revoked else
                   "the old one will be revoked the next time you log in")
        return (f"Your card has a new certificate, valid until {self.not_after:%d %B %Y}; {revoked}. "
                "Your PIN is unchanged.")


def change_pin(card: SelfServiceCard, old: str, new: str, repeat: str) -> PinResult:
    """Check ``new``/``repeat`` against the NHS passcode rules (``InvalidPinFormat`` naming the rule broken; nothing
    reaches the card), then have the card change its PIN (``PinIncorrect`` with tries left when ``old`` is
    wrong, ``PinBlocked`` when it is blocked)."""
    check_new_pin(new, repeat, old=old)
    card.change_pin(old, new)
    return PinResult(Outcome.PIN_CHANGED)


def unblock_with_puk(card: SelfServiceCard, puk: str, new: str, repeat: str) -> PinResult:
    """Check the new PIN against the rules, then RESET RETRY COUNTER with the PUK (``PukIncorrect`` when the PUK
    is wrong, ``PukBlocked`` when the PUK itself is blocked: only a new card helps then)."""
    check_new_pin(new, repeat)
    card.unblock_pin(puk, new)
    return PinResult(Outcome.PIN_UNBLOCKED)


def unblock_via_service(card: SelfServiceCard, api: SelfServiceApi, target_card_cert: bytes, new: str,
                        repeat: str, *, token: str, urid: str) -> PinResult:
    """A Local Smartcard Unlocker (logged in with ``token`` and bound to role ``urid``) unblocks the card in the
    reader, whose certificate is ``target_card_cert``: the service checks the role's activity, audits who unblocked
    whose card and releases the card's unblock code (training: the PUK recorded when the card was issued), which
    goes straight to the card and nowhere else. ``ServiceRejected`` 403 when the role may not unblock cards."""
    check_new_pin(new, repeat)
    code = api.unblock_code(token, urid, target_card_cert)
    try:
        card.unblock_pin(code, new)
    finally:
        del code
    return PinResult(Outcome.PIN_UNBLOCKED)


def renew_certificate(card: RenewableCard, api: SelfServiceApi, pin: str, *, token: str | None = None,
                      on_step: Callable[[str], None] | None = None) -> RenewalResult:
    """Renew the card's login certificate: log in with the current certificate (or use the live session
    ``token``), ask the service whether renewal is allowed (in the renewal window, training CA available) BEFORE
    the card's key is touched, generate the new key on the card, sign a PKCS#10 request with it, have the service
    issue the certificate, store it on the card, and tell the service the card holds it so it revokes the old
    one. ``on_step`` hears short progress lines (no secrets). A failure after the card made its new key and before
    it stored the certificate is :class:`RenewalIncomplete` (``card_unchanged`` when the card went back to its old
    key, as PKCS#11 tokens do). See docs/decisions/card-renewal.md for why this order
    keeps the card usable if a step before the key generation fails."""
    say = on_step or (lambda _text: None)
    old_der = card.certificate_der()
    old = x509.load_der_x509_certificate(old_der)
    own_session = token is None
    if token is None:
        say("Logging in with the current certificate")
        token = card_login(card, api, pin).token
    try:
        say("Asking the service whether this certificate may be renewed")
        window = api.renewal_check(token, old_der)
        expected = canonical_audience(api.base_url)
        if window.nonce and _audience(window.audience) != expected:  # as at login: only for this service
            raise AudienceMismatch(api.base_url, window.audience)
        card.verify_pin(pin)  # proved before the key is replaced: a wrong PIN costs a try, never the key
        try:
            # the current key asks for the renewal (a session's bearer token alone cannot) …
            proof = (window.nonce, card.sign(renewal_message(window.nonce, expected))) if window.nonce else None
            say("Generating a new key on the card")
            public_der = card.generate_key()  # … then the new key (PKCS#11 tokens need the PIN to make it)
        finally:
            card.forget_pin()
        new_der = _certify(card, api, token, pin, old, old_der, public_der, say, proof)
        say("Telling the service the card holds the new certificate")
        old_revoked = _confirm(api, token, new_der)
    finally:
        if own_session:
            _quiet_logout(api, token)
    new = x509.load_der_x509_certificate(new_der)
    return RenewalResult(Outcome.CERTIFICATE_RENEWED, new.serial_number, new.not_valid_after_utc,
                         old.serial_number, old_revoked)


def _audience(text: str) -> str | None:
    try:
        return canonical_audience(text)
    except ValueError:
        return None


def _certify(card: RenewableCard, api: SelfServiceApi, token: str, pin: str, old: x509.Certificate, old_der: bytes,
             public_der: bytes, say: Callable[[str], None], proof: tuple[str, bytes] | None = None) -> bytes:
    """The steps between the card's new key and its new certificate; a failure here is ``RenewalIncomplete``
    (``card_unchanged`` when the card went back to its old key: PKCS#11)."""
    step = "signing the certificate request"
    try:
        card.verify_pin(pin)
        try:
            say("Signing the certificate request with the new key")
            csr = build_csr(old.subject, public_der, card.sign)
        finally:
            card.forget_pin()
        step = "asking the service for the new certificate"
        say("Asking the service for the new certificate")
        new_der = api.renew_certificate(token, old_der, csr, proof)
        step = "storing the new certificate on the card"
        say("Storing the new certificate on the card")
        card.verify_pin(pin)
        try:
            card.store_certificate(new_der)
        finally:
            card.forget_pin()
    except (CardError, ServiceError) as exc:
        raise RenewalIncomplete(step, exc, card_unchanged=card.discard_new_key(pin)) from exc
    return new_der


def _confirm(api: SelfServiceApi, token: str, new_der: bytes) -> bool:
    """The card holds the new certificate whatever happens now; if the confirmation fails the service revokes the
    old certificate at the new one's first login instead."""
    try:
        api.confirm_renewal(token, new_der)
    except ServiceError:
        return False
    return True


def _quiet_logout(api: SelfServiceApi, token: str) -> None:
    with contextlib.suppress(ServiceError, CardError):
        api.logout(token)
