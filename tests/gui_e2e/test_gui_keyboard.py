"""Keyboard-only use, CUI tab order in the banner, accessible names on every control, visible focus."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QAbstractItemView, QApplication, QComboBox, QLineEdit

from tests.support.ui.fixtures import PIN
from tests.support.ui.helpers import WAIT, login

pytestmark = pytest.mark.pcsc


def _focus(qtbot, widget) -> None:
    widget.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is widget, timeout=WAIT)


def _tab(qtbot, window):
    qtbot.keyClick(QApplication.focusWidget() or window, Qt.Key.Key_Tab)
    return QApplication.focusWidget()


def _controls(root):
    kinds = (QAbstractButton, QLineEdit, QComboBox, QAbstractItemView)
    return [w for w in root.findChildren(kinds[0]) + root.findChildren(kinds[1]) + root.findChildren(kinds[2])
            + root.findChildren(kinds[3]) if w.isVisibleTo(root) and w.focusPolicy() != Qt.FocusPolicy.NoFocus]


def test_keyboard_only_search_open_and_banner_tab_order(qtbot, make_window, slot, cards, tmp_path):
    window = make_window()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=WAIT)
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["alex"])
    login(qtbot, window, PIN, role_index=0)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is window.search.nhs, timeout=WAIT)
    # search by details with the keyboard alone: Tab moves through the form in reading order
    _focus(qtbot, window.search.family)
    qtbot.keyClicks(window.search.family, "Smith")
    assert _tab(qtbot, window) is window.search.given
    qtbot.keyClicks(window.search.given, "Jane")
    assert _tab(qtbot, window) is window.search.dob
    qtbot.keyClicks(window.search.dob, "22-Oct-2010")
    qtbot.keyClick(window.search.dob, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.search.model.rowCount() > 0, timeout=WAIT)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is window.search.table, timeout=WAIT)
    qtbot.keyClick(window.search.table, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.record.patient is not None, timeout=WAIT)
    banner = window.record.banner
    qtbot.waitUntil(lambda: QApplication.focusWidget() is banner.name, timeout=WAIT)
    # CUI order: name, Born, Gender, NHS No., then the details toggle
    order = [_tab(qtbot, window) for _ in range(4)]
    assert order == [banner.born, banner.gender, banner.nhs, banner.toggle]
    qtbot.keyClick(banner.toggle, Qt.Key.Key_Space)
    assert banner.details.isVisible() and banner.toggle.text() == "Hide details"
    assert banner.contact_labels["Home"].text() == "Home"  # labels without colons
    # every visible control has an accessible name
    unnamed = [f"{type(w).__name__}:{w.objectName()}" for w in _controls(window)
               if not (w.accessibleName() or (isinstance(w, QAbstractButton) and w.text()))]
    assert unnamed == []
    # the WES report from the menu, by shortcut (no F-key-only functions)
    qtbot.keyClick(window, Qt.Key.Key_W, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: getattr(window, "wes_view", None) is not None and window.wes_view.isVisible(),
                    timeout=WAIT)
    assert "Compliant" in window.wes_view.verdict.text()
    window.wes_view.close()


def test_focus_is_visible(qtbot, make_window):
    """The focused control is drawn differently (a 3 px border from the style sheet), not only by colour."""
    window = make_window()
    qtbot.waitUntil(lambda: window.wes_report is not None, timeout=WAIT)
    button = window.messages.dismiss
    window.messages.show_notice("A notice")
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=WAIT)
    window.messages.action.setFocus()
    unfocused = button.grab().toImage()
    _focus(qtbot, button)
    focused = button.grab().toImage()
    assert unfocused != focused
