"""Changing the PIN of a training card in pcscd's virtual reader through the real window, then logging in with it."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt

from tests.support.ui.fixtures import PIN
from tests.support.ui.helpers import WAIT, login, type_pin, wait_pin_dialog

pytestmark = pytest.mark.pcsc

NEW_PIN = "31415926"


def test_change_the_pin_from_the_session_menu_then_log_in_with_the_new_pin(qtbot, make_window, slot, cards,
                                                                          log_file):
    window = make_window()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["alex"])
    qtbot.keyClick(wait_pin_dialog(qtbot, window).pin, Qt.Key.Key_Escape)  # here to change the PIN first
    qtbot.waitUntil(lambda: window.flow.pin_dialog is None and window.change_pin_action.isEnabled(), timeout=WAIT)
    session_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Session")
    window.activateWindow()
    session_menu.popup(window.mapToGlobal(window.rect().topLeft()))
    qtbot.waitUntil(session_menu.isVisible, timeout=WAIT)
    qtbot.keyClick(session_menu, "p")  # Change &PIN…
    qtbot.waitUntil(lambda: window.self_service.dialog is not None and window.self_service.dialog.isVisible(),
                    timeout=WAIT)
    dialog = window.self_service.dialog
    assert dialog.holder.text() == "Card holder: Dr Alex Training"
    assert dialog.tries.text() == "PIN tries left: 3."
    qtbot.keyClicks(dialog.old, PIN)
    qtbot.keyClick(dialog.old, Qt.Key.Key_Tab)
    qtbot.keyClicks(dialog.new, NEW_PIN)
    qtbot.keyClick(dialog.new, Qt.Key.Key_Tab)
    qtbot.keyClicks(dialog.repeat, NEW_PIN)
    assert dialog.rules.ok
    qtbot.keyClick(dialog.repeat, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.self_service.dialog is None, timeout=WAIT)
    assert "Your PIN has been changed" in window.messages.message
    # the login follows at once: the old PIN is refused by the card, the new one logs in
    pin_dialog = wait_pin_dialog(qtbot, window)
    type_pin(qtbot, pin_dialog, PIN)
    qtbot.waitUntil(lambda: "2 tries left" in pin_dialog.problem.text(), timeout=WAIT)
    login(qtbot, window, NEW_PIN, role_index=0)
    assert window.card_status.text().startswith("Logged in as Dr Alex Training")
    # the card file kept the change (a hash only), and nothing logged any PIN
    card_file = cards["alex"].read_text(encoding="utf-8")
    assert NEW_PIN not in card_file and PIN not in card_file
    assert json.loads(card_file)
    logged = log_file.read_text(encoding="utf-8")
    assert PIN not in logged and NEW_PIN not in logged


def test_renew_the_certificate_of_a_card_near_expiry_then_log_in_with_the_new_one(qtbot, make_window, slot, service,
                                                                                   ui_ca, tmp_path, log_file):
    from app.card.virtual import CardFile, issue_card
    from app.cli import training
    from app.cli.desktop import training_renewable

    # a card of its own: the renewal revokes its old certificate in the shared training CA
    card, _ = issue_card(ui_ca, name="Dr Rene Renewal", algorithm="p256", pin=PIN, puk="12345678", days=30)
    path = tmp_path / "renewal.json"
    card.save(path)
    training.register_user(service.store, path, user_id="rene", roles=(("rene-clinical", "S8000:G8000:R8001"),))
    before = card.certificate.serial_number
    window = make_window()
    window.deps.renewable = training_renewable  # as the training composition sets it
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(path)
    login(qtbot, window, PIN, role_index=None)
    qtbot.waitUntil(lambda: window.renew_action.isEnabled(), timeout=WAIT)
    window.renew_action.trigger()
    qtbot.waitUntil(lambda: window.self_service.dialog is not None and window.self_service.dialog.isVisible(),
                    timeout=WAIT)
    dialog = window.self_service.dialog
    assert dialog.holder.text() == "Card holder: Dr Rene Renewal"
    assert "expires in 29 days" in dialog.intro.text() or "expires in 30 days" in dialog.intro.text()
    qtbot.keyClicks(dialog.pin, PIN)
    qtbot.keyClick(dialog.pin, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.outcome.isVisible() or dialog.messages.message != "", timeout=WAIT)
    assert dialog.messages.message == ""
    assert "old one is revoked" in dialog.outcome.text()
    assert not window.renew_action.isEnabled()  # a year ahead now
    qtbot.keyClick(dialog.ok, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.self_service.dialog is None, timeout=WAIT)
    # the card holds the new certificate; logged out and in again, the service knows it as the same person
    window.logout_action.trigger()
    slot.pull()
    qtbot.waitUntil(lambda: not window.flow.cards, timeout=WAIT)  # the client saw it go
    assert CardFile.load(path).certificate.serial_number != before
    slot.insert(path)
    qtbot.waitUntil(lambda: window.flow.pin_dialog is not None or window.messages.message != "", timeout=WAIT)
    assert window.messages.message == ""
    dialog = wait_pin_dialog(qtbot, window)
    assert not dialog.reminder.isVisible()  # no renewal reminder any more
    login(qtbot, window, PIN, role_index=None)
    assert window.session.login.user_id == "rene"  # the same person, known by the renewed certificate
    assert PIN not in log_file.read_text(encoding="utf-8")
