"""The training card through the real pcscd + vpcd + pyscard: events, status, PIN, signatures, removal."""

from __future__ import annotations

import threading
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding

from app.card.pcsc import CardMonitor, EventKind
from app.card.piv import PivSession, algorithm_for
from app.card.virtual import CardFile
from app.errors import CardRemoved, NoCard, NoReader, PinBlocked, PinIncorrect, PukIncorrect
from app.pki import card_uuid, validate

from .conftest import PIN, PORT1, PUK, READER0, READER1

pytestmark = pytest.mark.pcsc


def test_virtual_readers_are_listed(pcscd):
    assert {READER0, READER1} <= set(pcscd.readers())


def test_monitor_reports_readers_and_insert_remove(pcscd, rsa_card, insert):
    events: list = []
    seen = threading.Condition()

    def on_event(event):
        with seen:
            events.append(event)
            seen.notify_all()

    def wait(kind, reader=READER0, timeout=5.0):
        with seen:
            return seen.wait_for(lambda: any(e.kind is kind and e.reader == reader for e in events), timeout)

    monitor = CardMonitor(on_event, poll_ms=200)
    monitor.start()
    try:
        assert wait(EventKind.READER_ADDED)
        assert any(e.kind is EventKind.SERVICE_UP for e in events)
        card = insert(rsa_card)
        assert wait(EventKind.CARD_INSERTED)
        inserted = next(e for e in events if e.kind is EventKind.CARD_INSERTED and e.reader == READER0)
        assert inserted.atr == card.applet.atr
        card.pull()
        assert wait(EventKind.CARD_REMOVED)
    finally:
        monitor.stop()


def test_read_card_and_verify_trust(pcscd, rsa_card, insert, ca):
    card = insert(rsa_card)
    with pcscd.connect(READER0) as conn:
        assert conn.atr == card.applet.atr
        session = PivSession(conn)
        app = session.select()
        chuid = session.read_chuid()
        cert = session.read_certificate()
    assert 0x07 in app.algorithms
    assert chuid.guid == card.card.card_uuid == card_uuid(cert)
    assert "Dr Ada Training" in cert.subject.rfc4514_string()
    verdict = validate(cert, ca.trust_store())
    assert verdict.ok and verdict.days_until_expiry >= 364


@pytest.mark.parametrize("alg", ["rsa", "p256"])
def test_pin_then_signature_verifies(pcscd, rsa_card, p256_card, insert, alg):
    insert(rsa_card if alg == "rsa" else p256_card)
    with pcscd.connect(READER0) as conn:
        session = PivSession(conn)
        session.select()
        cert = session.read_certificate()
        session.verify_pin(PIN)
        message = b"spine-desk-login-nonce:" + bytes(range(32))
        sig = session.sign(message, algorithm_for(cert.public_key()))
    key = cert.public_key()
    if alg == "rsa":
        key.verify(sig.value, message, padding.PKCS1v15(), hashes.SHA256())
    else:
        key.verify(sig.value, message, ec.ECDSA(hashes.SHA256()))


def test_wrong_pin_counts_down_blocks_persists_and_puk_unblocks(pcscd, rsa_card, insert):
    card = insert(rsa_card)
    with pcscd.connect(READER0) as conn:
        session = PivSession(conn)
        session.select()
        assert session.pin_status().tries_left == 3
        for left in (2, 1):
            with pytest.raises(PinIncorrect) as wrong:
                session.verify_pin("99999999")
            assert wrong.value.tries_left == left
        with pytest.raises(PinBlocked):
            session.verify_pin("99999999")
        with pytest.raises(PinBlocked):
            session.verify_pin(PIN)  # even the right PIN is refused now
        assert session.pin_status().blocked
    # the block survives pulling the card and re-reading its file
    card.pull()
    assert CardFile.load(rsa_card).pin_tries_left == 0
    insert(rsa_card)
    with pcscd.connect(READER0) as conn:
        session = PivSession(conn)
        session.select()
        assert session.pin_status().blocked
        with pytest.raises(PukIncorrect):
            session.unblock_pin("00000000", "13579024")
        session.unblock_pin(PUK, "13579024")
        assert session.pin_status().tries_left == 3
        session.verify_pin("13579024")
        assert session.pin_status().verified


def test_power_cycle_forgets_the_pin(pcscd, p256_card, insert):
    card = insert(p256_card)
    with pcscd.connect(READER0) as conn:
        session = PivSession(conn)
        session.select()
        session.verify_pin(PIN)
        assert session.pin_status().verified
    card.pull()
    insert(p256_card)
    with pcscd.connect(READER0) as conn:
        session = PivSession(conn)
        session.select()
        assert not session.pin_status().verified


def test_two_readers_two_cards(pcscd, rsa_card, p256_card, insert):
    a = insert(rsa_card)
    b = insert(p256_card, port=PORT1, reader=READER1)
    with pcscd.connect(READER0) as c0, pcscd.connect(READER1) as c1:
        assert PivSession(c0).select() and PivSession(c1).select()
        assert PivSession(c0).read_chuid().guid == a.card.card_uuid
        assert PivSession(c1).read_chuid().guid == b.card.card_uuid


def test_no_card_and_unknown_reader(pcscd):
    with pytest.raises(NoCard):
        pcscd.connect(READER0)
    with pytest.raises(NoReader):
        pcscd.connect("No Such Reader")


def test_card_pulled_before_an_operation(pcscd, rsa_card, insert):
    card = insert(rsa_card)
    conn = pcscd.connect(READER0)
    try:
        session = PivSession(conn)
        session.select()
        card.pull()
        with pytest.raises(CardRemoved):
            session.read_certificate()
    finally:
        conn.close()


def test_card_pulled_mid_read_raises_and_changes_nothing(pcscd, rsa_card, insert):
    """The card goes away while a certificate read is streaming through GET RESPONSE.

    Nothing is half done: the read raises CardRemoved (no partial certificate) and the card file keeps
    its PIN and counters.
    """
    card = insert(rsa_card)
    real_process = card.applet.process
    pulled = threading.Event()

    def pull_during_get_response(apdu: bytes) -> bytes:
        if apdu[1] == 0xC0 and not pulled.is_set():  # first GET RESPONSE of the certificate
            pulled.set()
            threading.Thread(target=card.link.stop).start()
            time.sleep(0.3)
        return real_process(apdu)

    card.applet.process = pull_during_get_response
    conn = pcscd.connect(READER0)
    try:
        session = PivSession(conn)
        session.select()
        with pytest.raises(CardRemoved):
            session.read_certificate()
    finally:
        conn.close()
    assert pulled.is_set()
    saved = CardFile.load(rsa_card)
    assert saved.pin_tries_left == 3 and saved.check_pin(PIN.encode())


def _pull_during(card, ins: int):
    """Make the card vanish while it is answering the first command with instruction ``ins``."""
    real = card.applet.process
    pulled = threading.Event()

    def process(apdu: bytes) -> bytes:
        answer = real(apdu)  # the card does the work (and persists what it must) ...
        if len(apdu) > 1 and apdu[1] == ins and not pulled.is_set():
            pulled.set()  # ... but the answer never reaches the reader
            threading.Thread(target=card.link.stop).start()
            time.sleep(0.3)
        return answer

    card.applet.process = process
    return pulled


def test_card_pulled_during_a_wrong_pin_keeps_file_and_card_consistent(pcscd, rsa_card, insert):
    card = insert(rsa_card)
    pulled = _pull_during(card, 0x20)
    conn = pcscd.connect(READER0)
    try:
        session = PivSession(conn)
        session.select()
        with pytest.raises(CardRemoved):
            session.verify_pin("99999999")
    finally:
        conn.close()
    assert pulled.is_set()
    # The try was counted and saved before the answer was lost: the file and the re-inserted card agree.
    saved = CardFile.load(rsa_card)
    assert saved.pin_tries_left == 2 and saved.check_pin(PIN.encode())
    insert(rsa_card)
    with pcscd.connect(READER0) as again:
        session = PivSession(again)
        session.select()
        assert session.pin_status().tries_left == 2
        session.verify_pin(PIN)
        assert session.pin_status().verified


def test_card_pulled_during_signing_returns_no_signature(pcscd, p256_card, insert):
    card = insert(p256_card)
    pulled = _pull_during(card, 0x87)
    conn = pcscd.connect(READER0)
    try:
        session = PivSession(conn)
        session.select()
        cert = session.read_certificate()
        session.verify_pin(PIN)
        with pytest.raises(CardRemoved):
            session.sign(b"nonce", algorithm_for(cert.public_key()))
    finally:
        conn.close()
    assert pulled.is_set()
    assert CardFile.load(p256_card).pin_tries_left == 3
