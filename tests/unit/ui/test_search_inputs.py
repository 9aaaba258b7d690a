"""The NHS number field (grouping and checking as you type) and the details form's checks, on the real widgets."""

from __future__ import annotations

from datetime import date

import pytest

from app.client.pds_models import SearchQuery
from app.ui.search_view import SearchView, parse_date_input


@pytest.fixture
def view(qtbot):
    widget = SearchView(lambda: date(2026, 3, 1))
    qtbot.addWidget(widget)
    return widget


def test_nhs_number_is_grouped_3_3_4_and_checked_as_you_type(qtbot, view):
    qtbot.keyClicks(view.nhs, "943476")
    assert view.nhs.text() == "943 476" and not view.nhs_button.isEnabled() and view.nhs_message.text() == ""
    qtbot.keyClicks(view.nhs, "5919")
    assert view.nhs.text() == "943 476 5919" and view.nhs_button.isEnabled()
    assert view.nhs_message.text() == "Valid NHS number."
    view.nhs.clear()
    qtbot.keyClicks(view.nhs, "943 476 5918")  # typed with spaces, wrong check digit
    assert view.nhs.text() == "943 476 5918" and not view.nhs_button.isEnabled()
    assert "check digit is wrong" in view.nhs_message.text()
    assert "check digit is wrong" in view.nhs.accessibleDescription()
    view.nhs.clear()
    qtbot.keyClicks(view.nhs, "943-476")
    assert "only digits" in view.nhs_message.text()


def test_enter_on_a_valid_number_searches(qtbot, view):
    asked = []
    view.search_nhs.connect(asked.append)
    qtbot.keyClicks(view.nhs, "9000000009")
    with qtbot.waitSignal(view.search_nhs, timeout=5000):
        view.nhs.returnPressed.emit()  # the widget's own Qt signal, as pressing Enter does
    assert asked == ["9000000009"]


def test_details_form_checks_pds_minimums(qtbot, view):
    assert "date of birth" in view.query()
    view.family.setText("Smith")
    view.dob.setText("31-Feb-1970")
    assert "not a date" in view.query()
    view.dob.setText("07-Mar-1970")
    assert view.query() == SearchQuery(family="Smith", birth_date=date(1970, 3, 7))
    view.fuzzy.setChecked(True)
    assert "fuzzy search needs" in view.query()
    view.given.setText("Jane")
    assert isinstance(view.query(), SearchQuery)


@pytest.mark.parametrize(("text", "expected"), [
    ("07-Mar-1970", date(1970, 3, 7)), ("7/3/1970", date(1970, 3, 7)), ("1970-03-07", date(1970, 3, 7)),
    ("07 mar 1970", date(1970, 3, 7)), ("", None), ("1970", None), ("32-Jan-1970", None), ("07-Foo-1970", None),
])
def test_parse_date_input(text, expected):
    assert parse_date_input(text) == expected
