"""PKCS#10 certification requests signed by a key that never leaves its smartcard.

``cryptography``'s CSR builder needs a private key object; a card only signs. So the CertificationRequestInfo is
encoded here (RFC 2986, DER) and the card signs it: SHA-256 with RSA (PKCS#1 v1.5), ECDSA with SHA-256 for P-256
and with SHA-384 for P-384 (what ``LoginToken.sign`` produces for each key type). ``cryptography`` parses the result
and checks its signature (:func:`check_csr`).
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

_SHA256_WITH_RSA = "1.2.840.113549.1.1.11"
_ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2"
_ECDSA_WITH_SHA384 = "1.2.840.10045.4.3.3"


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _length(len(value)) + value


def _oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return _tlv(0x06, bytes(out))


def signature_algorithm_oid(public_key: object) -> str:
    """The signature algorithm a card uses with this key type (``ValueError`` for one a card cannot hold)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return _SHA256_WITH_RSA
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if isinstance(public_key.curve, ec.SECP256R1):
            return _ECDSA_WITH_SHA256
        if isinstance(public_key.curve, ec.SECP384R1):
            return _ECDSA_WITH_SHA384
    raise ValueError(f"no card signature algorithm for a {type(public_key).__name__}")


def certification_request_info(subject: x509.Name, public_key_der: bytes) -> bytes:
    """DER CertificationRequestInfo: version 0, the subject, the public key, no attributes."""
    body = (_tlv(0x02, b"\x00") + subject.public_bytes() + public_key_der + b"\xa0\x00")
    return _tlv(0x30, body)


def build_csr(subject: x509.Name, public_key_der: bytes, sign: Callable[[bytes], bytes]) -> bytes:
    """DER PKCS#10 request for ``subject`` and the SubjectPublicKeyInfo ``public_key_der``; ``sign(tbs)`` returns
    the card's signature over the DER CertificationRequestInfo (RSA PKCS#1 v1.5 / DER ECDSA). ``ValueError`` when
    the public key cannot be read or is of a type no card signs with."""
    public_key = serialization.load_der_public_key(public_key_der)
    oid = signature_algorithm_oid(public_key)
    info = certification_request_info(subject, public_key_der)
    algorithm = _tlv(0x30, _oid(oid) + (b"\x05\x00" if oid == _SHA256_WITH_RSA else b""))
    signature = sign(info)
    return _tlv(0x30, info + algorithm + _tlv(0x03, b"\x00" + signature))


def check_csr(der: bytes) -> x509.CertificateSigningRequest:
    """Parse a DER request and check its self-signature; ``ValueError`` saying what is wrong."""
    try:
        csr = x509.load_der_x509_csr(der)
    except ValueError as exc:
        raise ValueError(f"the certificate request is not valid PKCS#10 DER ({exc})") from None
    if not csr.is_signature_valid:
        raise ValueError("the certificate request's signature does not verify with its own public key")
    return csr
