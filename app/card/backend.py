"""The one login-card port every card back-end (PIV over PC/SC, PKCS#11 modules) offers, and what it tells about
the card it opened.

The client (``app.client.login``), ``spinedesk login``, ``spinedesk card status`` and the desktop's login flow use
only this port; which back-end served a card is data (:class:`CardInfo`), never a type check.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from app.card.piv import PinStatus


class BackendKind(StrEnum):
    PIV = "PIV"
    PKCS11 = "PKCS#11"


class CardFamily(StrEnum):
    """What kind of card this is, recognised from its ATR and (for PKCS#11) its token's manufacturer and model."""

    SERIES_4_6 = "NHS series 4-6"  # blocked by NHS in 2026
    SERIES_8 = "NHS series 8"
    SERIES_9 = "NHS series 9"
    SERIES_10 = "NHS series 10"
    PIV = "PIV"
    TRAINING = "Spine Desk training card"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CardInfo:
    backend: BackendKind
    family: CardFamily
    reader: str | None  # the PC/SC reader, or the PKCS#11 slot description
    atr: bytes  # b"" where the back-end cannot tell
    module: str | None = None  # the PKCS#11 module's path; None for PIV
    token_label: str | None = None  # the PKCS#11 token label, or the PIV application label
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None


@runtime_checkable
class LoginToken(Protocol):
    """A card opened for one user's sign-in and self-service. Every method may raise the typed card errors of
    ``app.errors`` (``PinIncorrect`` with tries left where the card says, ``PinBlocked``, ``CardRemoved``,
    ``InvalidPinFormat``, ``CardProtocolError`` …) and nothing else from the layer below."""

    @property
    def info(self) -> CardInfo: ...

    def certificate_der(self) -> bytes: ...

    def pin_status(self) -> PinStatus: ...

    def verify_pin(self, pin: str) -> None: ...

    def sign(self, message: bytes) -> bytes:
        """RSA PKCS#1 v1.5 over SHA-256, or DER ECDSA over SHA-256 (SHA-384 for P-384); never SHA-1. Needs the PIN."""
        ...

    def forget_pin(self) -> None: ...

    def change_pin(self, old_pin: str, new_pin: str) -> None: ...

    def unblock_pin(self, puk: str, new_pin: str) -> None: ...

    def close(self) -> None: ...


class CardBackend(Protocol):
    """One way of reaching cards. ``open`` returns None when this back-end does not recognise the card in
    ``reader`` (the chooser then asks the next one), and raises a typed error when it does but cannot use it."""

    kind: BackendKind

    def open(self, reader: str | None, atr: bytes) -> LoginToken | None: ...
