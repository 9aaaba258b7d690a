"""The session's end: a pulled card clears every patient view at once, then locks or logs out by site policy."""

from __future__ import annotations

import pytest

from tests.gui.conftest import ALEX, BLAKE, PATIENTS, PIN
from tests.gui.helpers import logged_in
from tests.ui.helpers import WAIT, login, open_by_nhs, type_pin, wait_pin_dialog

pytestmark = pytest.mark.gui_fast


def fill(qtbot, window):
    open_by_nhs(qtbot, window, "9000000009")
    qtbot.waitUntil(lambda: bool(window.record.flags.body.toPlainText()), timeout=WAIT)
    assert window.patient_data_present() != []


def test_card_pulled_in_lock_mode_clears_and_the_same_card_resumes_the_role(qtbot, make_window, cards, card, spine):
    window = make_window(removal="lock")
    applet = card(ALEX)
    session = logged_in(qtbot, window, cards, card, role="Clerical", applet=applet)
    open_by_nhs(qtbot, window, PATIENTS["cpis"])
    assert window.patient_data_present() != []
    cards.remove()
    assert window.session is None  # at once, in the event's own slot
    assert window.patient_data_present() == []
    assert window.record.patient is None and window.cache == {} and window.pds is None
    assert window.stack.currentWidget() is window.login_page
    assert window.login_page.heading.text() == "Spine Desk is locked. Insert your smartcard to resume."
    assert window.card_status.text().startswith("Locked for Dr Alex Training")
    cards.insert(applet)
    dialog = wait_pin_dialog(qtbot, window)
    assert dialog.windowTitle() == "Unlock Spine Desk"
    login(qtbot, window, PIN, role_index=None)
    assert window.flow.role_picker is None and window.session.role.urid == session.role.urid
    assert window.patient_data_present() == []  # resumed, with nothing from before the lock


def test_another_card_after_a_lock_starts_a_fresh_login(qtbot, make_window, cards, card):
    window = make_window(removal="lock")
    logged_in(qtbot, window, cards, card)
    fill(qtbot, window)
    cards.remove()
    assert window.flow.locked is not None
    cards.insert(card(BLAKE))
    dialog = wait_pin_dialog(qtbot, window)
    assert dialog.windowTitle() == "Log in to Spine Desk"
    assert window.flow.locked is None  # the locked session is discarded
    type_pin(qtbot, dialog, PIN)
    qtbot.waitUntil(lambda: window.session is not None, timeout=WAIT)
    assert window.session.login.user_name == "Dr Blake Second" and window.patient_data_present() == []


def test_card_pulled_in_logout_mode_clears_and_logs_out(qtbot, make_window, cards, card, spine):
    window = make_window(removal="logout")
    logged_in(qtbot, window, cards, card)
    fill(qtbot, window)
    cards.remove()
    assert window.session is None and window.patient_data_present() == []
    assert window.flow.locked is None
    assert window.login_page.heading.text() == "Insert your smartcard to log in."
    assert window.card_status.text() == "Card: reader ready, no card"
    qtbot.waitUntil(lambda: len(spine.made("DELETE", "/auth/session")) == 1, timeout=WAIT)  # the token ended


def test_card_pulled_while_the_pin_is_asked_closes_the_dialog(qtbot, make_window, cards, card):
    window = make_window()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    cards.insert(card(ALEX))
    wait_pin_dialog(qtbot, window)
    cards.remove()
    assert window.flow.pin_dialog is None and window.session is None
    assert window.card_status.text() == "Card: reader ready, no card"


def test_lock_by_hand_with_the_card_in_asks_for_the_pin_again(qtbot, make_window, cards, card):
    window = make_window()
    logged_in(qtbot, window, cards, card)
    fill(qtbot, window)
    window.lock_action.trigger()
    assert window.session is None and window.patient_data_present() == []
    dialog = wait_pin_dialog(qtbot, window)
    assert dialog.windowTitle() == "Unlock Spine Desk"


def test_a_dead_service_at_login_is_explained_in_the_pin_dialog(qtbot, make_window, cards, card, spine):
    window = make_window()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    spine.dead = True
    cards.insert(card(ALEX))
    dialog = wait_pin_dialog(qtbot, window)
    type_pin(qtbot, dialog, PIN)
    qtbot.waitUntil(lambda: dialog.problem.text() != "", timeout=WAIT)
    assert "cannot be reached" in dialog.problem.text() and window.session is None
    spine.dead = False  # back: the same dialog logs in
    type_pin(qtbot, dialog, PIN)
    qtbot.waitUntil(lambda: window.flow.role_picker is not None, timeout=WAIT)


def test_the_training_menu_pulls_and_puts_back_the_training_card(qtbot, make_window, cards, card):
    from tests.gui.fakes import FakeTrainingCard

    training = FakeTrainingCard(cards, card(ALEX), PIN)
    window = make_window(training_card=training)
    assert PIN in window.login_page.hint.text()
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Training")
    remove, insert = (next(a for a in menu.actions() if a.text() == text)
                      for text in ("&Remove training card", "&Insert training card"))
    insert.trigger()
    wait_pin_dialog(qtbot, window)
    remove.trigger()
    qtbot.waitUntil(lambda: window.flow.pin_dialog is None, timeout=WAIT)
    assert window.card_status.text() == "Card: reader ready, no card"
