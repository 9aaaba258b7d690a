"""A PIV card as a :class:`app.card.backend.LoginToken`, over one ``PivSession``."""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives import serialization

from app.card.backend import BackendKind, CardInfo
from app.card.family import recognise
from app.card.piv import PinStatus, PivSession, algorithm_for
from app.errors import CardProtocolError


class PivLoginCard:
    def __init__(self, session: PivSession, *, reader: str | None = None, atr: bytes = b"",
                 close: Callable[[], None] | None = None) -> None:
        self._session = session
        application = session.select()
        cert = session.read_certificate()
        if cert is None:
            raise CardProtocolError("the card holds no PIV Authentication certificate, so it cannot log in")
        self._cert = cert
        self._algorithm = algorithm_for(cert.public_key())
        self._close = close
        self._info = CardInfo(backend=BackendKind.PIV, family=recognise(atr, piv=True), reader=reader, atr=atr,
                              token_label=application.label)

    @property
    def info(self) -> CardInfo:
        return self._info

    @property
    def session(self) -> PivSession:
        """The PIV session underneath, for PIV-only operations (key generation, certificate storage)."""
        return self._session

    def certificate_der(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.DER)

    def pin_status(self) -> PinStatus:
        return self._session.pin_status()

    def verify_pin(self, pin: str) -> None:
        self._session.verify_pin(pin)

    def sign(self, message: bytes) -> bytes:
        return self._session.sign(message, self._algorithm).value

    def forget_pin(self) -> None:
        self._session.logout()

    def change_pin(self, old_pin: str, new_pin: str) -> None:
        self._session.change_pin(old_pin, new_pin)

    def unblock_pin(self, puk: str, new_pin: str) -> None:
        self._session.unblock_pin(puk, new_pin)

    def close(self) -> None:
        if self._close is not None:
            self._close()
