"""PIV PIN and PUK rules, and the salted hash that is all the card file keeps of them.

A PIV PIN is 6 to 8 ASCII digits, sent to the card as 8 bytes padded with 0xFF; the training card's PUK is
8 digits. Hashes are PBKDF2-HMAC-SHA256 over the unpadded digits with a 16-byte random salt; see
:mod:`app.card.virtual.cardfile` for why :data:`DEFAULT_ITERATIONS` is only 2,000.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from app.errors import InvalidPinFormat

DEFAULT_ITERATIONS = 2_000
MAX_ITERATIONS = 10_000_000
SALT_BYTES = 16
PIN_PAD = 0xFF
PIN_WIRE_LEN = 8


# --- formats -----------------------------------------------------------------------------------------------


def check_pin_format(pin: str | bytes) -> bytes:
    """A PIV PIN is 6 to 8 ASCII digits; returns them as bytes or raises :class:`InvalidPinFormat`."""
    raw = pin.encode("ascii", "replace") if isinstance(pin, str) else bytes(pin)
    if not 6 <= len(raw) <= 8:
        raise InvalidPinFormat("a PIN has 6 to 8 digits")
    if not raw.isdigit():
        raise InvalidPinFormat("a PIN has only digits")
    return raw


def check_puk_format(puk: str | bytes) -> bytes:
    """The training card's PUK is exactly 8 ASCII digits."""
    raw = puk.encode("ascii", "replace") if isinstance(puk, str) else bytes(puk)
    if len(raw) != 8 or not raw.isdigit():
        raise InvalidPinFormat("a PUK has exactly 8 digits")
    return raw


def pad_pin(pin: str | bytes) -> bytes:
    """The 8 bytes sent to a PIV card: the digits, then 0xFF padding."""
    return check_pin_format(pin).ljust(PIN_WIRE_LEN, bytes([PIN_PAD]))


def unpad_pin(block: bytes) -> bytes | None:
    """The digits of an 8-byte padded reference-data block, or ``None`` if it is not a well-formed PIN/PUK."""
    if len(block) != PIN_WIRE_LEN:
        return None
    digits = bytes(block).rstrip(bytes([PIN_PAD]))
    if not 6 <= len(digits) <= 8 or not digits.isdigit():
        return None
    return digits


# --- salted hashes -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SecretHash:
    """PBKDF2-HMAC-SHA256 of a PIN or PUK (never the value itself)."""

    salt: bytes
    digest: bytes
    iterations: int

    @classmethod
    def of(cls, secret: bytes, iterations: int = DEFAULT_ITERATIONS) -> SecretHash:
        salt = secrets.token_bytes(SALT_BYTES)
        return cls(salt, hashlib.pbkdf2_hmac("sha256", secret, salt, iterations), iterations)

    def matches(self, secret: bytes) -> bool:
        candidate = hashlib.pbkdf2_hmac("sha256", bytes(secret), self.salt, self.iterations)
        return hmac.compare_digest(candidate, self.digest)

    def to_json(self) -> dict[str, Any]:
        return {"kdf": "pbkdf2-sha256", "iterations": self.iterations, "salt": self.salt.hex(),
                "hash": self.digest.hex()}

    @classmethod
    def from_json(cls, name: str, value: Any) -> SecretHash:
        if not isinstance(value, dict) or value.get("kdf") != "pbkdf2-sha256":
            raise ValueError(f"'{name}' must be a pbkdf2-sha256 hash record")
        iterations = value.get("iterations")
        if type(iterations) is not int or not 1 <= iterations <= MAX_ITERATIONS:
            raise ValueError(f"'{name}.iterations' must be a whole number from 1 to {MAX_ITERATIONS}")
        salt = hex_field(value.get("salt"), f"{name}.salt")
        digest = hex_field(value.get("hash"), f"{name}.hash")
        if len(salt) != SALT_BYTES or len(digest) != 32:
            raise ValueError(f"'{name}' must have a 16-byte salt and a 32-byte hash")
        return cls(salt, digest, iterations)


def hex_field(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"the field '{name}' must be a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"the field '{name}' is not valid hex") from None
