"""Card login in the real window: PIN, tries left, a blocked card, roles, untrusted cards, the WES gate."""

from __future__ import annotations

import pytest

from tests.gui.conftest import ALEX, BLAKE, EXPIRING, NORA, OLIVIA, PATIENTS, PIN
from tests.support.ui.fixtures import failing_gate
from tests.support.ui.helpers import WAIT, login, type_pin, wait_pin_dialog

pytestmark = pytest.mark.gui_fast


def ready(qtbot, window):
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    return window


def test_card_in_asks_for_the_pin_under_the_training_banner(qtbot, make_window, cards, card):
    window = ready(qtbot, make_window())
    assert window.training_banner.isVisible() and "TRAINING" in window.training_banner.text()
    assert window.card_status.text() == "Card: reader ready, no card"
    cards.insert(card(ALEX))
    dialog = wait_pin_dialog(qtbot, window)
    assert dialog.pin.echoMode() == dialog.pin.EchoMode.Password
    assert window.card_status.text() == "Card inserted: logging in"


def test_wrong_pin_shows_tries_left_then_the_role_choice(qtbot, make_window, cards, card, spine):
    window = ready(qtbot, make_window())
    cards.insert(card(ALEX))
    dialog = wait_pin_dialog(qtbot, window)
    type_pin(qtbot, dialog, "11112222")
    qtbot.waitUntil(lambda: "2 tries left" in dialog.problem.text(), timeout=WAIT)
    assert dialog.pin.text() == "" and window.session is None
    type_pin(qtbot, dialog, PIN)
    qtbot.waitUntil(lambda: window.flow.role_picker is not None, timeout=WAIT)
    picker = window.flow.role_picker
    labels = [picker.list.item(i).text() for i in range(picker.list.count())]
    assert any("Clinical Practitioner Access Role — Spine Desk Training Practice (A81001)" in t for t in labels)
    assert any("Clerical Access Role" in t for t in labels)
    picker.choose(next(i for i, t in enumerate(labels) if "Clinical" in t))
    qtbot.waitUntil(lambda: window.session is not None, timeout=WAIT)
    assert window.card_status.text() == ("Logged in as Dr Alex Training, Clinical Practitioner Access Role "
                                         "(Spine Desk Training Practice)")
    assert window.stack.currentWidget() is window.search
    made = spine.made("POST", "/auth/session")  # the card's signature verified by the fake, then the role bound
    assert [k["path"] for k in made] == ["/auth/session", "/auth/session/role"]
    assert made[1]["body"] == {"urid": "training-clinical"}


def test_three_wrong_pins_block_the_card_and_say_what_to_do(qtbot, make_window, cards, card):
    window = ready(qtbot, make_window())
    applet = card(BLAKE)
    cards.insert(applet)
    dialog = wait_pin_dialog(qtbot, window)
    for expected in ("2 tries left", "1 try left"):
        type_pin(qtbot, dialog, "99990000")
        qtbot.waitUntil(lambda expected=expected: expected in dialog.problem.text(), timeout=WAIT)
    type_pin(qtbot, dialog, "99990000")
    qtbot.waitUntil(lambda: window.messages.message != "", timeout=WAIT)
    assert "locked after too many wrong PINs" in window.messages.message
    assert "registration authority" in window.messages.message
    assert window.flow.pin_dialog is None and window.session is None
    # the blocked card put in again: explained at once, no PIN asked
    cards.remove()
    window.messages.clear()
    cards.insert(applet)
    qtbot.waitUntil(lambda: "locked after too many wrong PINs" in window.messages.message, timeout=WAIT)
    assert window.flow.pin_dialog is None


def test_a_single_role_is_taken_without_asking(qtbot, make_window, cards, card):
    window = ready(qtbot, make_window())
    cards.insert(card(BLAKE))
    session = login(qtbot, window, PIN, role_index=None)
    assert window.flow.role_picker is None
    assert session.role.urid == "blake-clinical" and session.can_search


def test_a_user_without_roles_is_told_so(qtbot, make_window, cards, card, spine):
    window = ready(qtbot, make_window())
    cards.insert(card(NORA))
    type_pin(qtbot, wait_pin_dialog(qtbot, window), PIN)
    qtbot.waitUntil(lambda: window.messages.message != "", timeout=WAIT)
    assert "Dr Nora Noroles has no role profiles" in window.messages.message
    assert window.session is None and window.flow.role_picker is None
    qtbot.waitUntil(lambda: len(spine.made("DELETE", "/auth/session")) == 1, timeout=WAIT)  # the session given up


def test_cancelling_the_role_choice_gives_the_session_up(qtbot, make_window, cards, card, spine):
    window = ready(qtbot, make_window())
    cards.insert(card(ALEX))
    type_pin(qtbot, wait_pin_dialog(qtbot, window), PIN)
    qtbot.waitUntil(lambda: window.flow.role_picker is not None, timeout=WAIT)
    window.flow.role_picker.reject()
    qtbot.waitUntil(lambda: len(spine.made("DELETE", "/auth/session")) == 1, timeout=WAIT)
    assert window.session is None and window.stack.currentWidget() is window.login_page


def test_a_card_from_an_untrusted_authority_is_refused_before_the_pin(qtbot, make_window, cards, card, spine):
    window = ready(qtbot, make_window())
    cards.insert(card("Dr Fay Foreign"))
    qtbot.waitUntil(lambda: window.messages.message != "", timeout=WAIT)
    assert window.flow.pin_dialog is None and window.session is None
    assert "certificate" in window.messages.message.lower()
    assert spine.requests == []  # nothing was sent to the service


def test_a_non_compliant_workstation_keeps_clinical_use_closed(qtbot, make_window, cards, card):
    window = make_window(gate=failing_gate)
    qtbot.waitUntil(lambda: window.wes_report is not None, timeout=WAIT)
    assert not window.clinical_enabled
    assert "does not meet the WES" in window.login_page.heading.text()
    assert "WES-AV-02" in window.wes_view.body.toPlainText()
    cards.insert(card(ALEX))
    qtbot.waitUntil(lambda: "card inserted" in window.card_status.text(), timeout=WAIT)
    assert "disabled" in window.card_status.text()
    assert window.flow.pin_dialog is None and window.session is None
    window.wes_view.close()


def test_a_card_near_expiry_shows_a_renewal_reminder_with_the_pin(qtbot, make_window, cards, card):
    window = ready(qtbot, make_window())
    cards.insert(card(EXPIRING))
    dialog = wait_pin_dialog(qtbot, window)
    assert dialog.reminder.text().startswith("Your smartcard certificate expires in ")
    assert "registration authority" in dialog.reminder.text()


def test_a_privacy_officer_lands_on_the_alerts_queue(qtbot, make_window, cards, card):
    window = ready(qtbot, make_window())
    cards.insert(card(OLIVIA))
    session = login(qtbot, window, PIN, role_index=None)
    assert session.privacy_officer and not session.can_search
    assert window.stack.currentWidget() is window.alerts
    qtbot.waitUntil(lambda: window.alerts.table.rowCount() > 0 or bool(window.messages.message), timeout=WAIT)
    assert window.messages.message == ""
    assert any(a.nhs_number == PATIENTS["scr"] for a in window.alerts.alerts)  # the self-claim recorded before
    assert not window.search_action.isEnabled() and window.alerts_action.isEnabled()
