"""Logging in with a role in the fast tier's window (the PIN typed, the role chosen as a person would)."""

from __future__ import annotations

from tests.gui.conftest import ALEX, PIN
from tests.ui.helpers import WAIT, type_pin, wait_pin_dialog


def logged_in(qtbot, window, cards, card, *, name: str = ALEX, role: str | None = "Clinical Practitioner",
              applet=None):
    """Card in, PIN, and the role whose label contains ``role`` (None: the only role, taken without asking)."""
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    cards.insert(applet or card(name))
    type_pin(qtbot, wait_pin_dialog(qtbot, window), PIN)
    if role is not None:
        qtbot.waitUntil(lambda: window.flow.role_picker is not None, timeout=WAIT)
        picker = window.flow.role_picker
        picker.choose(next(i for i in range(picker.list.count()) if role in picker.list.item(i).text()))
    qtbot.waitUntil(lambda: window.session is not None, timeout=WAIT)
    return window.session
