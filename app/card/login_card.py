"""A PIV card as the login use case's ``LoginCard`` (``app.client.login``), over one ``PivSession``."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from app.card.piv import PivSession, algorithm_for
from app.errors import CardProtocolError


class PivLoginCard:
    def __init__(self, session: PivSession) -> None:
        self._session = session
        session.select()
        cert = session.read_certificate()
        if cert is None:
            raise CardProtocolError("the card holds no PIV Authentication certificate, so it cannot log in")
        self._cert = cert
        self._algorithm = algorithm_for(cert.public_key())

    def certificate_der(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.DER)

    def verify_pin(self, pin: str) -> None:
        self._session.verify_pin(pin)

    def sign(self, message: bytes) -> bytes:
        return self._session.sign(message, self._algorithm).value

    def forget_pin(self) -> None:
        self._session.logout()
