"""Which family a card belongs to, from its ATR and (for PKCS#11 tokens) its manufacturer and model."""

from __future__ import annotations

from app.card.backend import CardFamily

TRAINING_HISTORICAL = bytes([0x80, 0x5A]) + b"SPINE-DESK"


def recognise(atr: bytes, *, piv: bool = False, manufacturer: str | None = None,
              model: str | None = None) -> CardFamily:
    """The card's family; ``piv`` says the card answered the PIV application."""
    if TRAINING_HISTORICAL in atr:
        return CardFamily.TRAINING
    return CardFamily.PIV if piv else CardFamily.UNKNOWN
