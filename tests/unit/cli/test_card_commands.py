"""``card status`` logic over the real applet at the connection seam (no pcscd), and card-file locking."""

from __future__ import annotations

import io
import uuid

import pytest

from app.card.apdu import split_response
from app.card.backend import BackendKind, CardFamily, CardInfo
from app.card.chooser import PivBackend, open_login_token
from app.card.family import recognise
from app.card.piv import PinStatus
from app.card.virtual import PivApplet, exclusive_use, issue_card
from app.cli.card import _printable, read_status, status
from app.errors import CardFileError, CertificateRejected
from app.pki import TrainingCA

PIN = "24681357"


class AppletConnection:
    """The training applet as a CardConnection (what vpcd + pcscd carry in real use)."""

    def __init__(self, applet: PivApplet, reader: str = "Reader X") -> None:
        self.applet = applet
        self.reader, self.atr = reader, applet.atr
        self.closed: list[bool] = []
        applet.power_on()

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        return split_response(self.applet.process(apdu))

    def close(self, reset: bool = False) -> None:
        self.closed.append(reset)


def piv_token(conn: AppletConnection):
    """The card as ``card status`` opens it: through the chooser's PIV back-end, left as it is when closed."""
    return open_login_token([PivBackend(lambda _reader: conn, reset_on_close=False)], conn.reader)


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return TrainingCA.load_or_create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def card(ca):
    return issue_card(ca, name="Dr Status", algorithm="p256", pin=PIN, days=30)[0]


def test_read_status_reports_everything_without_a_pin(ca, card):
    conn = AppletConnection(PivApplet(card, persist=lambda c: None))
    st = read_status(piv_token(conn), ca.trust_store())
    assert st.card_uuid == card.card_uuid and st.verdict == "trusted" and st.renewal_due
    assert st.pin_tries_left == 3 and not st.pin_blocked and st.notes == ()
    assert (st.backend, st.family, st.module, st.reader) == ("PIV", "Spine Desk training card", None, "Reader X")
    assert not conn.applet.pin_verified


def test_status_prints_and_a_foreign_ca_is_refused(tmp_path, card):
    foreign = TrainingCA.load_or_create(tmp_path / "foreign")
    conn = AppletConnection(PivApplet(card, persist=lambda c: None))
    out = io.StringIO()
    with pytest.raises(CertificateRejected) as err:
        status(lambda: piv_token(conn), foreign.trust_store(), out)
    assert err.value.status == "untrusted_issuer"
    text = out.getvalue()
    assert "CN=Dr Status" in text and "3 tries left" in text
    assert "Back-end      PIV\n" in text and "Card family   Spine Desk training card" in text
    assert conn.closed == [False]  # status leaves the card as it is: other programs keep their PIN state


def test_chuid_uuid_that_differs_from_the_certificate_is_flagged(ca):
    other, _ = issue_card(ca, name="Dr Mismatch", algorithm="p256", pin=PIN)
    other.card_uuid = uuid.uuid4()  # CHUID now says something else than the certificate
    conn = AppletConnection(PivApplet(other, persist=lambda c: None))
    st = read_status(piv_token(conn), ca.trust_store())
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


class Pkcs11LikeToken:
    """A LoginToken as a PKCS#11 back-end opens one (a fake at the seam: the real one lives in app.card.pkcs11)."""

    def __init__(self, cert_der: bytes, *, label: str, pin: PinStatus, manufacturer: str = "Oberthur Technologies"):
        self.info = CardInfo(backend=BackendKind.PKCS11, reader="Slot 0 (middleware)", atr=b"",
                             family=recognise(b"", manufacturer=manufacturer), module="/opt/mw/libclassicclient.so",
                             token_label=label, manufacturer=manufacturer)
        self._der, self._pin, self.closed = cert_der, pin, False

    def certificate_der(self) -> bytes:
        return self._der

    def pin_status(self) -> PinStatus:
        return self._pin

    def close(self) -> None:
        self.closed = True


def _der(card) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return card.certificate.public_bytes(serialization.Encoding.DER)


def test_status_of_a_pkcs11_token_names_module_label_family_and_unreported_tries(ca, card):
    token = Pkcs11LikeToken(_der(card), label="NHS\x1b[2J card", pin=PinStatus(False, None, False))
    out = io.StringIO()
    assert status(lambda: token, ca.trust_store(), out) == 0
    text = out.getvalue()
    assert "Back-end      PKCS#11 (/opt/mw/libclassicclient.so)" in text
    assert "Token label   NHS\\x1b[2J card" in text  # card-supplied text stays escaped
    assert "Card family   NHS series 8" in text
    assert "ATR           not reported by the module" in text
    assert "PIN           tries left not reported by the module" in text
    assert "Card UUID     " + str(card.card_uuid) in text  # from the certificate: a PKCS#11 token has no CHUID
    assert token.closed


@pytest.mark.parametrize(("pin", "shown"), [
    (PinStatus(False, 0, True), "BLOCKED"),
    (PinStatus(False, 1, False), "1 try left"),
    (PinStatus(True, None, False), "verified in this card session"),
])
def test_status_of_a_pkcs11_token_shows_what_the_module_does_report(ca, card, pin, shown):
    out = io.StringIO()
    status(lambda: Pkcs11LikeToken(_der(card), label="x", pin=pin), ca.trust_store(), out)
    assert f"PIN           {shown}" in out.getvalue()


def test_status_warns_about_a_series_4_to_6_card(ca, card):
    token = Pkcs11LikeToken(_der(card), label="x", pin=PinStatus(False, 3, False))
    token.info = CardInfo(backend=BackendKind.PKCS11, family=CardFamily.SERIES_4_6, reader="R", atr=b"")
    out = io.StringIO()
    status(lambda: token, ca.trust_store(), out)
    assert "Warning       this is an NHS series 4-6 card: NHS England blocked logins" in out.getvalue()


@pytest.fixture(scope="module")
def nhs(tmp_path_factory):
    from datetime import UTC, datetime

    from tests.support.nhs_pki import NhsTestPki

    return NhsTestPki.create(tmp_path_factory.mktemp("nhs"), now=datetime.now(UTC))


def test_status_of_an_nhs_card_names_the_nhs_user_uuid_of_its_subject(nhs):
    from datetime import UTC, datetime

    from app.pki import IdentityAttribute, IdentityPolicy

    card = nhs.issue_card(name="Dr Ada Lovelace", uuid="555000111222", now=datetime.now(UTC), alg="p256")
    policy = IdentityPolicy.for_anchors([nhs.root.certificate], IdentityAttribute.SERIAL_NUMBER)
    out = io.StringIO()
    assert status(lambda: Pkcs11LikeToken(card.der(), label="Ada", pin=PinStatus(False, None, False)),
                  nhs.trust_store(), out, identity=policy) == 0
    text = out.getvalue()
    assert "NHS user UUID 555000111222\n" in text
    assert "serialNumber=555000111222,CN=Dr Ada Lovelace" in text  # named, not "2.5.4.5="
    assert "Warning" not in text


def test_status_warns_when_an_nhs_card_lacks_the_uuid_its_anchor_names(nhs):
    from datetime import UTC, datetime

    from app.pki import IdentityAttribute, IdentityPolicy

    card = nhs.issue_card(name="Dr No Uuid", uuid=None, attribute="none", now=datetime.now(UTC), alg="p256")
    policy = IdentityPolicy.for_anchors([nhs.root.certificate], IdentityAttribute.UID)
    st = read_status(Pkcs11LikeToken(card.der(), label="x", pin=PinStatus(False, None, False)), nhs.trust_store(),
                     identity=policy)
    assert st.nhs_uuid is None
    assert any("has no NHS user UUID in the subject's UID" in n and "only if this very certificate is registered" in n
               for n in st.notes)
