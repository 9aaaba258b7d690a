"""PKCS#10 requests signed by a card (here the training card's applet and a plain key): cryptography parses them and
verifies their signatures."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from app.pki.csr import build_csr, check_csr

SUBJECT = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Dr Ada Training"),
                     x509.NameAttribute(NameOID.SERIAL_NUMBER, "555000111222")])


def _spki(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(65537, 2048)


def test_rsa_request_verifies(rsa_key):
    der = build_csr(SUBJECT, _spki(rsa_key), lambda tbs: rsa_key.sign(tbs, padding.PKCS1v15(), hashes.SHA256()))
    csr = check_csr(der)
    assert csr.subject == SUBJECT
    assert csr.public_key() == rsa_key.public_key()
    assert csr.signature_hash_algorithm.name == "sha256"
    assert csr.signature_algorithm_oid.dotted_string == "1.2.840.113549.1.1.11"


@pytest.mark.parametrize(("curve", "digest", "oid"), [
    (ec.SECP256R1(), hashes.SHA256(), "1.2.840.10045.4.3.2"),
    (ec.SECP384R1(), hashes.SHA384(), "1.2.840.10045.4.3.3"),
])
def test_ec_request_verifies(curve, digest, oid):
    key = ec.generate_private_key(curve)
    der = build_csr(SUBJECT, _spki(key), lambda tbs: key.sign(tbs, ec.ECDSA(digest)))
    csr = check_csr(der)
    assert csr.public_key() == key.public_key()
    assert csr.signature_algorithm_oid.dotted_string == oid


def test_a_request_signed_by_another_key_is_refused(rsa_key):
    other = rsa.generate_private_key(65537, 2048)
    der = build_csr(SUBJECT, _spki(rsa_key), lambda tbs: other.sign(tbs, padding.PKCS1v15(), hashes.SHA256()))
    with pytest.raises(ValueError, match="does not verify"):
        check_csr(der)


def test_garbage_is_not_a_request():
    with pytest.raises(ValueError, match="not valid PKCS#10"):
        check_csr(b"\x30\x03\x02\x01\x00")


def test_long_subjects_use_long_lengths(rsa_key):
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "x" * 60) for _ in range(6)])
    der = build_csr(subject, _spki(rsa_key), lambda tbs: rsa_key.sign(tbs, padding.PKCS1v15(), hashes.SHA256()))
    assert check_csr(der).subject == subject
