"""Child protection (CP-IS) in the record: told before viewing, the local authority notified, contacts shown."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.ui.conftest import PIN
from tests.ui.helpers import WAIT, open_by_nhs, role_index, wait_pin_dialog

pytestmark = pytest.mark.pcsc


def _patient_with_open_plan(store) -> str:
    from app.service.pds.seed import generate_patients

    since = date.today() - timedelta(days=365)
    for chunk in generate_patients(2000, seed=0):
        for row in chunk:
            plans = store.cpis_plans(row.nhs_number, ended_on_or_after=since)
            if any(p.end_date is None for p, _ in plans) and not row.restricted and row.superseded_by is None:
                return row.nhs_number
    raise AssertionError("the seed has no patient with an open CP-IS plan")


def test_unscheduled_view_warns_first_then_notifies_and_shows_contacts(qtbot, make_window, slot, cards, service):
    nhs = _patient_with_open_plan(service.store)
    before = len(service.store.cpis_notifications(nhs_number=nhs))
    window = make_window()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["alex"])
    dialog = wait_pin_dialog(qtbot, window)
    dialog.pin.setText(PIN)
    dialog.ok.click()
    qtbot.waitUntil(lambda: window.flow.role_picker is not None, timeout=WAIT)
    window.flow.role_picker.choose(role_index(window, "Clinical Practitioner"))
    qtbot.waitUntil(lambda: window.session is not None, timeout=WAIT)
    open_by_nhs(qtbot, window, nhs)
    tab = window.record.cpis
    window.record.tabs.setCurrentWidget(tab)
    assert "notifies the patient's local authority" in tab.intro.text()
    assert tab.unscheduled.isVisible() and not tab.body.isVisible()  # nothing fetched before the user chooses
    assert len(service.store.cpis_notifications(nhs_number=nhs)) == before
    tab.unscheduled.click()
    qtbot.waitUntil(lambda: tab.body.isVisible(), timeout=WAIT)
    text = tab.body.toPlainText()
    assert "(Current)" in text and "Responsible local authority" in text
    assert "Office hours" in text and "Out of hours" in text
    assert "Dr Alex Training" in text  # this access is in the last-accesses list
    assert len(service.store.cpis_notifications(nhs_number=nhs)) > before
    slot.pull()
    qtbot.waitUntil(lambda: window.session is None, timeout=WAIT)
    assert tab.body.toPlainText() == "" and window.patient_data_present() == []


def test_a_clerical_role_cannot_view_child_protection(qtbot, make_window, slot, cards, service):
    nhs = _patient_with_open_plan(service.store)
    window = make_window()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["alex"])
    dialog = wait_pin_dialog(qtbot, window)
    dialog.pin.setText(PIN)
    dialog.ok.click()
    qtbot.waitUntil(lambda: window.flow.role_picker is not None, timeout=WAIT)
    window.flow.role_picker.choose(role_index(window, "Clerical"))
    qtbot.waitUntil(lambda: window.session is not None, timeout=WAIT)
    open_by_nhs(qtbot, window, nhs)
    tab = window.record.cpis
    assert tab.intro.text() == "Your role cannot view child protection (CP-IS) information."
    assert not tab.unscheduled.isVisibleTo(window) and not tab.scheduled.isVisibleTo(window)


def test_an_answer_about_one_patient_never_lands_under_another(qtbot, make_window, slot, cards, service):
    """Ask for patient A's child protection data, open patient B before it arrives: B's tab stays empty."""
    nhs = _patient_with_open_plan(service.store)
    window = make_window()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["blake"])  # Nurse role: B0107
    dialog = wait_pin_dialog(qtbot, window)
    dialog.pin.setText(PIN)
    dialog.ok.click()
    qtbot.waitUntil(lambda: window.session is not None, timeout=WAIT)
    open_by_nhs(qtbot, window, nhs)
    window.record.cpis.unscheduled.click()  # A's answer is now in flight …
    window.open_patient("9000000033")  # … and B is asked for at once
    qtbot.waitUntil(lambda: window.record.patient is not None and window.record.patient.nhs_number == "9000000033",
                    timeout=WAIT)
    window.net.wait(10_000)
    qtbot.wait(100)  # let any late answer be delivered
    assert window.record.cpis.body.toPlainText() == ""
    assert "Westholm" not in window.record.cpis.body.toPlainText()
