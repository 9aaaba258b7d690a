"""Issuing a training card: a fresh key pair, a certificate from the training CA, CHUID data, PIN and PUK."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .cardfile import ALGORITHMS, CardFile, PrivateKey
from .fascn import build_fascn
from .pin import check_pin_format, check_puk_format


def generate_key(algorithm: str) -> PrivateKey:
    if algorithm == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}")


def random_puk() -> str:
    return f"{secrets.randbelow(10**8):08d}"


def issue_card(ca: Any, *, name: str, card_uuid: uuid.UUID | None = None, algorithm: str = "rsa2048",
               pin: str, puk: str | None = None, days: int = 365) -> tuple[CardFile, str]:
    """A new training card for ``name`` and the PUK it was given (8 random digits unless ``puk`` is set).

    ``ca`` is an ``app.pki.TrainingCA`` (anything with its ``issue_card_certificate``). The CHUID expires with
    the certificate. Bad PIN/PUK formats raise :class:`~app.errors.InvalidPinFormat` before any key is made; a
    bad algorithm raises ``ValueError``; the CA's refusals (name, days) propagate as they are (``PkiError``).
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}")
    check_pin_format(pin)
    puk = random_puk() if puk is None else check_puk_format(puk).decode("ascii")
    card_uuid = card_uuid or uuid.uuid4()
    key = generate_key(algorithm)
    certificate = ca.issue_card_certificate(key.public_key(), name=name, card_uuid=card_uuid, days=days)
    card = CardFile.create(
        holder_name=name.strip(),
        card_uuid=card_uuid,
        fascn=build_fascn(card_uuid),
        private_key=key,
        certificate=certificate,
        chuid_expiry=certificate.not_valid_after_utc.date(),
        pin=pin,
        puk=puk,
    )
    return card, puk
