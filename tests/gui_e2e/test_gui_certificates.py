"""Certificates and roles at login: renewal reminder, expired and untrusted refusals, "no roles" explained."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.ui.fixtures import PIN
from tests.support.ui.helpers import WAIT, login, wait_pin_dialog

pytestmark = pytest.mark.pcsc


def test_renewal_reminder_within_90_days(qtbot, make_window, slot, cards):
    window = make_window()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["expiring"])
    dialog = wait_pin_dialog(qtbot, window)
    assert dialog.reminder.isVisible()
    assert "expires in 29 days" in dialog.reminder.text() or "expires in 30 days" in dialog.reminder.text()
    assert "renew" in dialog.reminder.text()
    login(qtbot, window, PIN, role_index=None)  # a reminder, not a refusal


def test_no_reminder_for_a_card_with_a_year_left(qtbot, make_window, slot, cards):
    window = make_window()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["blake"])
    assert not wait_pin_dialog(qtbot, window).reminder.isVisible()


def test_untrusted_card_is_refused_before_the_pin(qtbot, make_window, slot, cards):
    window = make_window()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["foreign"])
    qtbot.waitUntil(lambda: bool(window.messages.message), timeout=WAIT)
    assert "not issued by an authority this service trusts" in window.messages.message
    assert window.flow.pin_dialog is None and window.session is None


def test_expired_card_is_refused(qtbot, make_window, slot, cards):
    window = make_window(now=lambda: datetime.now(UTC) + timedelta(days=400))
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["blake"])
    qtbot.waitUntil(lambda: bool(window.messages.message), timeout=WAIT)
    # a year on, the training CRL is stale too, which app.pki ranks first; the expiry is named all the same
    assert "the certificate expired on" in window.messages.message
    assert window.flow.pin_dialog is None and window.session is None


def test_a_user_with_no_roles_is_told_why(qtbot, make_window, slot, cards):
    window = make_window()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["noroles"])
    dialog = wait_pin_dialog(qtbot, window)
    qtbot.keyClicks(dialog.pin, PIN)
    dialog.ok.click()
    qtbot.waitUntil(lambda: bool(window.messages.message), timeout=WAIT)
    assert "Dr Nora Noroles has no role profiles" in window.messages.message
    assert "registration authority" in window.messages.message
    assert window.session is None and window.flow.role_picker is None
