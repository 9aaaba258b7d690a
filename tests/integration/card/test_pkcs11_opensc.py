"""The PKCS#11 back-end through OpenSC's opensc-pkcs11.so over the virtual PIV card in pcscd's vpcd reader, and
what YubiKey's ykcs11 makes of that card. Real pcscd, real modules; nothing mocked below PKCS#11."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from app.card.backend import BackendKind
from app.card.pcsc import CardMonitor, EventKind
from app.card.pkcs11 import Pkcs11Backend, TokenMonitor
from app.card.virtual import CardFile
from app.error_text import user_text
from app.errors import CardError, CardRemoved, InvalidPinFormat, PinBlocked, PinIncorrect

from ..conftest import PIN, PUK, READER0, REQUIRED

pytestmark = pytest.mark.pcsc

MESSAGE = b"login challenge " * 4
ARCH = ("x86_64-linux-gnu", "aarch64-linux-gnu")


def module(name: str, package: str) -> Path:
    path = next((p for p in (Path("/usr/lib") / a / name for a in ARCH) if p.exists()), None)
    if path is None:
        if REQUIRED:
            pytest.fail(f"{name} is required here (apt-get install {package})")
        pytest.skip(f"{name} not installed (apt-get install {package})")
    return path


@pytest.fixture
def opensc() -> Pkcs11Backend:
    return Pkcs11Backend(module("opensc-pkcs11.so", "opensc-pkcs11"))


def verify(der: bytes, signature: bytes) -> None:
    key = x509.load_der_x509_certificate(der).public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))
    else:
        key.verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("card_fixture", ["rsa_card", "p256_card"])
def test_login_through_opensc(opensc, insert, request, card_fixture):
    path = request.getfixturevalue(card_fixture)
    insert(path)
    token = opensc.open(READER0, b"")
    assert token is not None
    try:
        assert token.info.backend is BackendKind.PKCS11 and token.info.reader == READER0
        assert token.info.token_label == "Dr Ada Training" and token.info.manufacturer == "piv_II"
        assert token.certificate_der() == CardFile.load(path).certificate.public_bytes(serialization.Encoding.DER)
        token.verify_pin(PIN)
        verify(token.certificate_der(), token.sign(MESSAGE))
    finally:
        token.forget_pin()
        token.close()


def test_wrong_pins_count_down_to_blocked(opensc, rsa_card, insert):
    insert(rsa_card)
    token = opensc.open(READER0)
    with pytest.raises(PinIncorrect) as first:
        token.verify_pin("00000000")
    assert first.value.tries_left is None  # OpenSC flags only the final try
    with pytest.raises(PinIncorrect) as second:
        token.verify_pin("00000000")
    assert second.value.tries_left == 1 and "1 try left" in user_text(second.value)
    assert token.pin_status().tries_left == 1
    with pytest.raises(PinBlocked):
        token.verify_pin("00000000")
    status = token.pin_status()
    assert status.blocked and status.tries_left == 0
    with pytest.raises(PinBlocked):
        token.verify_pin(PIN)
    token.close()
    assert CardFile.load(rsa_card).pin_tries_left == 0


@pytest.mark.parametrize("pin", ["12ab5678", "123456789", "123"])
def test_pins_the_card_refuses_use_no_try(opensc, rsa_card, insert, pin):
    insert(rsa_card)
    token = opensc.open(READER0)
    with pytest.raises(InvalidPinFormat):
        token.verify_pin(pin)
    token.close()
    assert CardFile.load(rsa_card).pin_tries_left == 3


def test_change_pin_through_opensc(opensc, rsa_card, insert):
    insert(rsa_card)
    token = opensc.open(READER0)
    token.change_pin(PIN, "13572468")
    token.close()
    assert CardFile.load(rsa_card).check_pin(b"13572468")


def test_opensc_cannot_unblock_with_the_puk_and_says_so(opensc, rsa_card, insert):
    insert(rsa_card)
    token = opensc.open(READER0)
    with pytest.raises(CardError, match="cannot unblock the PIN"):
        token.unblock_pin(PUK, "13572468")
    token.verify_pin(PIN)  # nothing else changed; the token still works
    verify(token.certificate_der(), token.sign(MESSAGE))
    token.close()


def _pull_during_sign(card) -> threading.Event:
    """Make the card vanish while it answers GENERAL AUTHENTICATE (after doing the work)."""
    real = card.applet.process
    pulled = threading.Event()

    def process(apdu: bytes) -> bytes:
        answer = real(apdu)
        if len(apdu) > 1 and apdu[1] == 0x87 and not pulled.is_set():
            pulled.set()
            threading.Thread(target=card.link.stop).start()
            time.sleep(0.3)
        return answer

    card.applet.process = process
    return pulled


def test_card_pulled_mid_sign_is_card_removed_and_the_token_is_done(opensc, rsa_card, insert, pcscd):
    card = insert(rsa_card)
    token = opensc.open(READER0)
    token.verify_pin(PIN)
    pulled = _pull_during_sign(card)
    with pytest.raises(CardRemoved) as removed:
        token.sign(MESSAGE)
    assert pulled.is_set()
    assert "removed" in user_text(removed.value)
    for again in (lambda: token.sign(MESSAGE), lambda: token.verify_pin(PIN), token.pin_status):
        with pytest.raises(CardRemoved):
            again()
    token.forget_pin()  # harmless on a token that is gone
    token.close()
    saved = CardFile.load(rsa_card)
    assert saved.pin_tries_left == 3 and saved.check_pin(PIN.encode())


def test_card_pulled_between_pin_and_sign(opensc, rsa_card, insert):
    card = insert(rsa_card)
    token = opensc.open(READER0)
    token.verify_pin(PIN)
    card.pull()
    with pytest.raises(CardRemoved):
        token.sign(MESSAGE)
    assert opensc.open(READER0) is None  # no token in that reader now


def test_token_monitor_and_pcsc_monitor_both_see_removal(opensc, rsa_card, insert):
    events: dict[str, list] = {"pkcs11": [], "pcsc": []}
    seen = threading.Condition()

    def recorder(name):
        def on_event(event):
            with seen:
                events[name].append(event)
                seen.notify_all()
        return on_event

    def wait(name, kind, timeout=5.0):
        with seen:
            return seen.wait_for(lambda: any(e.kind is kind and e.reader == READER0 for e in events[name]), timeout)

    card = insert(rsa_card)
    tokens = TokenMonitor(opensc.module_path, recorder("pkcs11"))
    readers = CardMonitor(recorder("pcsc"), poll_ms=200)
    tokens.start()
    readers.start()
    try:
        assert wait("pkcs11", EventKind.CARD_INSERTED) and wait("pcsc", EventKind.CARD_INSERTED)
        card.pull()
        assert wait("pkcs11", EventKind.CARD_REMOVED) and wait("pcsc", EventKind.CARD_REMOVED)
    finally:
        tokens.stop()
        readers.stop()
    assert tokens.uses_slot_events is True  # OpenSC answers C_WaitForSlotEvent without blocking


def test_ykcs11_does_not_see_a_card_outside_a_yubikey_reader(rsa_card, insert):
    """ykcs11 (yubico-piv-tool 2.2) lists only readers whose name contains "Yubico": the virtual PIV card in
    "Virtual PCD 00 00" is not offered, and the back-end says there is no token there, without an error."""
    ykcs11 = Pkcs11Backend(module("libykcs11.so", "ykcs11"))
    insert(rsa_card)
    assert ykcs11.open(READER0) is None
    assert ykcs11.open(None) is None
    events = []
    monitor = TokenMonitor(ykcs11.module_path, events.append)
    monitor.start()
    time.sleep(0.5)  # let it scan a few times: it must find nothing and report nothing but the module being up
    monitor.stop()
    assert [e.kind for e in events] == [EventKind.SERVICE_UP]


def test_forgetting_the_pin_leaves_the_card_unverified_for_other_programs(opensc, rsa_card, insert):
    """OpenSC's C_Logout sends nothing to a PIV card: without more, the card would stay PIN-verified for any other
    PC/SC program until it is reset or pulled. forget_pin (and close after a login) must leave it unverified."""
    card = insert(rsa_card)
    token = opensc.open(READER0)
    token.verify_pin(PIN)
    verify(token.certificate_der(), token.sign(MESSAGE))
    assert card.applet.pin_verified
    token.forget_pin()
    assert not card.applet.pin_verified
    token.verify_pin(PIN)  # the same token logs in again after that
    verify(token.certificate_der(), token.sign(MESSAGE))
    token.close()
    assert not card.applet.pin_verified
    again = opensc.open(READER0)  # and the card opens afresh
    again.verify_pin(PIN)
    verify(again.certificate_der(), again.sign(MESSAGE))
    again.close()
