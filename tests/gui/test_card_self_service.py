"""Card self-service from the Session menu in the real window: change the PIN, unblock the card, renew its
certificate. The card is the in-process virtual PIV applet (real APDUs, real PIN counters); the use cases are
``app.client.selfservice``'s, except where a service endpoint the recordings do not hold is needed (renewal: the use
case at its seam; the unblock code: the service call at the port)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit

from app.protocol import canonical_audience, renewal_message
from app.service.core.auth import _verify
from tests.gui.conftest import ALEX, BLAKE, PIN
from tests.gui.fakes import FakeCards
from tests.gui.helpers import logged_in
from tests.support.ui.helpers import WAIT, type_pin, wait_pin_dialog

pytestmark = pytest.mark.gui_fast

NEW_PIN = "31415926"
PUK = "12345678"
SECOND_READER = "Virtual PCD 00 01"
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def ready(qtbot, window):
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    return window


def card_in_no_login(qtbot, window, cards, applet):
    """The card goes in and the login's PIN dialog is cancelled with Escape, as someone who came to change it."""
    cards.insert(applet)
    dialog = wait_pin_dialog(qtbot, window)
    qtbot.keyClick(dialog.pin, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: window.flow.pin_dialog is None, timeout=WAIT)
    qtbot.waitUntil(lambda: window.change_pin_action.isEnabled(), timeout=WAIT)


def wait_dialog(qtbot, window, name: str):
    qtbot.waitUntil(lambda: window.self_service.dialog is not None and window.self_service.dialog.isVisible(),
                    timeout=WAIT)
    dialog = window.self_service.dialog
    assert dialog.objectName() == name
    return dialog


def menu_open(qtbot, window, mnemonic: str) -> None:
    """Alt+S opens the Session menu; the entry's mnemonic letter triggers it: keyboard only."""
    session = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Session")
    window.activateWindow()
    session.popup(window.mapToGlobal(window.rect().topLeft()))
    qtbot.waitUntil(session.isVisible, timeout=WAIT)
    qtbot.keyClick(session, mnemonic)


def type_into(qtbot, edit: QLineEdit, text: str) -> None:
    edit.setFocus()
    qtbot.keyClicks(edit, text)


class Direct:
    """APDUs straight to an applet (the test's own look at the card, beside the window's)."""

    def __init__(self, applet) -> None:
        self.applet = applet

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        raw = self.applet.process(apdu)
        return raw[:-2], int.from_bytes(raw[-2:], "big")


def applet_pin_ok(applet, pin: str) -> bool:
    """Whether the card takes ``pin`` (PIV SELECT + VERIFY, then a reset)."""
    from app.card.piv import PivSession
    from app.errors import CardError

    session = PivSession(Direct(applet))
    try:
        session.select()
        session.verify_pin(pin)
    except CardError:
        return False
    finally:
        applet.reset()
    return True


def certificate_on(applet) -> bytes:
    """The login certificate the card holds now (DER)."""
    from app.card.login_card import PivLoginCard
    from app.card.piv import PivSession

    try:
        return PivLoginCard(PivSession(Direct(applet))).certificate_der()
    finally:
        applet.reset()


def test_the_session_menu_offers_card_self_service_with_unique_mnemonics(qtbot, make_window, cards, card):
    window = ready(qtbot, make_window())
    session = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Session")
    texts = [a.text() for a in session.actions() if not a.isSeparator()]
    assert {"Change &PIN…", "&Unblock card…", "Re&new certificate…"} <= set(texts)
    letters = [t[t.index("&") + 1].lower() for t in texts]
    assert len(letters) == len(set(letters)), texts
    # no card: nothing to change; a card in: change and unblock; renewal only for a session due for it
    assert not window.change_pin_action.isEnabled() and not window.unblock_action.isEnabled()
    card_in_no_login(qtbot, window, cards, card(ALEX))
    assert window.unblock_action.isEnabled() and not window.renew_action.isEnabled()
    cards.remove()
    assert not window.change_pin_action.isEnabled() and not window.unblock_action.isEnabled()


def test_change_pin_by_keyboard_then_log_in_with_the_new_pin(qtbot, make_window, cards, card, caplog):
    caplog.set_level(logging.DEBUG)
    window = ready(qtbot, make_window())
    applet = card(ALEX)
    card_in_no_login(qtbot, window, cards, applet)
    menu_open(qtbot, window, "p")
    dialog = wait_dialog(qtbot, window, "changePinDialog")
    assert dialog.holder.text() == "Card holder: Dr Alex Training"
    assert dialog.tries.text() == "PIN tries left: 3."
    assert all(e.echoMode() == QLineEdit.EchoMode.Password for e in (dialog.old, dialog.new, dialog.repeat))
    assert dialog.old.hasFocus()
    assert "6 to 8 numbers" in dialog.rules.rules.text()
    qtbot.keyClicks(dialog.old, PIN)
    qtbot.keyClick(dialog.old, Qt.Key.Key_Tab)
    assert dialog.new.hasFocus()
    qtbot.keyClicks(dialog.new, "1234")
    assert "too short" in dialog.rules.verdict.text()
    qtbot.keyClicks(dialog.new, "56")
    assert "counting up or down" in dialog.rules.verdict.text()
    dialog.new.clear()
    qtbot.keyClicks(dialog.new, NEW_PIN)
    assert "repeat differ" in dialog.rules.verdict.text()
    qtbot.keyClick(dialog.new, Qt.Key.Key_Tab)
    assert dialog.repeat.hasFocus()
    qtbot.keyClicks(dialog.repeat, NEW_PIN)
    assert dialog.rules.verdict.text() == "The new PIN meets the rules and both entries match."
    assert NEW_PIN not in dialog.rules.verdict.text()
    qtbot.keyClick(dialog.repeat, Qt.Key.Key_Return)
    assert dialog.old.text() == dialog.new.text() == dialog.repeat.text() == ""  # read once, emptied at once
    qtbot.waitUntil(lambda: window.self_service.dialog is None, timeout=WAIT)
    assert "Your PIN has been changed" in window.messages.message
    # the login follows at once, with the new PIN; the old one is refused by the card
    pin_dialog = wait_pin_dialog(qtbot, window)
    type_pin(qtbot, pin_dialog, PIN)
    qtbot.waitUntil(lambda: "2 tries left" in pin_dialog.problem.text(), timeout=WAIT)
    type_pin(qtbot, pin_dialog, NEW_PIN)
    qtbot.waitUntil(lambda: window.flow.role_picker is not None, timeout=WAIT)
    window.flow.role_picker.choose(0)
    qtbot.waitUntil(lambda: window.session is not None, timeout=WAIT)
    assert PIN not in caplog.text and NEW_PIN not in caplog.text


def test_a_pin_changed_while_logged_in_keeps_the_session(qtbot, make_window, cards, card, spine):
    window = ready(qtbot, make_window())
    applet = card(ALEX)
    session = logged_in(qtbot, window, cards, card, applet=applet)
    window.change_pin_action.trigger()
    dialog = wait_dialog(qtbot, window, "changePinDialog")
    type_into(qtbot, dialog.old, PIN)
    type_into(qtbot, dialog.new, NEW_PIN)
    type_into(qtbot, dialog.repeat, NEW_PIN)
    qtbot.keyClick(dialog.repeat, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.self_service.dialog is None, timeout=WAIT)
    assert window.session is session and window.flow.pin_dialog is None
    assert "Your PIN has been changed" in window.messages.message
    window.flow.card_worker.wait()
    assert applet_pin_ok(applet, NEW_PIN) and not applet_pin_ok(applet, PIN)


def test_rules_broken_on_submit_are_explained_and_nothing_reaches_the_card(qtbot, make_window, cards, card):
    window = ready(qtbot, make_window())
    applet = card(ALEX)
    card_in_no_login(qtbot, window, cards, applet)
    window.change_pin_action.trigger()
    dialog = wait_dialog(qtbot, window, "changePinDialog")
    type_into(qtbot, dialog.old, PIN)
    type_into(qtbot, dialog.new, "12ab56")
    assert "numbers only" in dialog.rules.verdict.text()
    dialog.new.clear()
    type_into(qtbot, dialog.new, "111111")
    type_into(qtbot, dialog.repeat, "111111")
    assert "one number repeated" in dialog.rules.verdict.text()
    qtbot.keyClick(dialog.repeat, Qt.Key.Key_Return)
    assert "one number repeated" in dialog.messages.message
    assert "Nothing was sent to the card" in dialog.messages.message
    assert dialog.new.hasFocus() and dialog.old.text() == PIN  # kept to correct
    dialog.new.clear()
    dialog.repeat.clear()
    type_into(qtbot, dialog.new, PIN)
    type_into(qtbot, dialog.repeat, PIN)
    assert "differ from the current one" in dialog.rules.verdict.text()
    fields = (dialog.old, dialog.new, dialog.repeat)
    qtbot.keyClick(dialog.buttons.button(dialog.buttons.StandardButton.Cancel), Qt.Key.Key_Space)
    assert window.self_service.dialog is None
    assert [e.text() for e in fields] == ["", "", ""]  # emptied on close
    window.flow.card_worker.wait()
    assert applet_pin_ok(applet, PIN) and applet.card.pin_tries_left == 3


def test_wrong_current_pin_shows_tries_then_the_blocked_card_offers_unblock_with_the_puk(qtbot, make_window, cards,
                                                                                      card):
    window = ready(qtbot, make_window())
    applet = card(BLAKE)
    card_in_no_login(qtbot, window, cards, applet)
    window.change_pin_action.trigger()
    dialog = wait_dialog(qtbot, window, "changePinDialog")
    for expected, tries in (("2 tries left", "PIN tries left: 2."), ("1 try left", "PIN tries left: 1.")):
        type_into(qtbot, dialog.old, "99990000")
        type_into(qtbot, dialog.new, NEW_PIN)
        type_into(qtbot, dialog.repeat, NEW_PIN)
        qtbot.keyClick(dialog.repeat, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda expected=expected: expected in dialog.messages.message, timeout=WAIT)
        qtbot.waitUntil(lambda tries=tries: dialog.tries.text().startswith(tries), timeout=WAIT)
        assert dialog.old.text() == "" and dialog.ok.isEnabled()
    type_into(qtbot, dialog.old, "99990000")
    type_into(qtbot, dialog.new, NEW_PIN)
    type_into(qtbot, dialog.repeat, NEW_PIN)
    qtbot.keyClick(dialog.repeat, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "locked after too many wrong PINs" in dialog.messages.message, timeout=WAIT)
    qtbot.waitUntil(lambda: "PIN is blocked" in dialog.tries.text(), timeout=WAIT)
    assert dialog.messages.action.isVisible() and dialog.messages.action.text() == "Unblock card…"
    dialog.messages.action.setFocus()
    qtbot.keyClick(dialog.messages.action, Qt.Key.Key_Space)
    unblock = wait_dialog(qtbot, window, "unblockDialog")
    assert unblock.holder.text() == "Card holder: Dr Blake Second"
    assert not unblock.via_service.isVisible()  # not an unlocker: the PUK only
    assert unblock.puk.hasFocus() and unblock.puk.echoMode() == QLineEdit.EchoMode.Password
    # a wrong PUK costs a PUK try, and says so
    qtbot.keyClicks(unblock.puk, "87654321")
    qtbot.keyClick(unblock.puk, Qt.Key.Key_Tab)
    qtbot.keyClicks(unblock.new, NEW_PIN)
    qtbot.keyClick(unblock.new, Qt.Key.Key_Tab)
    qtbot.keyClicks(unblock.repeat, NEW_PIN)
    qtbot.keyClick(unblock.repeat, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "tries left" in unblock.messages.message, timeout=WAIT)
    assert "unlock code (PUK) is wrong" in unblock.messages.message  # not "Incorrect PIN"
    assert unblock.puk.text() == unblock.new.text() == ""
    type_into(qtbot, unblock.puk, PUK)
    type_into(qtbot, unblock.new, NEW_PIN)
    type_into(qtbot, unblock.repeat, NEW_PIN)
    qtbot.keyClick(unblock.repeat, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.self_service.dialog is None, timeout=WAIT)
    assert "unlocked and has the new PIN" in window.messages.message
    login_dialog = wait_pin_dialog(qtbot, window)  # the unblocked card logs in with its new PIN
    type_pin(qtbot, login_dialog, NEW_PIN)
    qtbot.waitUntil(lambda: window.session is not None, timeout=WAIT)


def test_a_card_blocked_at_login_offers_unblock_in_the_message_area(qtbot, make_window, cards, card):
    window = ready(qtbot, make_window())
    cards.insert(card(BLAKE))
    dialog = wait_pin_dialog(qtbot, window)
    for expected in ("2 tries left", "1 try left"):
        type_pin(qtbot, dialog, "99990000")
        qtbot.waitUntil(lambda expected=expected: expected in dialog.problem.text(), timeout=WAIT)
    type_pin(qtbot, dialog, "99990000")
    qtbot.waitUntil(lambda: "locked after too many wrong PINs" in window.messages.message, timeout=WAIT)
    assert window.messages.action.isVisible() and window.messages.action.text() == "Unblock card…"
    window.messages.action.click()
    unblock = wait_dialog(qtbot, window, "unblockDialog")
    assert unblock.tries.text().startswith("PIN tries left: none. The PIN is blocked")
    type_into(qtbot, unblock.puk, "1234")
    qtbot.keyClick(unblock.puk, Qt.Key.Key_Return)
    assert "8 digits" in unblock.messages.message and unblock.puk.hasFocus()


def test_pulling_the_card_closes_the_dialog_and_empties_its_fields(qtbot, make_window, cards, card):
    window = ready(qtbot, make_window())
    card_in_no_login(qtbot, window, cards, card(ALEX))
    window.change_pin_action.trigger()
    dialog = wait_dialog(qtbot, window, "changePinDialog")
    type_into(qtbot, dialog.old, PIN)
    type_into(qtbot, dialog.new, NEW_PIN)
    cards.remove()
    assert window.self_service.dialog is None and not dialog.isVisible()
    assert dialog.old.text() == dialog.new.text() == ""
    assert not window.change_pin_action.isEnabled()


def test_escape_waits_while_the_card_works(qtbot, make_window, cards, card):
    import threading

    window = ready(qtbot, make_window())
    card_in_no_login(qtbot, window, cards, card(ALEX))
    window.change_pin_action.trigger()
    dialog = wait_dialog(qtbot, window, "changePinDialog")
    held = threading.Event()
    window.flow.card_worker.run(lambda: held.wait(WAIT / 1000), session_bound=False)  # the card is busy
    type_into(qtbot, dialog.old, PIN)
    type_into(qtbot, dialog.new, NEW_PIN)
    type_into(qtbot, dialog.repeat, NEW_PIN)
    qtbot.keyClick(dialog.repeat, Qt.Key.Key_Return)
    assert dialog.busy and not dialog.ok.isEnabled() and dialog.progress.isVisible()
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)
    assert window.self_service.dialog is dialog and dialog.isVisible()  # the change is seen through
    held.set()
    qtbot.waitUntil(lambda: window.self_service.dialog is None, timeout=WAIT)
    assert "Your PIN has been changed" in window.messages.message


def test_a_workstation_closed_to_clinical_use_offers_no_card_self_service(qtbot, make_window, cards, card):
    from tests.support.ui.fixtures import failing_gate

    window = make_window(gate=failing_gate)
    qtbot.waitUntil(lambda: window.wes_report is not None, timeout=WAIT)
    cards.insert(card(ALEX))
    qtbot.waitUntil(lambda: "card inserted" in window.card_status.text(), timeout=WAIT)
    assert not window.change_pin_action.isEnabled() and not window.unblock_action.isEnabled()
    window.self_service.change_pin()
    assert "workstation check" in window.messages.message and window.self_service.dialog is None
    window.wes_view.close()


def test_a_card_pulled_while_it_is_opened_leaves_self_service_ready_for_the_next(qtbot, make_window, cards, card):
    import threading

    window = ready(qtbot, make_window())
    applet = card(ALEX)
    card_in_no_login(qtbot, window, cards, applet)
    held = threading.Event()
    window.flow.card_worker.run(lambda: held.wait(WAIT / 1000), session_bound=False)  # the card is busy
    window.change_pin_action.trigger()
    assert window.self_service.opening is not None
    cards.remove()
    held.set()
    window.flow.card_worker.wait()
    assert window.self_service.opening is None and window.self_service.dialog is None
    card_in_no_login(qtbot, window, cards, applet)
    window.change_pin_action.trigger()
    wait_dialog(qtbot, window, "changePinDialog")


def test_the_secrets_a_dialog_hands_on_never_print_their_digits():
    from app.ui.card_dialogs import Secrets

    secrets = Secrets(new_pin=NEW_PIN, repeat=NEW_PIN, old_pin=PIN, puk=PUK)
    assert all(value not in repr(secrets) for value in (NEW_PIN, PIN, PUK))


# --- renewal ------------------------------------------------------------------------------------------------


class DueCards(FakeCards):
    """The card port saying every trusted certificate expires in 60 days: inside the renewal window (the recorded
    users' cards are the ones the service knows; their certificates are checked for real first)."""

    def check_certificate(self, certificate_der: bytes) -> int | None:
        super().check_certificate(certificate_der)
        return 60


@pytest.fixture
def late_cards(test_ca) -> FakeCards:
    return DueCards(test_ca.trust_store())


@pytest.fixture
def renewal_window(qtbot, spine, late_cards, tmp_path):
    from app.ui.main_window import MainWindow
    from app.ui.ports import ClientDeps
    from tests.gui.conftest import TODAY
    from tests.support.ui.fixtures import compliant_gate, fake_report_html

    deps = ClientDeps(spine=spine, cards=late_cards, wes_gate=compliant_gate, training=True,
                      service_label=spine.base_url, export_dir=tmp_path, wes_html=fake_report_html,
                      today=lambda: TODAY, now=lambda: NOW, renewable=lambda card: card)
    window = MainWindow(deps)
    qtbot.addWidget(window)
    window.resize(1100, 760)
    window.show()
    window.start()
    yield window
    window.shutdown()


class FakeRenewal:
    """``app.client.selfservice.renew_certificate`` at its seam (the recordings hold no renewal endpoints): the card
    checks the PIN for real; the steps and the result are the use case's kinds."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, card, api, pin, *, token=None, on_step=None):
        from app.client.selfservice import Outcome, RenewalResult

        self.calls.append({"token": token})
        on_step("Asking the service whether this certificate may be renewed")
        card.verify_pin(pin)  # a wrong PIN is the card's own answer
        card.forget_pin()
        on_step("Generating a new key on the card")
        return RenewalResult(Outcome.CERTIFICATE_RENEWED, 2, datetime(2031, 5, 1, tzinfo=UTC), 1, True)


def test_renewal_in_the_window_explains_asks_the_pin_and_shows_the_new_expiry(qtbot, renewal_window, late_cards,
                                                                             card):
    from app.ui.card_self_service import UseCases

    window = renewal_window
    fake = FakeRenewal()
    real = UseCases.real()
    window.self_service._use_cases = UseCases(real.change_pin, real.unblock_with_puk, real.unblock_via_service, fake)
    assert not window.renew_action.isEnabled()  # no session yet
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    late_cards.insert(card(ALEX))
    reminder = wait_pin_dialog(qtbot, window).reminder.text()
    assert "registration authority" in reminder and "Session menu, Renew certificate" in reminder
    window.flow.pin_dialog.reject()
    late_cards.remove()
    logged_in(qtbot, window, late_cards, card)
    assert window.renew_action.isEnabled()
    menu_open(qtbot, window, "n")
    dialog = wait_dialog(qtbot, window, "renewDialog")
    assert dialog.holder.text() == "Card holder: Dr Alex Training"
    assert "new key on your card" in dialog.intro.text() and "expires in 60 days, on 01-May-2026" in dialog.intro.text()
    assert dialog.pin.hasFocus() and dialog.pin.echoMode() == QLineEdit.EchoMode.Password
    qtbot.keyClicks(dialog.pin, "99990000")
    qtbot.keyClick(dialog.pin, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "2 tries left" in dialog.messages.message, timeout=WAIT)
    qtbot.keyClicks(dialog.pin, PIN)
    qtbot.keyClick(dialog.pin, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.outcome.isVisible(), timeout=WAIT)
    assert "valid until 01 May 2031" in dialog.outcome.text() and "old one is revoked" in dialog.outcome.text()
    assert "• Generating a new key on the card" in dialog.steps.text()
    assert dialog.outcome.hasFocus()
    assert fake.calls[-1]["token"] == window.session.auth.token  # renewed within the live session
    assert not window.renew_action.isEnabled()  # no longer due
    qtbot.keyClick(dialog.ok, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.self_service.dialog is None, timeout=WAIT)
    assert window.session is not None


class RenewalService:
    """The service's renewal calls at the client's port, answered with the test CA (the recordings hold no
    renewal): the CSR's signature and subject are checked, the certificate is issued for the card's new key."""

    NONCE = "renewal-nonce-gui-0123456789"

    def __init__(self, ca, session_certificate: bytes, audience: str) -> None:
        self.ca, self.session_certificate, self.audience = ca, session_certificate, audience
        self.calls: list[str] = []
        self.issued: bytes | None = None

    def renewal_check(self, token, certificate_der):
        from cryptography import x509

        from app.client.models import RenewalWindow

        self.calls.append("renewal_check")
        assert certificate_der == self.session_certificate
        cert = x509.load_der_x509_certificate(self.session_certificate)
        return RenewalWindow(cert.serial_number, cert.not_valid_after_utc,
                             cert.not_valid_after_utc - timedelta(days=90), self.NONCE, self.audience)

    def renew_certificate(self, token, certificate_der, csr_der, proof=None):
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        from app.pki.csr import check_csr

        self.calls.append("renew_certificate")
        assert certificate_der == self.session_certificate
        csr = check_csr(csr_der)  # signed by the card's new key
        old = x509.load_der_x509_certificate(self.session_certificate)
        assert proof is not None and proof[0] == self.NONCE  # … and the renewal asked for by the card's old key
        assert _verify(old, proof[1], renewal_message(self.NONCE, self.audience))  # the service's own check
        assert csr.subject == old.subject
        self.issued = self.ca.renew_card_certificate(old, csr.public_key(), days=730).public_bytes(
            serialization.Encoding.DER)
        return self.issued

    def confirm_renewal(self, token, certificate_der):
        self.calls.append("confirm_renewal")
        assert certificate_der == self.issued


def test_renewal_for_real_makes_a_new_key_on_the_card_and_the_card_logs_in_with_it(qtbot, renewal_window,
                                                                                   late_cards, card, spine,
                                                                                   test_ca, monkeypatch):
    from app.cli.desktop import training_renewable

    window = renewal_window
    window.deps.renewable = training_renewable  # as the training composition sets it
    applet = card(ALEX)
    applet.power_on()
    session_certificate = certificate_on(applet)
    logged_in(qtbot, window, late_cards, card, applet=applet, role="Clinical")
    service = RenewalService(test_ca, session_certificate, canonical_audience(spine.base_url))
    for name in ("renewal_check", "renew_certificate", "confirm_renewal"):
        monkeypatch.setattr(spine, name, getattr(service, name), raising=False)
    window.renew_action.trigger()
    dialog = wait_dialog(qtbot, window, "renewDialog")
    qtbot.keyClicks(dialog.pin, "99990000")
    qtbot.keyClick(dialog.pin, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "2 tries left" in dialog.messages.message, timeout=WAIT)
    assert service.calls == []  # a wrong PIN stops before the card's key or the service is touched
    qtbot.keyClicks(dialog.pin, PIN)
    qtbot.keyClick(dialog.pin, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.outcome.isVisible() or dialog.messages.message != "", timeout=WAIT)
    assert dialog.messages.message == ""
    assert service.calls == ["renewal_check", "renew_certificate", "confirm_renewal"]
    assert "Generating a new key on the card" in dialog.steps.text()
    assert "old one is revoked" in dialog.outcome.text()
    qtbot.keyClick(dialog.ok, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.self_service.dialog is None, timeout=WAIT)
    window.flow.card_worker.wait()
    renewed = certificate_on(applet)
    assert renewed == service.issued and renewed != session_certificate
    # locked, the same card (its new certificate) resumes the same role; logged out, it logs in again with its new
    # key and certificate (the fake service checks the signature with it)
    role = window.session.role.urid
    window.lock_action.trigger()
    unlock = wait_pin_dialog(qtbot, window)
    assert unlock.windowTitle() == "Unlock Spine Desk"
    type_pin(qtbot, unlock, PIN)
    qtbot.waitUntil(lambda: window.session is not None, timeout=WAIT)
    assert window.flow.role_picker is None and window.session.role.urid == role
    window.logout_action.trigger()
    late_cards.remove()
    logged_in(qtbot, window, late_cards, card, applet=applet, role="Clinical")


def test_renewal_is_not_offered_outside_the_window_nor_where_the_client_cannot_renew(qtbot, make_window, cards,
                                                                                      card):
    window = ready(qtbot, make_window())
    logged_in(qtbot, window, cards, card)
    window.flow.card_days_left = 20  # due, but this client may not replace the card's key (no ClientDeps.renewable)
    window._update_actions()
    assert window.change_pin_action.isEnabled() and not window.renew_action.isEnabled()
    window.self_service.renew()
    assert "registration authority renews it" in window.messages.message
    window.deps.renewable = lambda card: card
    window.flow.card_days_left = 365
    window._update_actions()
    assert not window.renew_action.isEnabled()
    window.self_service.renew()
    assert "not due for renewal" in window.messages.message


# --- another person's card, through the service -------------------------------------------------------------


def test_an_unlocker_unblocks_another_persons_card_in_a_second_reader(qtbot, make_window, cards, card, spine,
                                                                      monkeypatch):
    import app.ui.card_self_service as self_service

    released = []

    def unblock_code(token, urid, target_certificate_der):  # the service's answer at the port
        released.append((token, urid))
        return PUK

    monkeypatch.setattr(spine, "unblock_code", unblock_code, raising=False)
    monkeypatch.setattr(self_service, "may_unblock_others", lambda session: session is not None)
    window = ready(qtbot, make_window())
    logged_in(qtbot, window, cards, card)
    other = card(BLAKE)
    for _ in range(3):
        applet_pin_ok(other, "99990000")
    assert other.card.pin_tries_left == 0
    cards.insert(other, reader=SECOND_READER)
    assert window.session is not None  # the second card does not touch the session
    window.unblock_action.trigger()
    dialog = wait_dialog(qtbot, window, "unblockDialog")
    assert dialog.holder.text() == "Card holder: Dr Blake Second"
    assert dialog.via_service.isVisible() and dialog.via_service.isChecked()
    assert not dialog.puk.isVisible() and dialog.new.hasFocus()
    qtbot.keyClicks(dialog.new, NEW_PIN)
    qtbot.keyClick(dialog.new, Qt.Key.Key_Tab)
    qtbot.keyClicks(dialog.repeat, NEW_PIN)
    qtbot.keyClick(dialog.repeat, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.self_service.dialog is None, timeout=WAIT)
    assert "unlocked" in window.messages.message
    assert released == [(window.session.auth.token, window.session.auth.urid)]
    window.flow.card_worker.wait()
    assert applet_pin_ok(other, NEW_PIN)


def _mnemonics(dialog) -> list[str]:
    from PySide6.QtWidgets import QAbstractButton, QLabel

    texts = [w.text() for w in dialog.findChildren(QLabel) + dialog.findChildren(QAbstractButton)
             if w.isVisibleTo(dialog)]
    return [t[t.index("&") + 1].lower() for t in texts if "&" in t and not t.startswith("<")]


def _unnamed(dialog) -> list[str]:
    from PySide6.QtWidgets import QAbstractButton

    controls = [w for w in dialog.findChildren(QAbstractButton) + dialog.findChildren(QLineEdit)
                if w.isVisibleTo(dialog) and w.focusPolicy() != Qt.FocusPolicy.NoFocus]
    return [f"{type(w).__name__}:{w.objectName()}" for w in controls
            if not (w.accessibleName() or (isinstance(w, QAbstractButton) and w.text()))]


def test_every_dialog_control_is_named_and_each_mnemonic_is_unique(qtbot, make_window, cards, card, monkeypatch):
    import app.ui.card_self_service as self_service

    monkeypatch.setattr(self_service, "may_unblock_others", lambda session: session is not None)
    window = ready(qtbot, make_window())
    logged_in(qtbot, window, cards, card)
    window.flow.card_days_left = 20  # due for renewal
    window.deps.renewable = lambda card: card
    window._update_actions()
    for action, name in ((window.change_pin_action, "changePinDialog"), (window.unblock_action, "unblockDialog"),
                         (window.renew_action, "renewDialog")):
        assert action.isEnabled(), name
        action.trigger()
        dialog = wait_dialog(qtbot, window, name)
        assert not window.change_pin_action.isEnabled()  # one card dialog at a time
        letters = _mnemonics(dialog)
        assert letters and len(letters) == len(set(letters)), (name, letters)
        assert _unnamed(dialog) == [], name
        qtbot.keyClick(dialog, Qt.Key.Key_Escape)  # Escape cancels
        qtbot.waitUntil(lambda: window.self_service.dialog is None, timeout=WAIT)
