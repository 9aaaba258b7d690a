"""The training card file: round trip, 0600, damage reported clearly, no PIN in clear, blocks persist."""

from __future__ import annotations

import copy
import json
import os
import stat
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.card.virtual import CardFile, PivApplet, issue_card
from app.card.virtual.cardfile import FORMAT
from app.card.virtual.fascn import build_fascn, decode_fascn, encode_fascn, fascn_is_valid
from app.card.virtual.pin import DEFAULT_ITERATIONS, pad_pin, unpad_pin
from app.errors import CardFileError, InvalidPinFormat
from tests.unit.card.virtual.conftest import PIN, PUK


def _der(card: CardFile) -> bytes:
    return card.certificate.public_bytes(serialization.Encoding.DER)


def _key_der(card: CardFile) -> bytes:
    return card.private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())


@pytest.mark.parametrize("fixture", ["rsa_card", "p256_card"])
def test_round_trip(request, tmp_path, fixture):
    card = request.getfixturevalue(fixture)
    path = tmp_path / "card.json"
    card.save(path)
    loaded = CardFile.load(path)
    for name in ("holder_name", "card_uuid", "fascn", "algorithm", "chuid_expiry", "pin_hash", "puk_hash",
                 "pin_tries_left", "pin_tries_max", "puk_tries_left", "puk_tries_max"):
        assert getattr(loaded, name) == getattr(card, name), name
    assert _der(loaded) == _der(card) and _key_der(loaded) == _key_der(card)
    assert loaded.check_pin(PIN.encode()) and loaded.check_puk(PUK.encode())
    assert isinstance(loaded.card_uuid, uuid.UUID)
    assert json.loads(path.read_text())["format"] == FORMAT == "spinedesk-training-card/1"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_saved_file_is_0600_even_over_a_world_readable_one(tmp_path, p256_card):
    path = tmp_path / "card.json"
    path.write_text("{}")
    path.chmod(0o644)
    p256_card.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]  # no temporary file left behind


def test_no_pin_or_puk_digits_in_the_file(tmp_path, ca):
    pin, puk = "73915482", "86420135"
    card, used = issue_card(ca, name="Dr Secret", algorithm="p256", pin=pin, puk=puk)
    assert used == puk
    path = tmp_path / "card.json"
    card.save(path)
    text = path.read_text()
    for secret in (pin, puk):
        assert secret not in text
        assert secret.encode().hex() not in text
        assert pad_pin(secret).hex() not in text
    doc = json.loads(text)
    assert doc["pin"]["kdf"] == "pbkdf2-sha256" and doc["pin"]["iterations"] == DEFAULT_ITERATIONS
    assert len(bytes.fromhex(doc["pin"]["salt"])) == 16
    assert pin not in repr(card) and "pin_hash" not in repr(card)


def test_check_pin_and_set_pin_rehash(p256_card):
    assert p256_card.check_pin(PIN.encode())
    assert p256_card.check_pin(pad_pin(PIN))  # padding tolerated
    assert not p256_card.check_pin(b"654321")
    before = p256_card.pin_hash
    p256_card.set_pin("24681357")
    assert p256_card.pin_hash.salt != before.salt
    assert p256_card.check_pin(b"24681357") and not p256_card.check_pin(PIN.encode())
    for bad in ("12345", "123456789", "12a456", "", "١٢٣٤٥٦"):
        with pytest.raises(InvalidPinFormat):
            p256_card.set_pin(bad)
    with pytest.raises(InvalidPinFormat):
        p256_card.set_puk("1234567")


def test_pin_padding_rules():
    assert pad_pin("123456") == b"123456\xff\xff"
    assert pad_pin("12345678") == b"12345678"
    assert unpad_pin(b"123456\xff\xff") == b"123456"
    assert unpad_pin(b"12345\xff\xff\xff") is None
    assert unpad_pin(b"1234\xff567") is None
    assert unpad_pin(b"123456") is None


def test_a_blocked_card_stays_blocked_across_restarts(tmp_path, rsa_card):
    path = tmp_path / "card.json"
    rsa_card.save(path)
    card = CardFile.load(path)
    applet = PivApplet(card, lambda c: c.save(path))
    applet.power_on()
    applet.process(bytes.fromhex("00A4040005A000000308"))
    wrong = bytes.fromhex("0020008008") + b"00000000"
    assert [applet.process(wrong)[-2:].hex() for _ in range(3)] == ["63c2", "63c1", "6983"]
    reloaded = CardFile.load(path)
    assert reloaded.pin_tries_left == 0 and reloaded.pin_blocked
    again = PivApplet(reloaded, lambda c: c.save(path))
    again.power_on()
    again.process(bytes.fromhex("00A4040005A000000308"))
    assert again.process(bytes.fromhex("0020008008") + pad_pin(PIN))[-2:] == b"\x69\x83"


# --- damaged files -----------------------------------------------------------------------------------------


def _problem(path) -> str:
    with pytest.raises(CardFileError) as caught:
        CardFile.load(path)
    assert caught.value.path == str(path)
    return caught.value.problem


def _write(tmp_path, doc) -> os.PathLike:
    path = tmp_path / "card.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


@pytest.fixture
def doc(p256_card) -> dict:
    return p256_card.to_json()


def test_missing_file_and_folder(tmp_path):
    assert "does not exist" in _problem(tmp_path / "nope.json")
    assert "folder" in _problem(tmp_path)


def test_not_json_and_not_a_card(tmp_path, doc):
    assert "not valid JSON" in _problem(_write(tmp_path, "{ not json"))
    assert "not valid JSON" in _problem(_write(tmp_path, ""))
    (tmp_path / "card.json").write_bytes(b"\xff\xfe\x00garbage")
    assert "not text" in _problem(tmp_path / "card.json")
    assert "not a Spine Desk training card file" in _problem(_write(tmp_path, [1, 2]))
    assert "format" in _problem(_write(tmp_path, {**doc, "format": "something-else/1"}))
    del doc["format"]
    assert "not a Spine Desk training card file" in _problem(_write(tmp_path, doc))


@pytest.mark.parametrize(("change", "words"), [
    ({"holder_name": None}, "'holder_name' must be a string"),
    ({"card_uuid": "not-a-uuid"}, "'card_uuid' is not valid"),
    ({"fascn": "zz"}, "'fascn' is not valid hex"),
    ({"fascn": "d4e739"}, "FASC-N"),
    ({"algorithm": "rsa1024"}, "algorithm"),
    ({"algorithm": "rsa2048"}, "not a rsa2048 key"),
    ({"private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
     "private key cannot be read"),
    ({"certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
     "certificate cannot be read"),
    ({"chuid_expiry": "31/12/2030"}, "'chuid_expiry' is not valid"),
    ({"pin": {"kdf": "plain", "value": "123456"}}, "'pin' must be a pbkdf2-sha256 hash record"),
    ({"pin_tries_left": 4}, "'pin_tries_left' must be a whole number from 0"),
    ({"pin_tries_left": "3"}, "'pin_tries_left' must be a whole number"),
    ({"puk_tries_max": 0}, "'puk_tries_max' must be a whole number from 1 to 15"),
])
def test_damaged_fields_are_named(tmp_path, doc, change, words):
    assert words in _problem(_write(tmp_path, {**doc, **change}))


def test_missing_field_is_named(tmp_path, doc):
    del doc["chuid_expiry"]
    assert "'chuid_expiry' is missing" in _problem(_write(tmp_path, doc))


def test_bad_pin_hash_record(tmp_path, doc):
    doc["puk"] = {**doc["puk"], "salt": "00"}
    assert "16-byte salt" in _problem(_write(tmp_path, doc))


def test_certificate_that_does_not_match_the_key(tmp_path, doc, rsa_card, p256_master):
    other = copy.copy(p256_master)
    other.private_key = ec.generate_private_key(ec.SECP256R1())
    doc["private_key"] = other.to_json()["private_key"]
    assert "certificate does not match the private key" in _problem(_write(tmp_path, doc))


def test_unwritable_destination_raises_card_file_error(tmp_path, p256_card):
    with pytest.raises(CardFileError) as caught:
        p256_card.save(tmp_path / "missing-folder" / "card.json")
    assert "cannot be written" in caught.value.problem


# --- issuing and the FASC-N --------------------------------------------------------------------------------


def test_issue_card_returns_a_consistent_card_and_a_random_puk(ca):
    card_uuid = uuid.uuid4()
    card, puk = issue_card(ca, name="  Dr Issue  ", card_uuid=card_uuid, algorithm="p256", pin="1234567",
                           days=30)
    assert len(puk) == 8 and puk.isdigit() and card.check_puk(puk.encode())
    assert card.card_uuid == card_uuid and card.holder_name == "Dr Issue" and card.algorithm == "p256"
    assert card.certificate.public_key() == card.private_key.public_key()
    assert card.chuid_expiry == card.certificate.not_valid_after_utc.date()
    assert card.fascn == build_fascn(card_uuid) and fascn_is_valid(card.fascn)
    assert (card.pin_tries_left, card.pin_tries_max, card.puk_tries_left, card.puk_tries_max) == (3, 3, 3, 3)


def test_issue_card_rejects_bad_input_before_making_keys(ca):
    with pytest.raises(InvalidPinFormat):
        issue_card(ca, name="A", algorithm="p256", pin="12")
    with pytest.raises(InvalidPinFormat):
        issue_card(ca, name="A", algorithm="p256", pin="123456", puk="123")
    with pytest.raises(ValueError, match="algorithm"):
        issue_card(ca, name="A", algorithm="ed25519", pin="123456")


def test_fascn_matches_the_reference_vector_layout():
    # yubico-piv-tool's default CHUID FASC-N: agency 9999, system 9999, credential 999999, CS 0, ICI 1,
    # PI 0000000000, OC 3, OI 0000, POA 1
    reference = bytes.fromhex("D4E739DA739CED39CE739D836858210842108421C84210C3EB")
    assert encode_fascn("9999", "9999", "999999", "0", "1", "0000000000", "3", "0000", "1") == reference
    assert decode_fascn(reference) is not None
    damaged = bytearray(reference)
    damaged[10] ^= 0x01
    assert not fascn_is_valid(bytes(damaged))
    fascn = build_fascn(uuid.UUID(int=123456789012345678))
    chars = decode_fascn(fascn)
    assert chars is not None and len(fascn) == 25
    assert chars[1:5] == [9, 9, 9, 9] and chars[11:17] == [3, 4, 5, 6, 7, 8]  # agency; credential from UUID
