"""PivSession against scripted card answers at the connection seam (byte vectors, no pcscd)."""

import gzip
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from app.card.piv import KeyAlgorithm, PivSession, encode_pin, pkcs1v15_sha256_block
from app.card.tlv import encode_tlv
from app.errors import (
    ApduError,
    CardProtocolError,
    InvalidPinFormat,
    NotPiv,
    PinBlocked,
    PinIncorrect,
    PinRequired,
)

APT = bytes.fromhex("611f4f06000010000100790d4f0ba000000308000010000100ac06800107800111")  # no label


class FakeCard:
    """A connection whose answers are a function of the command; records every APDU."""

    def __init__(self, handler):
        self.handler = handler
        self.sent = []

    def transmit(self, apdu):
        self.sent.append(bytes(apdu))
        data, sw = self.handler(bytes(apdu))
        return data, sw


def self_signed(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Holder")])
    import datetime as dt
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(65537, 2048)


def test_select_parses_the_property_template():
    card = FakeCard(lambda apdu: (APT, 0x9000))
    app = PivSession(card).select()
    assert app.aid == bytes.fromhex("a000000308000010000100")
    assert app.algorithms == (0x07, 0x11)
    assert card.sent[0] == bytes.fromhex("00a404000ba00000030800001000010000")


@pytest.mark.parametrize("sw", [0x6A82, 0x6D00, 0x6E00])
def test_select_on_a_non_piv_card(sw):
    with pytest.raises(NotPiv):
        PivSession(FakeCard(lambda apdu: (b"", sw))).select()


def test_select_with_garbage_template_is_not_piv():
    with pytest.raises(NotPiv):
        PivSession(FakeCard(lambda apdu: (b"\x61\x05\x4f", 0x9000))).select()


def test_chuid_guid_fascn_and_expiry():
    guid = uuid.uuid4()
    body = (encode_tlv(0x30, b"\xd4" * 25) + encode_tlv(0x34, guid.bytes) + encode_tlv(0x35, b"20301231")
            + encode_tlv(0x3E, b"") + encode_tlv(0xFE, b""))
    card = FakeCard(lambda apdu: (encode_tlv(0x53, body), 0x9000))
    chuid = PivSession(card).read_chuid()
    assert chuid.guid == guid and chuid.fascn == b"\xd4" * 25 and str(chuid.expiry) == "2030-12-31"
    assert card.sent[0] == bytes.fromhex("00cb3fff055c035fc10200")


def test_absent_object_is_none_and_missing_chuid_is_an_error():
    card = FakeCard(lambda apdu: (b"", 0x6A82))
    assert PivSession(card).read_object(0x5FC10A) is None
    with pytest.raises(CardProtocolError):
        PivSession(card).read_chuid()


@pytest.mark.parametrize("compressed", [False, True])
def test_certificate_plain_and_gzip_compressed(rsa_key, compressed):
    der = self_signed(rsa_key).public_bytes(serialization.Encoding.DER)
    payload = gzip.compress(der) if compressed else der
    obj = encode_tlv(0x53, encode_tlv(0x70, payload) + encode_tlv(0x71, b"\x01" if compressed else b"\x00")
                     + encode_tlv(0xFE, b""))
    chunks = [obj[i:i + 256] for i in range(0, len(obj), 256)]

    def handler(apdu):
        if apdu[1] == 0xCB:
            handler.rest = chunks[1:]
            return chunks[0], 0x6100 | (len(b"".join(handler.rest)) & 0xFF if len(chunks) > 1 else 0)
        nxt = handler.rest.pop(0)
        return nxt, (0x6100 | (min(256, len(b"".join(handler.rest))) & 0xFF)) if handler.rest else 0x9000

    cert = PivSession(FakeCard(handler)).read_certificate()
    assert cert.public_bytes(serialization.Encoding.DER) == der


def test_corrupt_certificate_is_a_protocol_error():
    obj = encode_tlv(0x53, encode_tlv(0x70, b"\x30\x03junk") + encode_tlv(0x71, b"\x00"))
    with pytest.raises(CardProtocolError):
        PivSession(FakeCard(lambda a: (obj, 0x9000))).read_certificate()
    obj = encode_tlv(0x53, encode_tlv(0x70, b"not gzip") + encode_tlv(0x71, b"\x01"))
    with pytest.raises(CardProtocolError):
        PivSession(FakeCard(lambda a: (obj, 0x9000))).read_certificate()


@pytest.mark.parametrize(("sw", "verified", "tries", "blocked"), [
    (0x9000, True, None, False), (0x63C3, False, 3, False), (0x63C0, False, 0, True), (0x6983, False, 0, True)])
def test_pin_status_never_sends_a_pin(sw, verified, tries, blocked):
    card = FakeCard(lambda apdu: (b"", sw))
    st = PivSession(card).pin_status()
    assert (st.verified, st.tries_left, st.blocked) == (verified, tries, blocked)
    assert card.sent == [bytes.fromhex("00200080")]


def test_verify_pads_with_ff_and_maps_errors():
    card = FakeCard(lambda apdu: (b"", 0x9000))
    PivSession(card).verify_pin("123456")
    assert card.sent[0] == bytes.fromhex("0020008008313233343536ffff")
    with pytest.raises(PinIncorrect) as wrong:
        PivSession(FakeCard(lambda a: (b"", 0x63C2))).verify_pin("654321")
    assert wrong.value.tries_left == 2
    for sw in (0x63C0, 0x6983):
        with pytest.raises(PinBlocked):
            PivSession(FakeCard(lambda a, sw=sw: (b"", sw))).verify_pin("654321")
    with pytest.raises(ApduError) as other:
        PivSession(FakeCard(lambda a: (b"", 0x6A88))).verify_pin("654321")
    assert other.value.sw == 0x6A88


@pytest.mark.parametrize("pin", ["12345", "123456789", "12a456", "１２３４５６", ""])  # noqa: RUF001
def test_bad_pin_formats_never_reach_the_card(pin):
    card = FakeCard(lambda apdu: pytest.fail("sent to card"))
    with pytest.raises(InvalidPinFormat):
        PivSession(card).verify_pin(pin)
    assert card.sent == []


def test_encode_pin():
    assert encode_pin("12345678") == b"12345678"


def test_rsa_sign_chains_the_block_and_returns_the_signature(rsa_key):
    message = b"challenge nonce"
    block = pkcs1v15_sha256_block(message, 256)
    expected = rsa_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    numbers = rsa_key.private_numbers()
    assert pow(int.from_bytes(block, "big"), numbers.d, numbers.public_numbers.n) == int.from_bytes(expected, "big")
    response = encode_tlv(0x7C, encode_tlv(0x82, expected))
    got = bytearray()

    def handler(apdu):
        got.extend(apdu)
        if apdu[0] & 0x10:
            return b"", 0x9000
        return response, 0x9000

    card = FakeCard(handler)
    sig = PivSession(card).sign(message, KeyAlgorithm.RSA2048)
    assert sig.value == expected
    assert [a[0] for a in card.sent] == [0x10, 0x00]
    assert card.sent[0][:4] == bytes.fromhex("1087079a")
    assert block in b"".join(a[5:] for a in card.sent)


def test_ec_sign_sends_the_hash():
    key = ec.generate_private_key(ec.SECP256R1())
    message = b"nonce"
    der = key.sign(message, ec.ECDSA(hashes.SHA256()))
    card = FakeCard(lambda apdu: (encode_tlv(0x7C, encode_tlv(0x82, der)), 0x9000))
    sig = PivSession(card).sign(message, KeyAlgorithm.ECCP256)
    key.public_key().verify(sig.value, message, ec.ECDSA(hashes.SHA256()))
    assert card.sent[0][:7] == bytes.fromhex("0087119a267c24")
    import hashlib

    assert card.sent[0][-33:-1] == hashlib.sha256(message).digest()


def test_sign_without_pin_and_malformed_responses():
    with pytest.raises(PinRequired):
        PivSession(FakeCard(lambda a: (b"", 0x6982))).sign(b"x", KeyAlgorithm.ECCP256)
    with pytest.raises(CardProtocolError):
        PivSession(FakeCard(lambda a: (b"\x7c\x02\x81\x00", 0x9000))).sign(b"x", KeyAlgorithm.ECCP256)
    with pytest.raises(CardProtocolError):
        PivSession(FakeCard(lambda a: (b"\x7c\x05\x82", 0x9000))).sign(b"x", KeyAlgorithm.ECCP256)


def test_change_and_unblock_pin_vectors():
    card = FakeCard(lambda apdu: (b"", 0x9000))
    session = PivSession(card)
    session.change_pin("123456", "24681357")
    session.unblock_pin("87654321", "135790")
    assert card.sent[0] == bytes.fromhex("0024008010313233343536ffff3234363831333537")
    assert card.sent[1] == bytes.fromhex("002c008010" + b"87654321".hex() + b"135790".hex() + "ffff")
    with pytest.raises(InvalidPinFormat):
        session.unblock_pin("1234", "135790")


def test_yubikey_style_select_response_parses():
    # A YubiKey 5's PIV application answers SELECT with a short template (PIX + a 5-byte AID, no label/algs)
    yubikey = bytes.fromhex("61114f0600001000010079074f05a000000308")
    app = PivSession(FakeCard(lambda apdu: (yubikey, 0x9000))).select()
    assert app.aid == bytes.fromhex("a000000308") and app.label is None and app.algorithms == ()


def test_bare_9000_select_is_still_piv():
    app = PivSession(FakeCard(lambda apdu: (b"", 0x9000))).select()
    assert app.aid == bytes.fromhex("a000000308000010000100")


def test_logout_sends_verify_p1_ff():
    card = FakeCard(lambda apdu: (b"", 0x9000))
    PivSession(card).logout()
    assert card.sent == [bytes.fromhex("0020ff80")]


def test_p384_signs_sha384():
    import hashlib

    card = FakeCard(lambda apdu: (encode_tlv(0x7C, encode_tlv(0x82, b"\x30\x00")), 0x9000))
    PivSession(card).sign(b"m", KeyAlgorithm.ECCP384)
    assert card.sent[0].endswith(hashlib.sha384(b"m").digest() + b"\x00")


def test_gzip_bomb_is_refused():
    bomb = gzip.compress(b"\x00" * 5_000_000)
    obj = encode_tlv(0x53, encode_tlv(0x70, bomb) + encode_tlv(0x71, b"\x01"))
    with pytest.raises(CardProtocolError, match="inflates beyond"):
        PivSession(FakeCard(lambda a: (obj, 0x9000))).read_certificate()


def test_session_uses_the_connections_exclusive_context():
    import contextlib

    entered = []

    class Exclusive(FakeCard):
        @contextlib.contextmanager
        def exclusive(self):
            entered.append(len(self.sent))
            yield

    card = Exclusive(lambda apdu: (APT, 0x9000))
    PivSession(card).select()
    assert entered == [0]


def test_command_repr_never_shows_pin_data():
    from app.card.apdu import CommandApdu

    assert "1234" not in repr(CommandApdu(0x00, 0x20, 0x00, 0x80, b"123456\xff\xff"))


def test_a_wrong_or_exhausted_puk_is_not_reported_as_the_pin():
    """A wrong PUK must not read "Incorrect PIN": the user would retype the PIN they no longer have."""
    from app.error_text import user_text
    from app.errors import PukBlocked, PukIncorrect

    with pytest.raises(PukIncorrect) as wrong:
        PivSession(FakeCard(lambda a: (b"", 0x63C2))).unblock_pin("87654321", "135790")
    assert wrong.value.tries_left == 2
    assert "unlock code" in user_text(wrong.value) and "PIN" not in user_text(wrong.value).split(".")[0]
    for sw in (0x63C0, 0x6983):
        with pytest.raises(PukBlocked) as blocked:
            PivSession(FakeCard(lambda a, sw=sw: (b"", sw))).unblock_pin("87654321", "135790")
        assert "registration authority" in user_text(blocked.value)
