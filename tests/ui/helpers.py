"""Driving the real window the way a person does: keys into the PIN dialog, Enter on the role list."""

from __future__ import annotations

from PySide6.QtCore import Qt

WAIT = 30_000  # ms: generous ceilings for waits, never timing assertions


def wait_pin_dialog(qtbot, window):
    qtbot.waitUntil(lambda: window.flow.pin_dialog is not None and window.flow.pin_dialog.isVisible(), timeout=WAIT)
    return window.flow.pin_dialog


def type_pin(qtbot, dialog, pin: str) -> None:
    dialog.pin.setFocus()
    qtbot.keyClicks(dialog.pin, pin)
    qtbot.keyClick(dialog.pin, Qt.Key.Key_Return)


def login(qtbot, window, pin: str, role_index: int | None = 0):
    dialog = wait_pin_dialog(qtbot, window)
    type_pin(qtbot, dialog, pin)
    if role_index is not None:
        qtbot.waitUntil(lambda: window.flow.role_picker is not None or window.session is not None, timeout=WAIT)
        if window.flow.role_picker is not None:
            picker = window.flow.role_picker
            picker.list.setCurrentRow(role_index)
            qtbot.keyClick(picker.list, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.session is not None, timeout=WAIT)
    return window.session


def open_by_nhs(qtbot, window, typed: str):
    window.search.nhs.setFocus()
    if typed:
        window.search.nhs.clear()
    qtbot.keyClicks(window.search.nhs, typed)
    wanted = window.search.nhs.check.digits
    qtbot.keyClick(window.search.nhs, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.record.patient is not None and window.record.patient.nhs_number == wanted,
                    timeout=WAIT)
    return window.record.patient


def role_index(window, text: str) -> int:
    picker = window.flow.role_picker
    return next(i for i in range(picker.list.count()) if text in picker.list.item(i).text())


def living_adult():
    """A seeded living adult with a plain record (after NHS's reference patients)."""
    from app.service.pds.seed import generate_patients

    rows = [r for chunk in generate_patients(300, seed=0) for r in chunk][4:]
    return next(r for r in rows if not r.deceased and not r.restricted and r.birth_date
                and r.birth_date.year < 1990 and r.superseded_by is None and not r.invalidated)
