"""The card's RSA operation: the OpenSSL fast path and the raw CRT path compute the same m^d mod n."""

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from app.card.piv import pkcs1v15_sha256_block
from app.card.virtual.signing import CardSigner


@pytest.fixture(scope="module")
def key():
    return rsa.generate_private_key(65537, 2048)


def raw(key, block: bytes) -> bytes:
    n = key.private_numbers()
    return pow(int.from_bytes(block, "big"), n.d, n.public_numbers.n).to_bytes(256, "big")


def test_pkcs1_sha256_block_fast_path_equals_raw_rsa(key):
    block = pkcs1v15_sha256_block(b"nonce", 256)
    sig = CardSigner(key).sign(block)
    assert sig == raw(key, block)
    key.public_key().verify(sig, b"nonce", padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("name", ["sha1", "sha384", "sha512"])
def test_other_digest_infos(key, name):
    prefixes = {"sha1": "3021300906052b0e03021a05000414", "sha384": "3041300d060960864801650304020205000430",
                "sha512": "3051300d060960864801650304020305000440"}
    t = bytes.fromhex(prefixes[name]) + hashlib.new(name, b"m").digest()
    block = b"\x00\x01" + b"\xff" * (256 - len(t) - 3) + b"\x00" + t
    assert CardSigner(key).sign(block) == raw(key, block)


def test_non_standard_block_takes_the_raw_path(key):
    block = b"\x00\x02" + b"\x5a" * 254  # not a type-1 signature block: still a valid RSA input
    assert CardSigner(key).sign(block) == raw(key, block)


def test_out_of_range_inputs_are_refused(key):
    signer = CardSigner(key)
    assert signer.sign(b"\xff" * 256) is None  # >= n
    assert signer.sign(b"\x00\x01" * 10) is None  # wrong length
