"""Card management on the training card, driven by the PIV client over an in-memory link (no pcscd): management
key authentication (9B challenge-response), GENERATE ASYMMETRIC KEY PAIR and PUT DATA of the PIV Authentication
certificate, and what each refuses without the management key."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from app.card.management_key import ALG_3DES, ManagementKey
from app.card.piv import KeyAlgorithm, PivSession
from app.card.virtual import CardFile, PivApplet
from app.errors import CardManagementRefused
from tests.support.card import AppletLink
from tests.unit.card.virtual.conftest import PIN

WRONG_KEY = ManagementKey.named("aes128", bytes(16))




@pytest.fixture
def rsa_session(rsa_card, make_applet):
    applet = make_applet(rsa_card)
    session = PivSession(AppletLink(applet))
    session.select()
    return applet, session


@pytest.fixture
def p256_session(p256_card, make_applet):
    applet = make_applet(p256_card)
    session = PivSession(AppletLink(applet))
    session.select()
    return applet, session


def _reissue(ca, card: CardFile, public_key) -> x509.Certificate:
    return ca.issue_card_certificate(public_key, name=card.holder_name, card_uuid=card.card_uuid, days=30)


def test_management_key_authenticates(rsa_session):
    applet, session = rsa_session
    session.authenticate_management(ManagementKey.training())
    assert applet.admin_authenticated
    applet.reset()
    assert not applet.admin_authenticated


def test_wrong_management_key_is_refused(rsa_session):
    applet, session = rsa_session
    with pytest.raises(CardManagementRefused):
        session.authenticate_management(WRONG_KEY)
    with pytest.raises(CardManagementRefused):  # the right key under another algorithm
        session.authenticate_management(ManagementKey(ALG_3DES, bytes(range(1, 9)) * 3))
    assert not applet.admin_authenticated


def test_a_3des_card_takes_its_3des_key(rsa_card, make_applet):
    key = ManagementKey(ALG_3DES, bytes(range(1, 9)) * 3)
    rsa_card.management_key = key
    session = PivSession(AppletLink(make_applet(rsa_card)))
    session.select()
    session.authenticate_management(key)


def test_generate_and_put_data_need_the_management_key(rsa_session, ca):
    applet, session = rsa_session
    session.verify_pin(PIN)  # the PIN is not enough
    with pytest.raises(CardManagementRefused):
        session.generate_key(KeyAlgorithm.RSA2048)
    with pytest.raises(CardManagementRefused):
        session.put_certificate(applet.card.certificate)
    raw = applet.process(bytes.fromhex("004700 9A 05 AC03800111"))
    assert raw[-2:] == b"\x69\x82"


@pytest.mark.parametrize("fixture", ["rsa_session", "p256_session"])
def test_generate_replaces_the_key_and_put_data_stores_its_certificate(request, fixture, ca, persisted):
    applet, session = request.getfixturevalue(fixture)
    old_cert = applet.card.certificate
    algorithm = KeyAlgorithm.RSA2048 if isinstance(old_cert.public_key(), rsa.RSAPublicKey) else KeyAlgorithm.ECCP256
    session.authenticate_management(ManagementKey.training())
    saved_before = len(persisted)
    public = session.generate_key(algorithm)
    assert len(persisted) == saved_before + 1  # persisted before answering
    assert public == applet.card.private_key.public_key() != old_cert.public_key()
    assert applet.card.certificate_pending
    assert session.read_certificate() == old_cert  # the old certificate until the new one is stored

    session.verify_pin(PIN)  # the card signs with the new key at once
    message = b"signed by the new key"
    signature = session.sign(message, algorithm).value
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    else:
        public.verify(signature, message, ec.ECDSA(hashes.SHA256()))

    new_cert = _reissue(ca, applet.card, public)
    session.put_certificate(new_cert)
    assert session.read_certificate() == new_cert
    assert not applet.card.certificate_pending
    CardFile.from_json(applet.card.to_json())  # the file is consistent again


def test_put_data_refuses_a_certificate_for_another_key(rsa_session, ca):
    applet, session = rsa_session
    session.authenticate_management(ManagementKey.training())
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(CardManagementRefused, match="does not match"):
        session.put_certificate(_reissue(ca, applet.card, other))


def test_put_data_refuses_other_objects(rsa_session):
    applet, session = rsa_session
    session.authenticate_management(ManagementKey.training())
    cert = applet.card.certificate.public_bytes(serialization.Encoding.DER)
    body = bytes.fromhex("5C035FC102") + b"\x53\x82" + (len(cert) + 4).to_bytes(2, "big") + b"\x70\x82" \
        + len(cert).to_bytes(2, "big") + cert
    from app.card.apdu import CommandApdu, Exchange

    _, sw = Exchange(AppletLink(applet).transmit)(CommandApdu(0x00, 0xDB, 0x3F, 0xFF, body))
    assert sw == 0x6A81


def test_generate_refuses_other_slots_and_algorithms(rsa_session):
    applet, session = rsa_session
    session.authenticate_management(ManagementKey.training())
    assert applet.process(bytes.fromhex("0047009C05AC03800107"))[-2:] == b"\x6a\x88"
    assert applet.process(bytes.fromhex("0047009A05AC03800114"))[-2:] == b"\x6a\x80"  # P-384: not on this card


def test_a_failed_save_keeps_the_old_key(rsa_card, ca):
    def fail(card):
        raise OSError("disk full")

    applet = PivApplet(rsa_card, fail)
    applet.power_on()
    session = PivSession(AppletLink(applet))
    session.select()
    old_key = rsa_card.private_key
    session.authenticate_management(ManagementKey.training())
    raw = applet.process(bytes.fromhex("0047009A05AC03800107"))
    assert raw[-2:] == b"\x65\x81"
    assert applet.card.private_key is old_key and not applet.card.certificate_pending


def test_a_pending_card_file_round_trips(rsa_card):
    rsa_card.private_key = rsa.generate_private_key(65537, 2048)
    rsa_card.certificate_pending = True
    again = CardFile.from_json(rsa_card.to_json())
    assert again.certificate_pending and again.management_key == ManagementKey.training()
    doc = rsa_card.to_json()
    doc["certificate_pending"] = False
    with pytest.raises(ValueError, match="does not match"):
        CardFile.from_json(doc)


def test_card_files_without_a_management_key_have_the_training_key(rsa_card):
    doc = rsa_card.to_json()
    del doc["management_key"], doc["certificate_pending"]
    assert CardFile.from_json(doc).management_key == ManagementKey.training()
    doc["management_key"] = {"algorithm": "aes256", "key": "00" * 32}
    with pytest.raises(ValueError, match="management_key"):
        CardFile.from_json(doc)

