"""The chooser: the real PIV back-end over the training applet (no pcscd), small fakes of CardBackend at the seam
for PKCS#11 (the real PKCS#11 back-end has its own tests), and the merged card events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest

from app.card.apdu import split_response
from app.card.backend import BackendKind, CardFamily, CardInfo
from app.card.chooser import EventMerger, PivBackend, open_login_token, refuse_retired, stop_all
from app.card.virtual import PivApplet, issue_card
from app.error_text import user_text
from app.errors import (
    CardError,
    CardInUse,
    CardNotRecognised,
    CardRemoved,
    CardRetired,
    NoCard,
    NoReader,
    PcscUnavailable,
)
from app.pki import TrainingCA

PIN = "24681357"
OPENSC = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
MIDDLEWARE = "/usr/lib/ClassicClient/libclassicclient.so"


class Connection:
    """A PC/SC connection to the applet, or to a card that is not PIV (answers 6A82 to SELECT)."""

    def __init__(self, applet: PivApplet | None, reader: str = "Reader 0", atr: bytes = b"\x3b\x00") -> None:
        self.applet, self.reader = applet, reader
        self.atr = applet.atr if applet else atr
        self.closed: list[bool] = []
        self.pull_after: int | None = None
        if applet:
            applet.power_on()

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        if self.pull_after is not None:
            if self.pull_after == 0:
                raise CardRemoved("the card was removed during a command")
            self.pull_after -= 1
        if self.applet is None:
            return b"", 0x6A82
        return split_response(self.applet.process(apdu))

    def close(self, reset: bool = False) -> None:
        self.closed.append(reset)


@dataclass
class FakePkcs11:
    """A PKCS#11 back-end at the seam: recognises the card or not, or fails as a module that cannot load does."""

    module: str
    recognises: bool = False
    fails: Exception | None = None
    kind: BackendKind = BackendKind.PKCS11

    def __post_init__(self) -> None:
        self.asked: list[tuple[str | None, bytes]] = []

    def open(self, reader, atr):
        self.asked.append((reader, atr))
        if self.fails is not None:
            raise self.fails
        if not self.recognises:
            return None
        return FakeToken(CardInfo(backend=BackendKind.PKCS11, family=CardFamily.SERIES_8, reader=reader, atr=atr,
                                  module=self.module, token_label="NHS card"))


@dataclass
class FakeToken:
    info: CardInfo
    closed: bool = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    ca = TrainingCA.load_or_create(tmp_path_factory.mktemp("pki"))
    return issue_card(ca, name="Dr Chooser", algorithm="p256", pin=PIN)[0]


def piv(conn: Connection | Exception, *, reset_on_close: bool = True) -> tuple[PivBackend, list[str | None]]:
    asked: list[str | None] = []

    def connect(reader):
        asked.append(reader)
        if isinstance(conn, Exception):
            raise conn
        return conn

    return PivBackend(connect, reset_on_close=reset_on_close), asked


def test_a_piv_card_is_served_by_the_piv_back_end(card):
    conn = Connection(PivApplet(card, persist=lambda c: None))
    backend, _ = piv(conn)
    pkcs11 = FakePkcs11(OPENSC, recognises=True)
    token = open_login_token([backend, pkcs11], None)
    assert token.info.backend is BackendKind.PIV and token.info.family is CardFamily.TRAINING
    assert token.info.reader == "Reader 0" and token.info.atr == conn.atr
    assert pkcs11.asked == []  # the first back-end that recognises the card serves it
    token.close()
    assert conn.closed == [True]  # a login's card is reset when closed: it forgets the PIN


def test_a_card_that_does_not_answer_piv_goes_to_the_next_back_end():
    conn = Connection(None, reader="OMNIKEY 3121 00 00")
    backend, _ = piv(conn)
    pkcs11 = FakePkcs11(MIDDLEWARE, recognises=True)
    token = open_login_token([backend, pkcs11], "OMNIKEY")
    assert token.info.backend is BackendKind.PKCS11 and token.info.module == MIDDLEWARE
    assert pkcs11.asked == [("OMNIKEY", b"")]
    assert conn.closed == [False]  # PIV let go of the card without resetting it


def test_the_configured_order_is_kept(card):
    backend, asked = piv(Connection(PivApplet(card, persist=lambda c: None)))
    pkcs11 = FakePkcs11(OPENSC, recognises=True)
    token = open_login_token([pkcs11, backend], None)
    assert token.info.backend is BackendKind.PKCS11 and asked == []


def test_no_back_end_recognises_the_card_and_no_module_is_configured():
    backend, _ = piv(Connection(None))
    with pytest.raises(CardNotRecognised) as err:
        open_login_token([backend], None)
    assert err.value.tried == (("PIV", None),) and not err.value.pkcs11_configured
    text = user_text(err.value)
    assert "does not answer PIV, and no PKCS#11 module is configured" in text
    assert "ask IT to install the card's middleware and name it in the site configuration's [cards] " \
           "pkcs11_modules" in text


def test_no_back_end_recognises_the_card_and_every_module_was_asked():
    backend, _ = piv(Connection(None))
    modules = [FakePkcs11(OPENSC), FakePkcs11(MIDDLEWARE)]
    with pytest.raises(CardNotRecognised) as err:
        open_login_token([backend, *modules], None)
    assert err.value.tried == (("PIV", None), ("PKCS#11", OPENSC), ("PKCS#11", MIDDLEWARE))
    text = user_text(err.value)
    assert f"does not answer PIV, and no token for it was found through the PKCS#11 modules {OPENSC}, " \
           f"{MIDDLEWARE}" in text
    assert all(m.asked for m in modules)


def test_a_back_end_error_is_reported_not_hidden_behind_the_next_back_end():
    broken = FakePkcs11("/no/such/module.so", fails=CardError("the PKCS#11 module /no/such/module.so does not exist"))
    backend, asked = piv(Connection(None))
    with pytest.raises(CardError, match="does not exist"):
        open_login_token([broken, backend], None)
    assert asked == []
    busy, _ = piv(CardInUse("another program holds the card"))
    later = FakePkcs11(OPENSC, recognises=True)
    with pytest.raises(CardInUse):
        open_login_token([busy, later], None)
    assert later.asked == []


def test_a_card_pulled_while_piv_reads_it_is_reported_and_the_connection_closed(card):
    conn = Connection(PivApplet(card, persist=lambda c: None))
    conn.pull_after = 1  # SELECT answers, reading the certificate finds the card gone
    backend, _ = piv(conn)
    later = FakePkcs11(OPENSC, recognises=True)
    with pytest.raises(CardRemoved):
        open_login_token([backend, later], None)
    assert conn.closed == [True] and later.asked == []


@pytest.mark.parametrize("absent", [NoReader("SoftHSM token"), NoCard("Reader 0"), PcscUnavailable("no pcscd")])
def test_no_pcsc_card_lets_a_pkcs11_token_answer(absent):
    backend, _ = piv(absent)
    softhsm = FakePkcs11("/usr/lib/softhsm/libsofthsm2.so", recognises=True)
    token = open_login_token([backend, softhsm], "SoftHSM token")
    assert token.info.module == "/usr/lib/softhsm/libsofthsm2.so"


@pytest.mark.parametrize("absent", [NoReader("Nowhere"), NoCard("Reader 0"), PcscUnavailable("no pcscd")])
def test_with_no_card_anywhere_the_absence_is_what_the_user_sees(absent):
    backend, _ = piv(absent)
    with pytest.raises(type(absent)):
        open_login_token([backend, FakePkcs11(OPENSC)], "Nowhere")


def test_status_opens_piv_without_resetting_the_card(card):
    conn = Connection(PivApplet(card, persist=lambda c: None))
    backend, _ = piv(conn, reset_on_close=False)
    open_login_token([backend], None).close()
    assert conn.closed == [False]


@dataclass(frozen=True)
class Event:
    kind: str
    reader: str | None = None


def test_merged_events_report_each_card_once_whichever_monitor_sees_it_first():
    got: list[Event] = []
    merged = EventMerger(got.append)
    for event in [Event("service_up"), Event("reader_added", "R"), Event("card_inserted", "R"),
                  Event("card_inserted", "R"),  # the token monitor sees the same card
                  Event("card_removed", "R"), Event("card_removed", "R"),  # and its removal, later
                  Event("card_inserted", "SoftHSM token"), Event("card_removed", "SoftHSM token"),
                  Event("reader_removed", "R"), Event("reader_removed", "R")]:
        merged(event)
    assert got == [Event("service_up"), Event("reader_added", "R"), Event("card_inserted", "R"),
                   Event("card_removed", "R"), Event("card_inserted", "SoftHSM token"),
                   Event("card_removed", "SoftHSM token"), Event("reader_removed", "R")]


def test_stop_all_stops_every_monitor_even_when_one_fails():
    stopped: list[str] = []

    def bad() -> None:
        raise RuntimeError("already gone")

    stop_all([lambda: stopped.append("pcsc"), bad, lambda: stopped.append("pkcs11")])()
    assert stopped == ["pcsc", "pkcs11"]


def test_a_card_nhs_has_blocked_is_refused_and_closed_before_any_pin(card):
    old = FakeToken(CardInfo(backend=BackendKind.PKCS11, family=CardFamily.SERIES_4_6, reader="R", atr=b""))
    with pytest.raises(CardRetired) as err:
        refuse_retired(old, date(2026, 12, 3))
    assert old.closed and err.value.since == date(2026, 5, 7) and err.value.family == "NHS series 4-6"
    assert refuse_retired(old, date(2026, 5, 6)) is old  # the day before NHS blocked it
    current = FakeToken(CardInfo(backend=BackendKind.PKCS11, family=CardFamily.SERIES_8, reader="R", atr=b""))
    assert refuse_retired(current, date(2026, 12, 3)) is current and not current.closed
