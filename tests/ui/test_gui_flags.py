"""Reasonable adjustment flags: everyone with access sees that one exists; only clinical roles see what it says."""

from __future__ import annotations

import pytest

from tests.ui.conftest import PIN
from tests.ui.helpers import WAIT, open_by_nhs, role_index, wait_pin_dialog

pytestmark = pytest.mark.pcsc


def _patient_with_flag(store) -> str:
    from app.service.pds.seed import generate_patients

    for chunk in generate_patients(2000, seed=0):
        for row in chunk:
            if row.superseded_by is None and not row.invalidated and store.flags_for_patient(
                    row.nhs_number, statuses=("active",)):
                return row.nhs_number
    raise AssertionError("the seed has no patient with an active reasonable adjustment flag")


def _login_as(qtbot, window, slot, card, role_text):
    slot.insert(card)
    dialog = wait_pin_dialog(qtbot, window)
    dialog.pin.setText(PIN)
    dialog.ok.click()
    qtbot.waitUntil(lambda: window.flow.role_picker is not None, timeout=WAIT)
    window.flow.role_picker.choose(role_index(window, role_text))
    qtbot.waitUntil(lambda: window.session is not None, timeout=WAIT)


@pytest.mark.parametrize(("role", "content"), [("Clinical Practitioner", True), ("Clerical", False)])
def test_flag_content_follows_the_role(qtbot, make_window, slot, cards, service, role, content):
    nhs = _patient_with_flag(service.store)
    window = make_window()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    _login_as(qtbot, window, slot, cards["alex"], role)
    open_by_nhs(qtbot, window, nhs)
    tab = window.record.flags
    # loaded with the record, unasked
    qtbot.waitUntil(lambda: bool(tab.body.toPlainText()) or bool(window.messages.message), timeout=WAIT)
    assert window.messages.message == ""
    window.record.tabs.setCurrentWidget(tab)
    assert tab.body.isVisible()
    text = tab.body.toPlainText()
    assert "Reasonable adjustment flag (active)" in text and "Recorded by" in text
    if content:
        assert "Impairments" in text and "Adjustments" in text and "Consent" in text
        assert "Details withheld" not in text
    else:
        assert "Details withheld" in text
        assert "Impairments" not in text and "Adjustments" not in text
