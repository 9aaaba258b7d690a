"""The Summary Care Record tab: permission asked, emergency access with a reason (an alert is created), opted out."""

from __future__ import annotations

import pytest

from tests.ui.conftest import PIN
from tests.ui.helpers import WAIT, open_by_nhs, role_index, wait_pin_dialog

pytestmark = pytest.mark.pcsc
ORG = "A81001"


def _patient_with_scr(store, skip: int = 0) -> str:
    from app.service.pds.seed import generate_patients

    found = 0
    for chunk in generate_patients(2000, seed=0):
        for row in chunk[4:] if chunk and chunk[0].nhs_number == "9000000009" else chunk:
            if row.superseded_by or row.invalidated or row.restricted or row.deceased:
                continue
            record = store.scr_record(row.nhs_number)
            if record and record.latest and record.consent != "No" and (row.gp_ods or "") != ORG:
                if found == skip:
                    return row.nhs_number
                found += 1
    raise AssertionError("the seed has no such patient")


def _alerts(store) -> list:
    return store.scr_alerts(org=ORG, types=(1, 2))


def _open(qtbot, window, slot, cards, nhs, expect_ask=True):
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["alex"])
    dialog = wait_pin_dialog(qtbot, window)
    dialog.pin.setText(PIN)
    dialog.ok.click()
    qtbot.waitUntil(lambda: window.flow.role_picker is not None, timeout=WAIT)
    window.flow.role_picker.choose(role_index(window, "Clinical Practitioner"))
    qtbot.waitUntil(lambda: window.session is not None, timeout=WAIT)
    open_by_nhs(qtbot, window, nhs)
    tab = window.record.scr
    window.record.tabs.setCurrentWidget(tab)
    assert "permission" in tab.intro.text() and "privacy officer is alerted" in tab.intro.text()
    tab.check.click()
    if expect_ask:
        qtbot.waitUntil(lambda: tab.ask.isVisible() or bool(window.messages.message), timeout=WAIT)
        assert window.messages.message == ""
    return tab


def test_permission_to_view_then_the_record(qtbot, make_window, slot, cards, service):
    nhs = _patient_with_scr(service.store, 0)
    before = len(_alerts(service.store))
    window = make_window()
    tab = _open(qtbot, window, slot, cards, nhs)
    assert not tab.body.isVisible()  # nothing shown before the patient is asked
    tab.yes.click()
    qtbot.waitUntil(lambda: tab.body.isVisible() or bool(window.messages.message), timeout=WAIT)
    assert window.messages.message == ""
    text = tab.body.toPlainText()
    assert "with the patient's permission" in text
    assert "Allergies and adverse reactions" in text and "Current repeat medications" in text
    allergies = window.record.banner.allergies.text()  # the banner's allergy summary now comes from the SCR
    assert "Known allergies" in allergies or allergies in ("No known allergies", "Allergies not recorded")
    alerts = _alerts(service.store)
    assert len(alerts) == before + 1  # the self-claimed relationship (the patient is registered elsewhere)
    assert any(a.nhs_number == nhs and a.alert_type == 1 and a.alert_subtype == 6 for a in alerts)
    slot.pull()
    qtbot.waitUntil(lambda: window.session is None, timeout=WAIT)
    assert tab.body.toPlainText() == "" and window.patient_data_present() == []


def test_emergency_access_needs_a_reason_and_alerts_the_privacy_officer(qtbot, make_window, slot, cards, service):
    nhs = _patient_with_scr(service.store, 1)
    window = make_window()
    tab = _open(qtbot, window, slot, cards, nhs)
    assert tab.emergency_box.isVisible()
    tab.emergency_button.click()
    assert "Give the reason" in tab.problem.text() and not tab.body.isVisible()
    tab.reason.setText("Unconscious on arrival, needs current medication")
    tab.emergency_button.click()
    qtbot.waitUntil(lambda: tab.body.isVisible() or bool(window.messages.message), timeout=WAIT)
    assert window.messages.message == ""
    assert "under emergency access" in tab.body.toPlainText()
    mine = [a for a in _alerts(service.store) if a.nhs_number == nhs]
    assert any(a.alert_subtype == 4 and "Unconscious" in a.reason for a in mine)


def test_opted_out_patient_is_explained(qtbot, make_window, slot, cards, service):
    window = make_window()
    tab = _open(qtbot, window, slot, cards, "9000000017", expect_ask=False)  # NHS's example: consent "No"
    qtbot.waitUntil(lambda: "opted out" in tab.intro.text(), timeout=WAIT)
    assert not tab.ask.isVisible() and not tab.body.isVisible()
    assert "Use other sources" in tab.intro.text()


def test_the_privacy_officer_sees_and_acknowledges_the_alert(qtbot, make_window, slot, cards, service):
    nhs = _patient_with_scr(service.store, 2)
    window = make_window()
    tab = _open(qtbot, window, slot, cards, nhs)
    tab.reason.setText("Collapsed in clinic; allergies needed before treatment")
    tab.emergency_button.click()
    qtbot.waitUntil(lambda: tab.body.isVisible(), timeout=WAIT)
    slot.pull()
    qtbot.waitUntil(lambda: window.session is None, timeout=WAIT)
    slot.insert(cards["officer"])  # one role, Privacy Officer: straight to the queue
    dialog = wait_pin_dialog(qtbot, window)
    dialog.pin.setText(PIN)
    dialog.ok.click()
    qtbot.waitUntil(lambda: window.session is not None, timeout=WAIT)
    view = window.alerts
    assert window.stack.currentWidget() is view and not window.search_action.isEnabled()
    qtbot.waitUntil(lambda: any(a.nhs_number == nhs for a in view.alerts), timeout=WAIT)
    row = next(i for i, a in enumerate(view.alerts) if a.nhs_number == nhs)
    assert "Collapsed in clinic" in view.table.item(row, 2).text()
    assert view.table.item(row, 4).text() == "Dr Alex Training" and view.table.item(row, 6).text() == "Open"
    alert_id = view.alerts[row].id
    view.table.selectRow(row)
    view.note.setText("Checked with the clinician: genuine emergency")
    view.ack.click()
    qtbot.waitUntil(lambda: all(a.id != alert_id for a in view.alerts), timeout=WAIT)  # gone from the open queue
    stored = service.store.get_scr_alert(alert_id)
    assert stored.acknowledged_at is not None and stored.acknowledged_by == "olivia"
    slot.pull()
    qtbot.waitUntil(lambda: window.session is None, timeout=WAIT)
    assert window.patient_data_present() == []
