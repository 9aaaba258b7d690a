"""The card's private-key operations for GENERAL AUTHENTICATE on key 9A (the client prepares the input)."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from .cardfile import PrivateKey

EC_DIGEST_LEN = 32  # P-256

# DER DigestInfo prefixes (RFC 8017 §9.2 note 1) of the hashes a PKCS#1 v1.5 block may carry
_DIGEST_INFO: dict[bytes, hashes.HashAlgorithm] = {
    bytes.fromhex("3021300906052b0e03021a05000414"): hashes.SHA1(),  # noqa: S303 - a card signs what it is given
    bytes.fromhex("3031300d060960864801650304020105000420"): hashes.SHA256(),
    bytes.fromhex("3041300d060960864801650304020205000430"): hashes.SHA384(),
    bytes.fromhex("3051300d060960864801650304020305000440"): hashes.SHA512(),
}


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
        """s = m^d mod n; the block must be exactly the modulus length and less than n.

        A well-formed EMSA-PKCS1-v1_5 block over a known hash goes to OpenSSL, which computes the very same
        value (PKCS#1 v1.5 signing is deterministic) in a fraction of the time; anything else — other padding
        the client chose — takes the raw CRT path.
        """
        assert self._crt is not None
        n, p, q, dmp1, dmq1, iqmp = self._crt
        size = (n.bit_length() + 7) // 8
        m = int.from_bytes(block, "big")
        if len(block) != size or m >= n:
            return None
        fast = self._pkcs1v15(block)
        if fast is not None:
            return fast
        m1, m2 = pow(m, dmp1, p), pow(m, dmq1, q)
        s = m2 + (iqmp * (m1 - m2) % p) * q
        return s.to_bytes(size, "big")

    def _pkcs1v15(self, block: bytes) -> bytes | None:
        if not block.startswith(b"\x00\x01"):
            return None
        sep = block.find(b"\x00", 2)
        if sep < 10 or block[2:sep] != b"\xff" * (sep - 2):
            return None
        info = block[sep + 1 :]
        for prefix, algorithm in _DIGEST_INFO.items():
            if info.startswith(prefix) and len(info) == len(prefix) + algorithm.digest_size:
                assert isinstance(self._key, rsa.RSAPrivateKey)
                return self._key.sign(info[len(prefix) :], padding.PKCS1v15(), utils.Prehashed(algorithm))
        return None

    def _ecdsa(self, digest: bytes) -> bytes | None:
        """DER ECDSA signature; the input is fitted to 32 bytes: left-padded with zeros, or its leftmost 32
        bytes (ECDSA uses the leftmost bits of a longer hash)."""
        if not digest or not isinstance(self._key, ec.EllipticCurvePrivateKey):
            return None
        fitted = digest[:EC_DIGEST_LEN].rjust(EC_DIGEST_LEN, b"\x00")
        return self._key.sign(fitted, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
