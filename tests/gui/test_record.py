"""Finding a patient and the record's banner: NHS number (checked as typed), search by details, restricted records."""

from __future__ import annotations

from datetime import date

import pytest
from PySide6.QtCore import Qt

from tests.gui.conftest import BLAKE, PATIENTS
from tests.gui.helpers import logged_in
from tests.ui.helpers import WAIT, open_by_nhs

pytestmark = pytest.mark.gui_fast


def test_an_invalid_nhs_number_is_explained_and_never_sent(qtbot, make_window, cards, card, spine):
    window = make_window()
    logged_in(qtbot, window, cards, card)
    sent = len(spine.requests)
    qtbot.keyClicks(window.search.nhs, "9000000000")  # the check digit is wrong
    qtbot.keyClick(window.search.nhs, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.search.nhs_message.text() != "", timeout=WAIT)
    assert "NHS number" in window.search.nhs_message.text()
    assert not window.search.nhs_button.isEnabled()
    assert window.stack.currentWidget() is window.search and window.record.patient is None
    assert len(spine.requests) == sent


def test_the_record_opens_with_its_banner(qtbot, make_window, cards, card):
    window = make_window()
    logged_in(qtbot, window, cards, card)
    patient = open_by_nhs(qtbot, window, "900 000 0009")  # NHS's full-record example: a deceased child
    assert patient.nhs_number == "9000000009"
    assert window.stack.currentWidget() is window.record
    banner = window.record.banner
    assert banner.name.text() == "SMITH, Jane (Mrs)"
    assert banner.born.text() == "22-Oct-2010"
    assert banner.died.text() == "22-Oct-2010" and banner.died.isVisible()
    assert banner.gender.text() == "Female" and banner.nhs.text() == "900 000 0009"
    assert banner.deceased


def test_search_by_details_lists_without_a_banner_then_opens_one(qtbot, make_window, cards, card):
    window = make_window()
    logged_in(qtbot, window, cards, card, name=BLAKE, role=None)
    window.search.family.setText(PATIENTS["adult_family"])
    window.search.dob.setText(date.fromisoformat(PATIENTS["adult_birth_date"]).strftime("%d-%b-%Y"))
    window.search.details_button.click()
    qtbot.waitUntil(lambda: window.search.model.rowCount() > 0, timeout=WAIT)
    assert not window.record.banner.isVisible() and window.stack.currentWidget() is window.search
    found = [p.nhs_number for p in window.search.model.patients]
    row = found.index(PATIENTS["adult"])
    window.search._open_row(window.search.model.index(row, 0))
    qtbot.waitUntil(lambda: window.record.patient is not None, timeout=WAIT)
    assert window.record.banner.name.text().startswith(PATIENTS["adult_family"].upper() + ", ")
    assert window.record.banner.born.text().endswith("y)") and not window.record.banner.died.isVisible()


def test_a_restricted_record_withholds_contact_details(qtbot, make_window, cards, card):
    window = make_window()
    logged_in(qtbot, window, cards, card, name=BLAKE, role=None)
    open_by_nhs(qtbot, window, "9000000025")
    demo = window.record.demographics
    assert demo.withheld.isVisible() and "restricted" in demo.withheld.text()
    assert demo.values["Usual address"].text() == "Withheld (restricted record)"
    assert not demo.edit.isEnabled()
    assert window.record.banner.address_full.text() == "Withheld: this patient's record is restricted"


def test_a_dead_service_is_explained_in_plain_words(qtbot, make_window, cards, card, spine):
    window = make_window()
    logged_in(qtbot, window, cards, card)
    spine.dead = True
    open_by_nhs_typed(qtbot, window, "9000000009")
    qtbot.waitUntil(lambda: window.messages.message != "", timeout=WAIT)
    text = window.messages.message
    assert text == (f"The Spine service at {spine.base_url} cannot be reached (connection refused or no route). "
                    "Check the network cable or Wi-Fi, then try again; if it keeps happening, tell your IT service "
                    "desk.")
    assert window.record.patient is None
    assert window.session is not None  # the session stays: the service is what went away


def open_by_nhs_typed(qtbot, window, typed: str) -> None:
    qtbot.keyClicks(window.search.nhs, typed)
    qtbot.keyClick(window.search.nhs, Qt.Key.Key_Return)
