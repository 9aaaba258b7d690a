"""Recording, changing and removing a reasonable adjustment flag in the real window against the real service.

Keyboard first: the dialog is filled by keys where a person would type; checks are named before anything is sent; a
change made by someone else meanwhile is never overwritten (reload offered); removal needs a reason and a comment.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from tests.ui.conftest import PIN
from tests.ui.helpers import WAIT, open_by_nhs, role_index, wait_pin_dialog

pytestmark = pytest.mark.pcsc


def _patients(store, *, flagged: bool, skip: int) -> str:
    """A current seeded patient with (or without) an active flag; ``skip`` keeps each test to its own patient."""
    from app.service.pds.seed import generate_patients

    found = 0
    for chunk in generate_patients(2000, seed=0):
        for row in chunk[4:] if found == 0 else chunk:
            if row.superseded_by is not None or row.invalidated or row.restricted or row.deceased:
                continue
            if bool(store.flags_for_patient(row.nhs_number, statuses=("active",))) == flagged:
                if found == skip:
                    return row.nhs_number
                found += 1
    raise AssertionError("not enough seeded patients of that kind")


def _login_clinical(qtbot, window, slot, card, role="Clinical Practitioner"):
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(card)
    dialog = wait_pin_dialog(qtbot, window)
    dialog.pin.setText(PIN)
    dialog.ok.click()
    qtbot.waitUntil(lambda: window.flow.role_picker is not None, timeout=WAIT)
    window.flow.role_picker.choose(role_index(window, role))
    qtbot.waitUntil(lambda: window.session is not None, timeout=WAIT)


def _open_flags(qtbot, window, nhs):
    open_by_nhs(qtbot, window, nhs)
    tab = window.record.flags
    qtbot.waitUntil(lambda: bool(tab.body.toPlainText()), timeout=WAIT)
    window.record.tabs.setCurrentWidget(tab)
    return tab


def _dialog(qtbot, window):
    flow = window.clinical.flag_flow
    qtbot.waitUntil(lambda: flow.dialog is not None and flow.dialog.isVisible(), timeout=WAIT)
    return flow.dialog


def test_record_a_flag_by_keyboard_with_checks_first(qtbot, make_window, slot, cards, service):
    nhs = _patients(service.store, flagged=False, skip=0)
    window = make_window()
    _login_clinical(qtbot, window, slot, cards["alex"])
    tab = _open_flags(qtbot, window, nhs)
    assert "No reasonable adjustment flag" in tab.body.toPlainText()
    assert tab.create.isVisible() and not tab.edit.isVisible() and not tab.remove.isVisible()
    tab.create.setFocus()
    qtbot.keyClick(tab.create, Qt.Key.Key_Space)
    dialog = _dialog(qtbot, window)
    assert dialog.windowTitle() == "Record a reasonable adjustment flag"
    for widget in [*dialog.findChildren(type(dialog.notes)), dialog.what, dialog.category, dialog.save_button]:
        assert widget.accessibleName(), widget.objectName()
    dialog.save_button.click()  # nothing chosen: the problems are named, nothing is sent
    assert "who consented" in dialog.problem.text() and "at least one" in dialog.problem.text()
    assert service.store.flags_for_patient(nhs, statuses=("active",)) == []
    hearing, hearing_note = dialog.impairments["2"]
    hearing.setFocus()
    qtbot.keyClick(hearing, Qt.Key.Key_Space)
    qtbot.keyClicks(hearing_note, "Profound, both ears")
    dialog.category.setFocus()
    dialog.category.setCurrentIndex(dialog.category.findData("001"))
    dialog.what.setFocus()
    qtbot.keyClicks(dialog.what.lineEdit(), "Does lip read")
    qtbot.keyClicks(dialog.what_note, "Face the patient")
    qtbot.keyClick(dialog.add_adjustment, Qt.Key.Key_Space)
    assert dialog.adjustment_list.count() == 1 and "Does lip read" in dialog.adjustment_list.item(0).text()
    best = dialog.consents["002"]
    best.setFocus()
    qtbot.keyClick(best, Qt.Key.Key_Space)
    assert dialog.summary.isEnabled() and not dialog.consent_by.isEnabled()
    dialog.save_button.click()
    assert "how it was reached" in dialog.problem.text()
    qtbot.keyClicks(dialog.summary, "Assessed with the family")
    dialog.save_button.click()
    qtbot.waitUntil(lambda: window.clinical.flag_flow.dialog is None, timeout=WAIT)
    qtbot.waitUntil(lambda: "Does lip read" in tab.body.toPlainText(), timeout=WAIT)
    text = tab.body.toPlainText()
    assert "Hearing" in text and "Profound, both ears" in text and "Best interest" in text
    assert window.messages.message == "Reasonable adjustment flag recorded."
    assert tab.edit.isVisible() and tab.remove.isVisible() and not tab.create.isVisible()
    (row,) = service.store.flags_for_patient(nhs, statuses=("active",))
    assert row.version == 1


def test_a_change_made_meanwhile_is_never_overwritten(qtbot, make_window, slot, cards, service):
    from app.client.flag_edit import FlagEditClient

    nhs = _patients(service.store, flagged=True, skip=1)
    window = make_window()
    _login_clinical(qtbot, window, slot, cards["alex"])
    tab = _open_flags(qtbot, window, nhs)
    assert tab.edit.isVisible()
    tab.edit.click()
    dialog = _dialog(qtbot, window)
    assert dialog.windowTitle() == "Change a reasonable adjustment flag"
    (before,) = service.store.flags_for_patient(nhs, statuses=("active",))
    # a colleague saves a change while this dialog is open
    colleague = FlagEditClient(window.deps.spine, window.session.auth)
    theirs = colleague.read(before.id, nhs)
    from dataclasses import replace

    colleague.update(theirs, replace(theirs.draft, notes="Their change"))
    dialog.notes.setText("My change")
    dialog.save_button.click()
    qtbot.waitUntil(lambda: window.clinical.flag_flow.dialog is None, timeout=WAIT)
    qtbot.waitUntil(lambda: bool(window.messages.message), timeout=WAIT)
    assert "changed" in window.messages.message and window.messages.action.text() == "Reload flag"
    (after,) = service.store.flags_for_patient(nhs, statuses=("active",))
    assert after.version == before.version + 1  # theirs only
    assert "Their change" in str(after.resource) and "My change" not in str(after.resource)
    window.messages.action.click()
    qtbot.waitUntil(lambda: "Their change" in tab.body.toPlainText(), timeout=WAIT)
    # and a change against the current version goes through
    tab.edit.click()
    dialog = _dialog(qtbot, window)
    assert dialog.notes.text() == "Their change"
    dialog.notes.setText("Agreed change")
    dialog.save_button.click()
    qtbot.waitUntil(lambda: "Agreed change" in tab.body.toPlainText(), timeout=WAIT)
    (final,) = service.store.flags_for_patient(nhs, statuses=("active",))
    assert final.version == before.version + 2


def test_remove_needs_a_reason_and_a_comment(qtbot, make_window, slot, cards, service):
    nhs = _patients(service.store, flagged=True, skip=2)
    window = make_window()
    _login_clinical(qtbot, window, slot, cards["alex"])
    tab = _open_flags(qtbot, window, nhs)
    (row,) = service.store.flags_for_patient(nhs, statuses=("active",))
    tab.remove.click()
    dialog = _dialog(qtbot, window)
    dialog.ok.click()
    assert "Choose why" in dialog.problem.text() and "comment" in dialog.problem.text()
    dialog.reasons["DoesntApply"].setFocus()
    qtbot.keyClick(dialog.reasons["DoesntApply"], Qt.Key.Key_Space)
    qtbot.keyClicks(dialog.comment, "Patient asked for it to be removed")
    qtbot.keyClick(dialog.comment, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: tab.create.isVisible(), timeout=WAIT)
    assert service.store.flags_for_patient(nhs, statuses=("active",)) == []
    assert service.store.get_flag(row.id).status == "inactive"
    assert "removed" in window.messages.message


def test_card_pulled_with_the_dialog_open_clears_it(qtbot, make_window, slot, cards, service):
    nhs = _patients(service.store, flagged=True, skip=3)
    window = make_window()
    _login_clinical(qtbot, window, slot, cards["alex"])
    tab = _open_flags(qtbot, window, nhs)
    tab.edit.click()
    _dialog(qtbot, window)
    assert "edit dialog" in window.patient_data_present()
    slot.pull()
    qtbot.waitUntil(lambda: window.session is None, timeout=WAIT)
    assert window.patient_data_present() == []
    assert window.clinical.flag_flow.dialog is None


def test_clerical_role_sees_existence_and_no_write_buttons(qtbot, make_window, slot, cards, service):
    nhs = _patients(service.store, flagged=True, skip=4)
    window = make_window()
    _login_clinical(qtbot, window, slot, cards["alex"], role="Clerical")
    tab = _open_flags(qtbot, window, nhs)
    assert "Details withheld" in tab.body.toPlainText()
    assert not (tab.create.isVisible() or tab.edit.isVisible() or tab.remove.isVisible())
