"""The PKCS#11 back-end against SoftHSM2, a real PKCS#11 module standing in for a smartcard (no mocks below it).

SoftHSM2 has no PIN retry limit (it only raises CKF_USER_PIN_COUNT_LOW), so the final try and the locked PIN are
tested over OpenSC and the virtual PIV card (test_pkcs11_opensc.py), whose counter is real.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from app.card.backend import BackendKind, CardBackend, CardFamily, LoginToken
from app.card.pcsc import EventKind
from app.card.pkcs11 import Pkcs11Backend, TokenMonitor, load_module
from app.error_text import user_text
from app.errors import (
    CardError,
    CardRemoved,
    InvalidPinFormat,
    NoLoginCertificate,
    PinIncorrect,
    PinRequired,
    Pkcs11ModuleError,
    PukIncorrect,
    SeveralCards,
)
from app.pki import validate
from app.pki.identity import subject_identity
from tests.support.softhsm import CARD_UUID, SO_PIN, USER_PIN, issue_certificates

MESSAGE = b"login challenge " * 4  # 64 bytes


def verify(cert: x509.Certificate, signature: bytes, message: bytes = MESSAGE) -> None:
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        algorithm = hashes.SHA384() if isinstance(key.curve, ec.SECP384R1) else hashes.SHA256()
        key.verify(signature, message, ec.ECDSA(algorithm))  # DER, as the service expects
    else:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())


@pytest.fixture
def rsa_token(softhsm):
    issued = softhsm.make_card("Dr Ada RSA", "rsa2048")
    return Pkcs11Backend(softhsm.module).open(None), issued


@pytest.mark.parametrize("alg", ["rsa2048", "p256", "p384"])
def test_opens_the_only_token_and_signs_with_the_login_key(softhsm, alg):
    issued = softhsm.make_card(f"Dr Ada {alg}", alg)
    backend: CardBackend = Pkcs11Backend(softhsm.module)
    assert backend.kind is BackendKind.PKCS11
    token = backend.open(None)
    assert isinstance(token, LoginToken)
    info = token.info
    assert info.backend is BackendKind.PKCS11 and info.module == str(softhsm.module)
    assert info.token_label == f"Dr Ada {alg}" and info.manufacturer == "SoftHSM project"
    assert info.model == "SoftHSM v2" and info.serial and info.reader.startswith("SoftHSM slot")
    assert info.family is CardFamily.UNKNOWN
    # the login certificate is chosen by key usage and EKU, although the distractor is labelled "Authentication"
    assert token.certificate_der() == issued.certificate.public_bytes(serialization.Encoding.DER)
    assert "CKA_ID 01" in token.choice and "digitalSignature" in token.choice
    token.verify_pin(USER_PIN)
    assert token.pin_status().verified
    verify(issued.certificate, token.sign(MESSAGE))
    token.forget_pin()
    assert not token.pin_status().verified
    with pytest.raises(PinRequired):
        token.sign(MESSAGE)
    token.close()


def test_the_token_holds_a_card_certificate_of_the_nhs_shaped_test_pki(softhsm):
    issued = softhsm.make_card("NHS shaped", "p256")
    token = Pkcs11Backend(softhsm.module).open(None)
    cert = x509.load_der_x509_certificate(token.certificate_der())
    assert cert == issued.certificate and cert.issuer == softhsm.pki.issuing.certificate.subject
    assert subject_identity(cert, "serialNumber") == CARD_UUID  # the NHS user UUID in the subject
    verdict = validate(cert, softhsm.pki.trust_store())  # root -> issuing CA -> card, both CRLs current
    assert verdict.status.value == "trusted", verdict.detail
    token.close()


def test_family_hint_names_a_token_nothing_else_identifies(softhsm):
    softhsm.make_card("Series 8", "rsa2048")
    token = Pkcs11Backend(softhsm.module, family_hint=CardFamily.SERIES_8).open(None)
    assert token.info.family is CardFamily.SERIES_8


def test_rsa_without_the_combined_mechanism_signs_a_local_digest_info(rsa_token):
    token, issued = rsa_token
    token._mechanisms.clear()  # as a token offering only CKM_RSA_PKCS
    token.verify_pin(USER_PIN)
    verify(issued.certificate, token.sign(MESSAGE))


def test_wrong_pin_says_incorrect_without_a_count_softhsm_never_locks(rsa_token):
    token, issued = rsa_token
    for _ in range(4):
        with pytest.raises(PinIncorrect) as wrong:
            token.verify_pin("00000000")
        assert wrong.value.tries_left is None
    assert "does not say how many tries are left" in user_text(wrong.value)
    assert token.pin_status().blocked is False
    token.verify_pin(USER_PIN)
    verify(issued.certificate, token.sign(MESSAGE))


def test_change_pin(rsa_token):
    token, issued = rsa_token
    token.change_pin(USER_PIN, "13572468")
    with pytest.raises(PinIncorrect):
        token.verify_pin(USER_PIN)
    token.verify_pin("13572468")
    verify(issued.certificate, token.sign(MESSAGE))
    with pytest.raises(PinIncorrect):
        token.change_pin(USER_PIN, "99999999")


def test_unblock_with_the_so_pin_sets_a_new_pin(rsa_token):
    token, issued = rsa_token
    with pytest.raises(PukIncorrect):  # the security officer's PIN is the unlock code: never "wrong PIN"
        token.unblock_pin("00000000", "13572468")
    token.unblock_pin(SO_PIN, "13572468")
    with pytest.raises(PinIncorrect):
        token.verify_pin(USER_PIN)
    token.verify_pin("13572468")
    verify(issued.certificate, token.sign(MESSAGE))


@pytest.mark.parametrize("pin", ["1234\n567", "", "12\x0034"])
def test_pins_no_card_takes_are_refused_before_the_card(rsa_token, pin):
    token, _ = rsa_token
    with pytest.raises(InvalidPinFormat) as refused:
        token.verify_pin(pin)
    assert "Nothing was sent to the card" in user_text(refused.value)
    token.verify_pin(USER_PIN)


@pytest.mark.parametrize("new_pin", ["123", "9" * 300])
def test_a_new_pin_of_a_length_the_card_refuses_is_invalid_format(rsa_token, new_pin):
    token, issued = rsa_token
    with pytest.raises(InvalidPinFormat, match="length"):
        token.change_pin(USER_PIN, new_pin)  # SoftHSM2: CKR_PIN_LEN_RANGE (4 to 255)
    token.verify_pin(USER_PIN)  # the PIN is unchanged
    verify(issued.certificate, token.sign(MESSAGE))


def test_token_without_a_certificate_is_a_clear_error(softhsm):
    softhsm.make_card("Blank", "p256", with_certificate=False, distractor=False)
    with pytest.raises(NoLoginCertificate) as missing:
        Pkcs11Backend(softhsm.module).open(None)
    assert "holds no certificate" in str(missing.value)
    assert "'Blank' cannot be used to log in" in user_text(missing.value)


def test_token_with_only_a_non_login_certificate_is_a_clear_error(softhsm):
    softhsm.make_card("Signing only", "rsa2048", with_certificate=False, distractor=True)
    with pytest.raises(NoLoginCertificate, match="none of its 1 certificates is meant for logging in"):
        Pkcs11Backend(softhsm.module).open(None)


def test_missing_module_names_the_path_and_package(tmp_path):
    path = tmp_path / "libsofthsm2.so"
    with pytest.raises(Pkcs11ModuleError) as missing:
        Pkcs11Backend(path).open(None)
    assert missing.value.path == str(path) and missing.value.package == "softhsm2"
    text = user_text(missing.value)
    assert str(path) in text and "does not exist" in text and "'softhsm2'" in text


@pytest.mark.parametrize("name", ["opensc-pkcs11.so", "libykcs11.so.2", "libclassicclient.so"])
def test_missing_module_names_its_provider(tmp_path, name):
    with pytest.raises(Pkcs11ModuleError) as missing:
        load_module(tmp_path / name)
    expected = {"opensc-pkcs11.so": "'opensc-pkcs11'", "libykcs11.so.2": "'ykcs11'",
                "libclassicclient.so": "the card vendor's middleware that NHS supplies to your IT department"}[name]
    assert expected in user_text(missing.value)


def test_a_library_that_is_not_pkcs11_is_refused_by_name():
    libz = next((p for p in (Path("/usr/lib/x86_64-linux-gnu/libz.so.1"), Path("/lib/x86_64-linux-gnu/libz.so.1"),
                             Path("/usr/lib/aarch64-linux-gnu/libz.so.1")) if p.exists()), None)
    if libz is None:
        pytest.skip("no libz.so.1 here")
    with pytest.raises(Pkcs11ModuleError) as refused:
        Pkcs11Backend(libz).open(None)
    assert "not a PKCS#11 module" in refused.value.problem and "C_GetFunctionList" in refused.value.problem
    assert str(libz) in user_text(refused.value)


def test_two_tokens_need_a_reader_and_each_opens_by_its_slot(softhsm):
    first = softhsm.make_card("Card One", "p256")
    second = softhsm.make_card("Card Two", "rsa2048")
    backend = Pkcs11Backend(softhsm.module)
    with pytest.raises(SeveralCards) as several:
        backend.open(None)
    assert len(several.value.cards) == 2 and any("Card One" in c for c in several.value.cards)
    assert "More than one smartcard" in user_text(several.value)
    slots = {s.get_token().label.strip(): s.slot_description.strip()
             for s in load_module(softhsm.module).lib.get_slots(token_present=True)}
    for label, issued in (("Card One", first), ("Card Two", second)):
        token = backend.open(slots[label])
        assert token.info.token_label == label and token.info.reader == slots[label]
        token.verify_pin(USER_PIN)
        verify(issued.certificate, token.sign(MESSAGE))
        token.close()
    assert backend.open("Card Two").info.token_label == "Card Two"  # by token label
    assert backend.open("No such reader") is None


def test_token_monitor_reports_what_is_there_by_polling(softhsm):
    softhsm.make_card("Watched", "p256")
    events = []
    seen = threading.Condition()

    def on_event(event):
        with seen:
            events.append(event)
            seen.notify_all()

    monitor = TokenMonitor(softhsm.module, on_event)
    monitor.start()
    try:
        with seen:
            assert seen.wait_for(lambda: any(e.kind is EventKind.CARD_INSERTED for e in events), 5)
    finally:
        monitor.stop()
    assert events[0].kind is EventKind.SERVICE_UP
    assert monitor.uses_slot_events is True  # SoftHSM2 answers the non-blocking call (CKR_NO_EVENT)
    slots = [e.reader for e in events if e.kind is EventKind.READER_ADDED]
    inserted = [e.reader for e in events if e.kind is EventKind.CARD_INSERTED]
    assert len(inserted) == 1 and inserted[0] in slots  # the initialised token; SoftHSM's free slot is no card
    assert not any(e.kind is EventKind.CARD_REMOVED for e in events)


def test_monitor_of_a_missing_module_says_service_down(tmp_path):
    events = []
    done = threading.Event()
    monitor = TokenMonitor(tmp_path / "libsofthsm2.so", lambda e: (events.append(e), done.set()))
    monitor.start()
    try:
        assert done.wait(5)
    finally:
        monitor.stop()
    assert events[0].kind is EventKind.SERVICE_DOWN


def test_no_pin_reaches_the_logs(rsa_token, caplog):
    token, _ = rsa_token
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PinIncorrect):
        token.verify_pin("86420864")
    token.verify_pin(USER_PIN)
    token.sign(MESSAGE)
    token.change_pin(USER_PIN, "97531975")
    token.unblock_pin(SO_PIN, USER_PIN)
    assert not any(secret in caplog.text for secret in ("86420864", USER_PIN, "97531975", SO_PIN))


def test_several_login_certificates_pick_by_cka_id_and_say_why(softhsm):
    softhsm.make_card("Two logins", "p256")
    earlier, _ = issue_certificates("p256", name="Dr Ada Earlier", pki=softhsm.pki)
    softhsm.write("Two logins", earlier, bytes.fromhex("00"), "Zzz label that sorts last")
    token = Pkcs11Backend(softhsm.module).open(None)
    assert token.certificate_der() == earlier.certificate.public_bytes(serialization.Encoding.DER)
    assert token.choice.startswith("login certificate CKA_ID 00") and "1 other candidate" in token.choice
    token.verify_pin(USER_PIN)
    verify(earlier.certificate, token.sign(MESSAGE))
    again = Pkcs11Backend(softhsm.module).open(None)  # the same choice every time
    assert again.certificate_der() == token.certificate_der()


def test_unblock_works_after_wrong_pins(rsa_token):
    """A failed C_Login leaves the binding's session open; it must not stop the security officer's login."""
    token, issued = rsa_token
    for _ in range(2):
        with pytest.raises(PinIncorrect):
            token.verify_pin("00000000")
    token.unblock_pin(SO_PIN, "13572468")
    token.verify_pin("13572468")
    verify(issued.certificate, token.sign(MESSAGE))


def test_a_closed_token_refuses_work_and_the_module_stays_loaded(rsa_token, softhsm):
    token, issued = rsa_token
    token.verify_pin(USER_PIN)
    token.close()
    with pytest.raises(CardError, match="closed") as closed:
        token.sign(MESSAGE)
    assert not isinstance(closed.value, CardRemoved)
    token.forget_pin()
    token.close()  # twice is harmless
    again = Pkcs11Backend(softhsm.module).open(None)  # the module was not finalised
    assert not again.pin_status().verified  # closing logged out
    again.verify_pin(USER_PIN)
    verify(issued.certificate, again.sign(MESSAGE))
