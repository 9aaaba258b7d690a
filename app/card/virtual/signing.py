"""The card's private-key operations for GENERAL AUTHENTICATE on key 9A (the client prepares the input)."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils

from .cardfile import PrivateKey

EC_DIGEST_LEN = 32  # P-256


class CardSigner:
    """Raw RSA (the client did the PKCS#1 padding) or ECDSA over an already-hashed value."""

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        self._crt: tuple[int, int, int, int, int, int] | None = None
        if isinstance(key, rsa.RSAPrivateKey):
            n = key.private_numbers()
            self._crt = (n.public_numbers.n, n.p, n.q, n.dmp1, n.dmq1, n.iqmp)

    def sign(self, challenge: bytes) -> bytes | None:
        """The signature, or ``None`` if ``challenge`` cannot be an input for this key."""
        if self._crt is not None:
            return self._rsa_private(challenge)
        return self._ecdsa(challenge)

    def _rsa_private(self, block: bytes) -> bytes | None:
        """s = m^d mod n via the CRT; the block must be exactly the modulus length and less than n."""
        assert self._crt is not None
        n, p, q, dmp1, dmq1, iqmp = self._crt
        size = (n.bit_length() + 7) // 8
        m = int.from_bytes(block, "big")
        if len(block) != size or m >= n:
            return None
        m1, m2 = pow(m, dmp1, p), pow(m, dmq1, q)
        s = m2 + (iqmp * (m1 - m2) % p) * q
        return s.to_bytes(size, "big")

    def _ecdsa(self, digest: bytes) -> bytes | None:
        """DER ECDSA signature; the input is fitted to 32 bytes: left-padded with zeros, or its leftmost 32
        bytes (ECDSA uses the leftmost bits of a longer hash)."""
        if not digest or not isinstance(self._key, ec.EllipticCurvePrivateKey):
            return None
        fitted = digest[:EC_DIGEST_LEN].rjust(EC_DIGEST_LEN, b"\x00")
        return self._key.sign(fitted, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
