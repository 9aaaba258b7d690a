"""The record's clinical tabs: the SCR consent flow, child protection by role, reasonable adjustment flags."""

from __future__ import annotations

import pytest

from tests.gui.conftest import MANIFEST, PATIENTS
from tests.gui.helpers import logged_in
from tests.ui.helpers import WAIT, open_by_nhs

pytestmark = pytest.mark.gui_fast


def scr_tab(qtbot, window, cards, card, nhs: str, *, expect_ask: bool = True):
    logged_in(qtbot, window, cards, card)
    open_by_nhs(qtbot, window, nhs)
    tab = window.record.scr
    window.record.tabs.setCurrentWidget(tab)
    assert "permission" in tab.intro.text() and "privacy officer is alerted" in tab.intro.text()
    assert not tab.body.isVisible() and not tab.ask.isVisible()  # nothing asked or shown before "Find"
    tab.check.click()
    if expect_ask:
        qtbot.waitUntil(lambda: tab.ask.isVisible() or bool(window.messages.message), timeout=WAIT)
        assert window.messages.message == ""
    return tab


def test_scr_with_the_patients_permission(qtbot, make_window, cards, card, spine):
    window = make_window()
    tab = scr_tab(qtbot, window, cards, card, PATIENTS["scr"])
    assert tab.yes.isVisible() and tab.no.isVisible() and tab.emergency_button.isVisible()
    assert not tab.body.isVisible()
    tab.yes.click()
    qtbot.waitUntil(lambda: tab.body.isVisible() or bool(window.messages.message), timeout=WAIT)
    assert window.messages.message == ""
    text = tab.body.toPlainText()
    assert "with the patient's permission" in text
    assert "Allergies and adverse reactions" in text and "Current repeat medications" in text
    assert not tab.ask.isVisible()
    assert len(spine.made("POST", "/AuditEvent")) == 1  # registered elsewhere: the relationship self-claimed
    assert len(spine.made("POST", "/$setPermission")) == 1


def test_scr_refused_shows_nothing_and_says_why(qtbot, make_window, cards, card, spine):
    window = make_window()
    tab = scr_tab(qtbot, window, cards, card, PATIENTS["scr"])
    tab.no.click()
    qtbot.waitUntil(lambda: "refused permission" in tab.intro.text(), timeout=WAIT)
    assert not tab.ask.isVisible() and not tab.body.isVisible() and tab.body.toPlainText() == ""
    assert spine.made("GET", "/Bundle") == []  # the record itself was never fetched


def test_scr_emergency_access_needs_a_reason(qtbot, make_window, cards, card, spine):
    window = make_window()
    tab = scr_tab(qtbot, window, cards, card, PATIENTS["scr"])
    tab.reason.setText("ill")
    tab.emergency_button.click()
    assert "Give the reason for emergency access" in tab.problem.text()
    assert spine.made("POST", "/AuditEvent") == []  # too short: nothing sent
    tab.reason.setText(MANIFEST["emergency_reason"])
    tab.emergency_button.click()
    qtbot.waitUntil(lambda: tab.body.isVisible() or bool(window.messages.message), timeout=WAIT)
    assert window.messages.message == ""
    assert "under emergency access; your privacy officer has been alerted" in tab.body.toPlainText()
    [alert] = spine.made("POST", "/AuditEvent")
    assert alert["body"]["outcomeDesc"] == MANIFEST["emergency_reason"]


def test_scr_of_an_opted_out_patient_is_explained(qtbot, make_window, cards, card):
    window = make_window()
    tab = scr_tab(qtbot, window, cards, card, "9000000017", expect_ask=False)  # NHS's example: consent "No"
    qtbot.waitUntil(lambda: "opted out" in tab.intro.text(), timeout=WAIT)
    assert "Use other sources" in tab.intro.text()
    assert not tab.ask.isVisible() and not tab.body.isVisible()


def test_child_protection_for_a_role_with_rights(qtbot, make_window, cards, card, spine):
    window = make_window()
    logged_in(qtbot, window, cards, card)
    open_by_nhs(qtbot, window, PATIENTS["cpis"])
    tab = window.record.cpis
    window.record.tabs.setCurrentWidget(tab)
    assert "notifies the patient's local authority" in tab.intro.text()
    assert tab.unscheduled.isVisible() and not tab.body.isVisible()
    assert spine.made("GET", "/cpis/") == []  # nothing fetched before the user chooses
    tab.unscheduled.click()
    qtbot.waitUntil(lambda: tab.body.isVisible() or bool(window.messages.message), timeout=WAIT)
    assert window.messages.message == ""
    text = tab.body.toPlainText()
    assert "(Current)" in text and "Responsible local authority" in text
    assert "Office hours" in text and "Out of hours" in text
    [care_team] = spine.made("GET", "/CareTeam")
    assert care_team["isunscheduledaccessevent"] == "true"


def test_child_protection_for_a_role_without_rights(qtbot, make_window, cards, card, spine):
    window = make_window()
    logged_in(qtbot, window, cards, card, role="Clerical")
    open_by_nhs(qtbot, window, PATIENTS["cpis"])
    tab = window.record.cpis
    assert tab.intro.text() == "Your role cannot view child protection (CP-IS) information."
    assert not tab.unscheduled.isVisibleTo(window) and not tab.scheduled.isVisibleTo(window)
    assert spine.made("GET", "/cpis/") == []


def test_an_answer_about_one_patient_never_lands_under_another(qtbot, make_window, cards, card, spine):
    """Ask for patient A's child protection data, open patient B before it arrives: B's tab stays empty."""
    window = make_window()
    logged_in(qtbot, window, cards, card)
    open_by_nhs(qtbot, window, PATIENTS["cpis"])
    slow = spine.hold("/CareTeam")
    window.record.cpis.unscheduled.click()
    qtbot.waitUntil(lambda: len(spine.made("GET", "/CareTeam")) == 1, timeout=WAIT)
    window.open_patient("9000000009")
    qtbot.waitUntil(lambda: window.record.patient is not None and window.record.patient.nhs_number == "9000000009",
                    timeout=WAIT)
    slow.set()
    qtbot.waitUntil(lambda: len(spine.made("GET", "/cpis/FHIR/R4/AuditEvent")) == 1, timeout=WAIT)
    qtbot.waitUntil(lambda: not window.net.busy, timeout=WAIT)
    assert window.record.cpis.body.toPlainText() == "" and not window.record.cpis.body.isVisible()
    assert window.messages.message == ""


@pytest.mark.parametrize(("role", "content"), [("Clinical Practitioner", True), ("Clerical", False)])
def test_reasonable_adjustment_flag_follows_the_role(qtbot, make_window, cards, card, role, content):
    window = make_window()
    logged_in(qtbot, window, cards, card, role=role)
    open_by_nhs(qtbot, window, PATIENTS["flag"])
    tab = window.record.flags
    qtbot.waitUntil(lambda: bool(tab.body.toPlainText()) or bool(window.messages.message), timeout=WAIT)
    assert window.messages.message == ""  # loaded with the record, unasked
    window.record.tabs.setCurrentWidget(tab)
    text = tab.body.toPlainText()
    assert "Reasonable adjustment flag (active)" in text and "Recorded by" in text
    if content:
        assert "Impairments" in text and "Adjustments" in text and "Consent" in text
        assert "Details withheld" not in text
    else:
        assert "Details withheld" in text
        assert "Impairments" not in text and "Adjustments" not in text
