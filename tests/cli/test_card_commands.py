"""``card status`` logic over the real applet at the connection seam (no pcscd), and card-file locking."""

from __future__ import annotations

import io
import uuid

import pytest

from app.card.apdu import split_response
from app.card.virtual import PivApplet, exclusive_use, issue_card
from app.cli.card import _printable, read_status, status
from app.errors import CardFileError, CertificateRejected
from app.pki import TrainingCA

PIN = "24681357"


class AppletConnection:
    """The training applet as a CardConnection (what vpcd + pcscd carry in real use)."""

    def __init__(self, applet: PivApplet) -> None:
        self.applet = applet
        applet.power_on()

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        return split_response(self.applet.process(apdu))


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return TrainingCA.load_or_create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def card(ca):
    return issue_card(ca, name="Dr Status", algorithm="p256", pin=PIN, days=30)[0]


def test_read_status_reports_everything_without_a_pin(ca, card):
    conn = AppletConnection(PivApplet(card, persist=lambda c: None))
    st = read_status(conn, "Reader X", conn.applet.atr, ca.trust_store())
    assert st.card_uuid == card.card_uuid and st.verdict == "trusted" and st.renewal_due
    assert st.pin_tries_left == 3 and not st.pin_blocked and st.notes == ()
    assert not conn.applet.pin_verified


def test_status_prints_and_a_foreign_ca_is_refused(tmp_path, card):
    foreign = TrainingCA.load_or_create(tmp_path / "foreign")
    conn = AppletConnection(PivApplet(card, persist=lambda c: None))
    out = io.StringIO()
    with pytest.raises(CertificateRejected) as err:
        status(lambda: (conn, "Reader X", conn.applet.atr, lambda: None), foreign.trust_store(), out)
    assert err.value.status == "untrusted_issuer"
    assert "CN=Dr Status" in out.getvalue() and "3 tries left" in out.getvalue()


def test_chuid_uuid_that_differs_from_the_certificate_is_flagged(ca):
    other, _ = issue_card(ca, name="Dr Mismatch", algorithm="p256", pin=PIN)
    other.card_uuid = uuid.uuid4()  # CHUID now says something else than the certificate
    conn = AppletConnection(PivApplet(other, persist=lambda c: None))
    st = read_status(conn, "R", b"", ca.trust_store())
    assert any("differs from its certificate" in n for n in st.notes)


def test_card_text_cannot_drive_the_terminal():
    assert _printable("CN=Evil\x1b[2J\nX") == "CN=Evil\\x1b[2J\\x0aX"


def test_a_card_file_is_served_by_one_process_at_a_time(tmp_path):
    path = tmp_path / "card.json"
    path.write_text("{}")
    with exclusive_use(path), pytest.raises(CardFileError, match="already inserted"), exclusive_use(path):
        pass
    with exclusive_use(path):  # released again
        pass
