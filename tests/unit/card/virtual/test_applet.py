"""Byte-vector tests of the training card's PIV applet: every command a PIV client sends, as raw APDUs."""

from __future__ import annotations

import hashlib
import random

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

from app.card.apdu import CommandApdu, chain
from app.card.tlv import parse_single, tlv_map
from app.card.virtual import ATR, PivApplet
from app.card.virtual.fascn import fascn_is_valid
from tests.unit.card.virtual.conftest import PIN, PUK

PIV_AID = bytes.fromhex("A000000308000010000100")
SELECT_5 = "00A4040005A000000308"
SELECT_9 = "00A4040009A00000030800001000"
SELECT_11 = "00A404000BA00000030800001000010000"
LABEL = b"Spine Desk Training PIV".hex()
APT = ("613A" "4F06000010000100" "790D4F0BA0000003080000100001 00" f"5017{LABEL}" "AC08 800107 800111 0600")
DISCOVERY = "7E12 4F0BA0000003080000100001 00 5F2F024000"
KEY_HISTORY = "5308 C10100 C20100 FE00"
GET_CERT = "00CB3FFF055C035FC105"
VERIFY_STATUS = "00200080"


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def tx(applet: PivApplet, apdu: bytes | str) -> tuple[bytes, int]:
    raw = applet.process(h(apdu) if isinstance(apdu, str) else apdu)
    assert len(raw) >= 2
    return raw[:-2], int.from_bytes(raw[-2:], "big")


def sw_of(applet: PivApplet, apdu: bytes | str) -> int:
    return tx(applet, apdu)[1]


def read_all(applet: PivApplet, apdu: bytes | str) -> tuple[bytes, int]:
    """Send, then follow 61xx with GET RESPONSE as a client does."""
    data, sw = tx(applet, apdu)
    buf = bytearray(data)
    while sw >> 8 == 0x61:
        more, sw = tx(applet, bytes([0x00, 0xC0, 0x00, 0x00, sw & 0xFF]))
        buf += more
    return bytes(buf), sw


def pin_block(pin: str) -> bytes:
    return pin.encode().ljust(8, b"\xff")


def verify(applet: PivApplet, pin: str) -> int:
    return sw_of(applet, h("0020008008") + pin_block(pin))


@pytest.fixture
def rsa(rsa_card, make_applet) -> PivApplet:
    return make_applet(rsa_card)


@pytest.fixture
def p256(p256_card, make_applet) -> PivApplet:
    return make_applet(p256_card)


@pytest.fixture
def selected(rsa) -> PivApplet:
    assert sw_of(rsa, SELECT_9) == 0x9000
    return rsa


# --- ATR and SELECT ----------------------------------------------------------------------------------------


def test_atr_offers_t1_only_with_twelve_historical_bytes_and_a_valid_tck(rsa):
    assert rsa.atr == ATR
    assert ATR[:3] == h("3B8C01") and len(ATR) == 3 + 12 + 1
    tck = 0
    for byte in ATR[1:]:
        tck ^= byte
    assert tck == 0  # TCK makes the XOR of T0..TCK zero


@pytest.mark.parametrize("select", [SELECT_5, SELECT_9, SELECT_11, "00A404000BA000000308000010000100"])
def test_select_by_any_prefix_answers_the_application_property_template(rsa, select):
    assert tx(rsa, select) == (h(APT), 0x9000)


def test_select_template_parses_as_a_client_reads_it(rsa):
    data, _ = tx(rsa, SELECT_9)
    fields = tlv_map(parse_single(data, 0x61).value)
    assert fields[0x4F] == PIV_AID[5:]
    assert tlv_map(fields[0x79])[0x4F] == PIV_AID
    assert fields[0x50] == b"Spine Desk Training PIV"


@pytest.mark.parametrize("aid", ["A0000003", "A00000030800001000010000", "A0000005272101", "A000000527200101",
                                 "D27600012401", "A000000308000010000200"])
def test_foreign_or_too_short_aids_are_not_found_and_keep_piv_selected(selected, aid):
    assert tx(selected, f"00A40400{len(h(aid)):02X}{aid}00") == (b"", 0x6A82)
    assert tx(selected, "00CB3FFF035C017E00") == (h(DISCOVERY), 0x9000)


def test_select_by_file_id_finds_nothing(selected):
    assert sw_of(selected, "00A4000C023F00") == 0x6A82
    assert sw_of(selected, "00CB3FFF035C017E00") == 0x9000


def test_get_data_before_select_is_not_found(rsa):
    assert tx(rsa, "00CB3FFF035C017E00") == (b"", 0x6A82)  # OpenSC's very first APDU
    assert sw_of(rsa, "00A4040007A0000005272101") == 0x6A82
    assert sw_of(rsa, "00CB3FFF035C017E00") == 0x6A82


def test_select_without_fci_answers_bare_9000(rsa):
    assert tx(rsa, "00A4040C05A000000308") == (b"", 0x9000)


# --- GET DATA, 61xx and GET RESPONSE -----------------------------------------------------------------------


def test_discovery_object(selected):
    assert tx(selected, "00CB3FFF035C017E00") == (h(DISCOVERY), 0x9000)


def test_key_history_object(selected):
    assert tx(selected, "00CB3FFF055C035FC10C00") == (h(KEY_HISTORY), 0x9000)


def test_chuid_carries_fascn_guid_and_expiry(selected, rsa_card):
    data, sw = read_all(selected, "00CB3FFF055C035FC10200")
    assert sw == 0x9000
    fields = tlv_map(parse_single(data, 0x53).value)
    assert fields[0x34] == rsa_card.card_uuid.bytes
    assert len(fields[0x30]) == 25 and fascn_is_valid(fields[0x30]) and fields[0x30] == rsa_card.fascn
    assert fields[0x35] == rsa_card.chuid_expiry.strftime("%Y%m%d").encode()
    assert fields[0x3E] == b"" and fields[0xFE] == b""


@pytest.mark.parametrize("tag", ["5FC107", "5FC10A", "5FC10B", "5FC101", "5FC109", "5FC103", "5FC121",
                                 "5FC10D", "7F61", "5FC108"])
def test_absent_objects_are_not_found(selected, tag):
    n = len(h(tag))
    assert tx(selected, f"00CB3FFF{n + 2:02X}5C{n:02X}{tag}00") == (b"", 0x6A82)


def test_bad_tag_lists(selected):
    assert sw_of(selected, "00CB3FFF025C0000") == 0x6A80  # empty tag
    assert sw_of(selected, "00CB3FFF065C045FC1050100") == 0x6A80  # 4-byte tag
    assert sw_of(selected, "00CB3FFF055D035FC10500") == 0x6A80  # not 5C
    assert sw_of(selected, "00CB3FFF065C035FC1050000") == 0x6A80  # trailing byte
    assert sw_of(selected, "00CB3FFF045C035FC100") == 0x6A80  # truncated TLV
    assert sw_of(selected, "00CB3FFE055C035FC10500") == 0x6A86


def test_certificate_read_as_opensc_does_le_8_then_in_full(selected, rsa_card):
    der = rsa_card.certificate.public_bytes(serialization.Encoding.DER)
    head, sw = tx(selected, GET_CERT + "08")
    assert len(head) == 8 and sw >> 8 == 0x61
    assert head[:2] == h("5382")
    # OpenSC then asks again in full: the pending rest is dropped, the answer starts over
    first, sw = tx(selected, GET_CERT + "00")
    assert len(first) == 256 and sw >> 8 == 0x61
    data, sw = read_all(selected, GET_CERT + "00")
    assert sw == 0x9000 and data[:8] == head and data[:256] == first
    fields = tlv_map(parse_single(data, 0x53).value)
    assert fields[0x70] == der and fields[0x71] == b"\x00" and fields[0xFE] == b""


def test_get_response_continues_the_le_8_read(selected):
    whole, _ = read_all(selected, GET_CERT + "00")
    head, sw = tx(selected, GET_CERT + "08")
    rest, sw = read_all(selected, bytes([0x00, 0xC0, 0x00, 0x00, sw & 0xFF]))
    assert sw == 0x9000 and head + rest == whole


def test_get_response_with_a_small_le_keeps_the_rest(selected):
    whole, _ = read_all(selected, GET_CERT + "00")
    head, _ = tx(selected, GET_CERT + "10")
    more, sw2 = tx(selected, "00C0000020")
    assert len(more) == 0x20 and sw2 >> 8 == 0x61
    rest, sw3 = read_all(selected, bytes([0x00, 0xC0, 0x00, 0x00, sw2 & 0xFF]))
    assert sw3 == 0x9000 and head + more + rest == whole


def test_another_command_drops_the_pending_response(selected):
    _, sw = tx(selected, GET_CERT + "08")
    assert sw >> 8 == 0x61
    assert sw_of(selected, VERIFY_STATUS) == 0x63C3
    assert tx(selected, "00C0000000") == (b"", 0x6985)


def test_get_response_with_nothing_pending(selected):
    assert sw_of(selected, "00C0000000") == 0x6985


# --- malformed APDUs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("apdu", "sw"), [
    ("", 0x6700), ("00", 0x6700), ("00CB3F", 0x6700),
    ("00CB3FFF055C035FC1", 0x6700),  # Lc says 5, 3 bytes follow
    ("00CB3FFF055C035FC1050000", 0x6700),  # Lc 5 + 2 trailing bytes
    ("00CB3FFF00000500", 0x6700),  # extended length
    ("00CB3FFF000005" + "5C035FC105", 0x6700),
    ("80CB3FFF035C017E00", 0x6E00), ("0CCB3FFF035C017E00", 0x6E00), ("A0A4040005A000000308", 0x6E00),
    ("FF00", 0x6700), ("FFFFFFFF", 0x6E00),
    ("00FD000000", 0x6D00),  # yubico-piv-tool's GET VERSION
    ("00F8000000", 0x6D00), ("00CA7F6800", 0x6D00), ("00B0000000", 0x6D00), ("00840000 08", 0x6D00),
])
def test_malformed_and_unknown_apdus_get_a_status_word(selected, apdu, sw):
    assert tx(selected, apdu) == (b"", sw)


def test_random_garbage_never_raises(selected, p256):
    rng = random.Random(7300)
    tx(p256, SELECT_5)
    verify(p256, PIN)
    for _ in range(3000):
        size = rng.choice([0, 1, 2, 4, 5, 6, 9, 40, 200, 261, 300])
        raw = bytes(rng.getrandbits(8) for _ in range(size))
        if raw and rng.random() < 0.7:
            raw = bytes([rng.choice([0x00, 0x10])]) + raw[1:]
        if len(raw) > 1 and rng.random() < 0.7:
            raw = raw[:1] + bytes([rng.choice([0xA4, 0xCB, 0x20, 0x24, 0x2C, 0x87, 0xC0])]) + raw[2:]
        for applet in (selected, p256):
            out = applet.process(raw)
            assert isinstance(out, bytes) and len(out) >= 2


# --- PIN, PUK ----------------------------------------------------------------------------------------------


def test_pin_status_verify_and_unverify(selected, persisted):
    assert tx(selected, VERIFY_STATUS) == (b"", 0x63C3)
    assert tx(selected, h("0020008008") + pin_block(PIN)) == (b"", 0x9000)
    assert sw_of(selected, VERIFY_STATUS) == 0x9000
    assert persisted == []  # nothing changed: no write
    assert sw_of(selected, "0020FF80") == 0x9000
    assert sw_of(selected, VERIFY_STATUS) == 0x63C3


def test_wrong_pin_counts_down_persists_and_blocks(selected, rsa_card, persisted):
    assert verify(selected, "999999") == 0x63C2
    assert persisted == [(2, 3)] and rsa_card.pin_tries_left == 2
    assert verify(selected, PIN) == 0x9000  # a right PIN restores the counter...
    assert persisted == [(2, 3), (3, 3)]
    assert verify(selected, "11111111") == 0x63C2
    assert sw_of(selected, VERIFY_STATUS) == 0x63C2  # ...and a wrong one clears the verified state
    assert verify(selected, "11111111") == 0x63C1
    assert verify(selected, "11111111") == 0x6983
    assert rsa_card.pin_tries_left == 0 and persisted[-1] == (0, 3)
    assert sw_of(selected, VERIFY_STATUS) == 0x6983
    assert verify(selected, PIN) == 0x6983
    assert rsa_card.pin_tries_left == 0


@pytest.mark.parametrize("block", ["31323334353637", "313233343536373839", "3132333435FFFFFF",
                                   "31323334FF353637", "3132333435363A37", "FFFFFFFFFFFFFFFF",
                                   "313233343536FF00"])
def test_malformed_pin_blocks_do_not_consume_a_try(selected, persisted, block):
    assert sw_of(selected, f"00200080{len(h(block)):02X}{block}") == 0x6A80
    assert sw_of(selected, VERIFY_STATUS) == 0x63C3
    assert persisted == []


def test_verify_other_references_and_p1(selected):
    assert sw_of(selected, h("0020008108") + pin_block(PUK)) == 0x6A88
    assert sw_of(selected, h("0020000008") + pin_block(PIN)) == 0x6A88
    assert sw_of(selected, h("0020018008") + pin_block(PIN)) == 0x6A86


def test_reset_retry_counter_with_the_puk_unblocks(selected, rsa_card, persisted):
    for _ in range(3):
        verify(selected, "000000")
    assert rsa_card.pin_blocked
    assert sw_of(selected, h("002C008010") + pin_block("00000000") + pin_block("24682468")) == 0x63C2
    assert rsa_card.puk_tries_left == 2 and persisted[-1] == (0, 2)
    assert sw_of(selected, h("002C008010") + pin_block(PUK) + pin_block("24682468")) == 0x9000
    assert (rsa_card.pin_tries_left, rsa_card.puk_tries_left) == (3, 3) and persisted[-1] == (3, 3)
    assert sw_of(selected, VERIFY_STATUS) == 0x63C3
    assert verify(selected, PIN) == 0x63C2
    assert verify(selected, "24682468") == 0x9000


def test_puk_blocks_after_three_wrong(selected, rsa_card):
    wrong = h("002C008010") + pin_block("00000000") + pin_block("24682468")
    codes = [sw_of(selected, wrong) for _ in range(4)]
    assert codes == [0x63C2, 0x63C1, 0x6983, 0x6983]
    assert rsa_card.puk_blocked
    assert sw_of(selected, h("002C008010") + pin_block(PUK) + pin_block("24682468")) == 0x6983


def test_reset_retry_counter_rejects_bad_blocks_without_a_try(selected, rsa_card):
    assert sw_of(selected, h("002C008010") + pin_block(PUK) + pin_block("12")[:8]) == 0x6A80
    assert sw_of(selected, h("002C008008") + pin_block(PUK)) == 0x6A80
    assert sw_of(selected, h("002C008110") + pin_block(PUK) + pin_block("24682468")) == 0x6A88
    assert rsa_card.puk_tries_left == 3


def test_change_reference_data_for_the_pin(selected, rsa_card, persisted):
    assert sw_of(selected, h("0024008010") + pin_block("000000") + pin_block("7654321")) == 0x63C2
    assert sw_of(selected, h("0024008010") + pin_block(PIN) + pin_block("7654321")) == 0x9000
    assert rsa_card.pin_tries_left == 3 and persisted[-1] == (3, 3)
    assert verify(selected, PIN) == 0x63C2
    assert verify(selected, "7654321") == 0x9000
    assert rsa_card.check_pin(b"7654321") and not rsa_card.check_pin(PIN.encode())


def test_change_reference_data_for_the_puk(selected, rsa_card):
    assert sw_of(selected, h("0024008110") + pin_block(PUK) + pin_block("1234567")) == 0x6A80  # PUK: 8 digits
    assert sw_of(selected, h("0024008110") + pin_block(PUK) + pin_block("11112222")) == 0x9000
    assert rsa_card.check_puk(b"11112222")


def test_failed_persist_answers_memory_failure_and_grants_nothing(rsa_card):
    def broken(_card):
        raise OSError(28, "No space left on device")

    applet = PivApplet(rsa_card, broken)
    tx(applet, SELECT_5)
    assert verify(applet, "000000") == 0x6581
    assert rsa_card.pin_tries_left == 2  # the in-memory counter still went down
    assert verify(applet, PIN) == 0x6581
    assert sw_of(applet, VERIFY_STATUS) != 0x9000


def test_power_cycle_and_reset_forget_pin_and_selection(selected):
    for cycle in (lambda a: (a.power_off(), a.power_on()), lambda a: a.reset()):
        assert sw_of(selected, SELECT_5) == 0x9000
        assert verify(selected, PIN) == 0x9000
        cycle(selected)
        assert sw_of(selected, "00CB3FFF035C017E00") == 0x6A82
        assert sw_of(selected, SELECT_5) == 0x9000
        assert sw_of(selected, VERIFY_STATUS) == 0x63C3


def test_reselecting_piv_keeps_the_pin_verified(selected):
    assert verify(selected, PIN) == 0x9000
    assert sw_of(selected, SELECT_9) == 0x9000
    assert sw_of(selected, VERIFY_STATUS) == 0x9000


# --- GENERAL AUTHENTICATE ----------------------------------------------------------------------------------


def pkcs1_sha256_block(message: bytes) -> bytes:
    digest_info = h("3031300d060960864801650304020105000420") + hashlib.sha256(message).digest()
    return b"\x00\x01" + b"\xff" * (256 - 3 - len(digest_info)) + b"\x00" + digest_info


def general_authenticate(applet: PivApplet, alg: int, challenge: bytes) -> tuple[bytes, int]:
    body = (b"\x7c" + _len(3 + len(_len(len(challenge))) + len(challenge)) + b"\x82\x00\x81"
            + _len(len(challenge)) + challenge)
    parts = chain(CommandApdu(0x00, 0x87, alg, 0x9A, body, le=256))
    for part in parts[:-1]:
        assert tx(applet, part.encode()) == (b"", 0x9000)
    return read_all(applet, parts[-1].encode())


def _len(n: int) -> bytes:
    return bytes([n]) if n < 0x80 else (bytes([0x81, n]) if n < 0x100 else b"\x82" + n.to_bytes(2, "big"))


def test_sign_without_pin_is_refused(selected, p256):
    challenge = pkcs1_sha256_block(b"hello")
    assert general_authenticate(selected, 0x07, challenge) == (b"", 0x6982)
    tx(p256, SELECT_5)
    assert general_authenticate(p256, 0x11, hashlib.sha256(b"x").digest()) == (b"", 0x6982)


def test_rsa_2048_signature_arrives_chained_and_verifies(selected, rsa_card):
    message = b"Spine Desk login challenge 0001"
    block = pkcs1_sha256_block(message)
    body = h("7C820106 820081820100") + block
    assert len(body) == 266
    assert verify(selected, PIN) == 0x9000
    assert tx(selected, h("1087079AFF") + body[:255]) == (b"", 0x9000)
    first, sw = tx(selected, h("0087079A0B") + body[255:] + b"\x00")
    assert len(first) == 256 and sw == 0x6108
    last, sw = tx(selected, "00C0000008")
    assert sw == 0x9000
    response = first + last
    assert response[:8] == h("7C820104 82820100")
    rsa_card.certificate.public_key().verify(response[8:], message, padding.PKCS1v15(), hashes.SHA256())


def test_rsa_rejects_blocks_of_the_wrong_size_or_too_large(selected, rsa_card):
    verify(selected, PIN)
    n = rsa_card.private_key.public_key().public_numbers().n
    assert general_authenticate(selected, 0x07, n.to_bytes(256, "big"))[1] == 0x6A80
    assert general_authenticate(selected, 0x07, b"\xff" * 256)[1] == 0x6A80
    assert general_authenticate(selected, 0x07, b"\x00\x01" + b"\xff" * 253)[1] == 0x6A80
    assert general_authenticate(selected, 0x11, b"\x01" * 32)[1] == 0x6A86  # not this card's algorithm


def test_p256_signature_verifies_over_the_message(p256, p256_card):
    tx(p256, SELECT_5)
    assert verify(p256, PIN) == 0x9000
    message = b"Spine Desk login challenge 0002"
    digest = hashlib.sha256(message).digest()
    data, sw = tx(p256, h("0087119A267C24 82008120") + digest + b"\x00")
    assert sw == 0x9000
    outer = parse_single(data, 0x7C).value
    assert outer[0] == 0x82 and outer[1] == len(outer) - 2 and data[1] == len(data) - 2
    signature = tlv_map(outer)[0x82]
    p256_card.certificate.public_key().verify(signature, message, ec.ECDSA(hashes.SHA256()))


def test_p256_fits_short_and_long_inputs_to_32_bytes(p256, p256_card):
    tx(p256, SELECT_5)
    verify(p256, PIN)
    key = p256_card.certificate.public_key()
    prehashed = ec.ECDSA(utils.Prehashed(hashes.SHA256()))
    short = hashlib.sha1(b"short").digest()
    data, sw = general_authenticate(p256, 0x11, short)
    assert sw == 0x9000
    key.verify(tlv_map(parse_single(data, 0x7C).value)[0x82], short.rjust(32, b"\x00"), prehashed)
    long = hashlib.sha384(b"long").digest()
    data, sw = general_authenticate(p256, 0x11, long)
    assert sw == 0x9000
    key.verify(tlv_map(parse_single(data, 0x7C).value)[0x82], long[:32], prehashed)
    assert general_authenticate(p256, 0x07, b"\x01" * 256)[1] == 0x6A86


@pytest.mark.parametrize("body", ["7C", "7C02 8100", "7C04 82008100", "7C22 820081 20" + "00" * 32,
                                  "7C24 830081 20" + "11" * 32, "7C24 820181 20" + "11" * 32])
def test_malformed_general_authenticate_is_incorrect_data(p256, body):
    tx(p256, SELECT_5)
    verify(p256, PIN)
    data = h(body)
    assert sw_of(p256, h("0087119A") + bytes([len(data)]) + data + b"\x00") == 0x6A80


def test_other_key_references(p256):
    tx(p256, SELECT_5)
    verify(p256, PIN)
    assert sw_of(p256, h("0087119C267C24 82008120") + b"\x01" * 32 + b"\x00") == 0x6A88


@pytest.mark.parametrize(("alg", "block"), [("00", 8), ("03", 8), ("08", 16), ("0A", 16), ("0C", 16)])
def test_challenge_request_on_9b(selected, alg, block):
    data, sw = tx(selected, f"0087{alg}9B047C028100")
    assert sw == 0x9000 and data[:4] == bytes([0x7C, block + 2, 0x81, block]) and len(data) == block + 4
    again, _ = tx(selected, f"0087{alg}9B047C02810000")
    assert again[4:] != data[4:]


def test_wrong_management_answers_are_refused(selected):
    tx(selected, "0087039B047C028100")
    assert sw_of(selected, "0087039B0C7C0A8208" + "00" * 8) == 0x6982
    assert sw_of(selected, "0087039B0E7C0C81008208" + "00" * 8) == 0x6982
    assert sw_of(selected, "0087079B047C028100") == 0x6A86


def test_witness_before_select_is_not_found(rsa):
    assert sw_of(rsa, "0087009B047C028100") == 0x6A82


# --- command chaining --------------------------------------------------------------------------------------


def test_a_different_command_mid_chain_aborts_the_chain(selected):
    verify(selected, PIN)
    body = h("7C820106 820081820100") + pkcs1_sha256_block(b"m")
    assert sw_of(selected, h("1087079AFF") + body[:255]) == 0x9000
    assert tx(selected, "00CB3FFF035C017E00") == (h(DISCOVERY), 0x9000)  # processed on its own
    assert sw_of(selected, h("0087079A0B") + body[255:] + b"\x00") == 0x6A80  # the chain is gone


def test_a_chained_part_with_other_p1_p2_restarts_the_chain(selected, rsa_card):
    verify(selected, PIN)
    message = b"restart"
    body = h("7C820106 820081820100") + pkcs1_sha256_block(message)
    assert sw_of(selected, h("10870B9A05") + b"\x7c\x00\x00\x00\x00") == 0x9000
    assert sw_of(selected, h("1087079AFF") + body[:255]) == 0x9000
    data, sw = read_all(selected, h("0087079A0B") + body[255:] + b"\x00")
    assert sw == 0x9000
    rsa_card.certificate.public_key().verify(data[8:], message, padding.PKCS1v15(), hashes.SHA256())


def test_chained_data_is_capped(selected):
    verify(selected, PIN)
    codes = [sw_of(selected, h("1087079AFF") + b"\x00" * 255) for _ in range(17)]
    assert codes[:16] == [0x9000] * 16 and codes[16] == 0x6700
    assert sw_of(selected, h("0087079A0100")) == 0x6A80  # a fresh, one-part command


def test_unknown_instruction_with_chaining_is_refused_at_once(selected):
    assert sw_of(selected, "10FD000001AA") == 0x6D00


@pytest.mark.parametrize("weird", [None, 5, "00A4", object(), bytearray(b"\x00\xa4\x04\x00"),
                                   memoryview(b"\x00")])
def test_process_never_raises_even_for_non_bytes(rsa, weird):
    out = rsa.process(weird)  # type: ignore[arg-type]
    assert isinstance(out, bytes) and len(out) >= 2


def test_a_failed_save_rolls_the_pin_state_back(rsa_card):
    """RESET RETRY COUNTER whose save fails answers 6581 and the old (blocked) state stays, in memory too."""
    from app.card.virtual import PivApplet

    state = {"fail": False}

    def persist(card):
        if state["fail"]:
            raise OSError("disk full")

    applet = PivApplet(rsa_card, persist=persist)
    applet.power_on()
    assert sw_of(applet, SELECT_9) == 0x9000
    wrong = "0020008008" + b"99999999".hex()
    for _ in range(3):
        sw_of(applet, wrong)
    assert sw_of(applet, "00200080") == 0x6983
    state["fail"] = True
    unblock = "002c008010" + PUK.encode().hex() + b"13579024".hex()
    assert sw_of(applet, unblock) == 0x6581
    assert sw_of(applet, "0020008008" + b"13579024".hex()) == 0x6983  # the new PIN was not kept
    assert applet.card.pin_tries_left == 0
