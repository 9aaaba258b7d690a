"""A PIV login card whose key and certificate this client may replace: a :class:`PivLoginCard` plus its card
management key. It satisfies ``app.client.selfservice.RenewableCard`` (the client never imports this module; the
composition root passes the card in)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from app.card.backend import CardInfo, LoginToken
from app.card.login_card import PivLoginCard
from app.card.management_key import ManagementKey
from app.card.piv import KeyAlgorithm, PinStatus, algorithm_for
from app.errors import CardManagementRefused, CardProtocolError


def renewable(token: LoginToken, management_key: ManagementKey) -> PivRenewableCard:
    """``token`` as a card this client may renew: PIV cards only (a PKCS#11 token's key and certificate belong to
    its issuer's card management system); :class:`CardManagementRefused` for any other."""
    if not isinstance(token, PivLoginCard):
        raise CardManagementRefused(f"this card is reached through {token.info.backend.value}; its certificate is "
                                    "renewed by its registration authority, not by Spine Desk")
    return PivRenewableCard(token, management_key)


class PivRenewableCard:
    def __init__(self, card: PivLoginCard, management_key: ManagementKey) -> None:
        self._card = card
        self._key = management_key
        self._stored: bytes | None = None  # the certificate this object stored, once it has

    # --- the login token, unchanged ---------------------------------------------------------------------

    @property
    def info(self) -> CardInfo:
        return self._card.info

    def certificate_der(self) -> bytes:
        return self._stored if self._stored is not None else self._card.certificate_der()

    def pin_status(self) -> PinStatus:
        return self._card.pin_status()

    def verify_pin(self, pin: str) -> None:
        self._card.verify_pin(pin)

    def sign(self, message: bytes) -> bytes:
        return self._card.sign(message)

    def forget_pin(self) -> None:
        self._card.forget_pin()

    def change_pin(self, old_pin: str, new_pin: str) -> None:
        self._card.change_pin(old_pin, new_pin)

    def unblock_pin(self, puk: str, new_pin: str) -> None:
        self._card.unblock_pin(puk, new_pin)

    def close(self) -> None:
        self._card.close()

    # --- renewal ----------------------------------------------------------------------------------------

    def generate_key(self) -> bytes:
        """A new key of the current certificate's type (RSA-2048 or P-256) generated in slot 9A; its public key
        as DER SubjectPublicKeyInfo. The old private key is gone from here on."""
        current = x509.load_der_x509_certificate(self.certificate_der())
        algorithm = algorithm_for(current.public_key())
        if algorithm not in (KeyAlgorithm.RSA2048, KeyAlgorithm.ECCP256):
            raise CardManagementRefused(f"Spine Desk renews RSA-2048 and P-256 cards only, this card has "
                                        f"{algorithm.name}")
        session = self._card.session
        session.authenticate_management(self._key)
        public = session.generate_key(algorithm)
        return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def store_certificate(self, certificate_der: bytes) -> None:
        try:
            certificate = x509.load_der_x509_certificate(certificate_der)
        except ValueError as exc:
            raise CardProtocolError(f"the new certificate is not valid DER ({exc})") from exc
        session = self._card.session
        session.authenticate_management(self._key)
        session.put_certificate(certificate)
        self._stored = certificate_der
