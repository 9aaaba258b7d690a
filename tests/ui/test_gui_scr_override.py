"""The SCR tab's legal override (B0082) after a refusal, and recording the patient's consent preference (B0020),
in the real window against the real service (docs/decisions/scr.md)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from tests.ui.conftest import PIN
from tests.ui.helpers import WAIT, open_by_nhs, role_index, wait_pin_dialog
from tests.ui.test_gui_scr import ORG, _alerts, _patient_with_scr

pytestmark = pytest.mark.pcsc


@pytest.fixture
def legal_card(ui_ca, service, tmp_path):
    """Dr Lee Legal: one Clinical Practitioner role that also holds B0082 (no default role does)."""
    from app.card.virtual import issue_card
    from app.cli import training
    from app.service.core.rbac import load_role_table
    from app.service.runtime import ROLE_TABLE
    from app.service.store import RoleProfile

    path = tmp_path / "lee.json"
    card, _ = issue_card(ui_ca, name="Dr Lee Legal", algorithm="p256", pin=PIN, puk="12345678", days=365)
    card.save(path)
    code = "S8000:G8000:R8000"
    if service.store.get_role_profile("lee-legal") is None:
        activities = (*load_role_table(ROLE_TABLE).default_activities(code), "B0082")
        service.store.add_user("lee", "Dr Lee Legal", card_uuids=[str(card.card_uuid)])
        service.store.add_role_profile(RoleProfile("lee-legal", "lee", ORG, training.TRAINING_ORG[1], code,
                                                   "Clinical Practitioner Access Role", activities))
    else:
        service.store.add_credentials("lee", card_uuids=[str(card.card_uuid)])
    return path


def _login(qtbot, window, slot, card, role_text=None):
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(card)
    dialog = wait_pin_dialog(qtbot, window)
    dialog.pin.setText(PIN)
    dialog.ok.click()
    qtbot.waitUntil(lambda: window.flow.role_picker is not None or window.session is not None, timeout=WAIT)
    if window.flow.role_picker is not None:
        window.flow.role_picker.choose(role_index(window, role_text))
    qtbot.waitUntil(lambda: window.session is not None, timeout=WAIT)


def _find(qtbot, window, nhs):
    open_by_nhs(qtbot, window, nhs)
    tab = window.record.scr
    window.record.tabs.setCurrentWidget(tab)
    tab.check.click()
    qtbot.waitUntil(lambda: tab.ask.isVisible() or bool(window.messages.message), timeout=WAIT)
    assert window.messages.message == ""
    return tab


def test_a_refusal_is_set_aside_only_by_a_legal_override_with_a_reason(qtbot, make_window, slot, legal_card,
                                                                       service):
    nhs = _patient_with_scr(service.store, 6)
    before = len(_alerts(service.store))
    window = make_window()
    _login(qtbot, window, slot, legal_card)
    tab = _find(qtbot, window, nhs)
    assert tab.legal_box.isVisible()
    tab.no.click()
    qtbot.waitUntil(lambda: "refused" in tab.intro.text(), timeout=WAIT)
    assert "Only a legal override" in tab.intro.text() and tab.legal_box.isVisible() and not tab.body.isVisible()
    tab.legal_button.click()  # no basis, no reason: named, nothing sent
    assert "legal basis" in tab.legal_problem.text() and len(_alerts(service.store)) == before
    tab.legal_basis.setFocus()
    tab.legal_basis.setCurrentIndex(tab.legal_basis.findData(3))
    tab.legal_reason.setFocus()
    qtbot.keyClicks(tab.legal_reason, "Court order 2026/123 (family court)")
    qtbot.keyClick(tab.legal_button, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: tab.body.isVisible() or bool(window.messages.message), timeout=WAIT)
    assert window.messages.message == ""
    assert "legal override (required by a court order)" in tab.body.toPlainText()
    assert "privacy officer has been alerted" in tab.body.toPlainText()
    alert = _alerts(service.store)[0]
    assert (alert.nhs_number, alert.alert_subtype, alert.reason) == (nhs, 3, "Court order 2026/123 (family court)")
    assert alert.alert_type == 1  # registered elsewhere: the override also self-claims the relationship


def test_record_the_patients_consent_preference(qtbot, make_window, slot, cards, service):
    nhs = _patient_with_scr(service.store, 7)  # registered at another practice than the role's
    before = len(_alerts(service.store))
    window = make_window()
    _login(qtbot, window, slot, cards["alex"], "Clinical Practitioner")
    tab = _find(qtbot, window, nhs)
    assert not tab.legal_box.isVisible()  # no B0082 in this role
    assert tab.consent_box.isVisible()  # B0020
    tab.preference.setFocus()
    tab.preference.setCurrentIndex(tab.preference.findData("No"))
    qtbot.keyClick(tab.preference_button, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: "opted out" in tab.intro.text(), timeout=WAIT)
    assert service.store.scr_record(nhs).consent == "No"
    # not the patient's practice: recording it self-claimed a relationship, and the privacy officer was alerted
    claim = _alerts(service.store)[0]
    assert len(_alerts(service.store)) == before + 1 and (claim.nhs_number, claim.alert_type) == (nhs, 1)
    assert not tab.ask.isVisible() and not tab.body.isVisible()
    assert "consent preference is recorded" in window.messages.message
    assert tab.consent_box.isVisible() and tab.preference.currentData() == "No"
    # the patient changes their mind: back to being asked each time
    tab.preference.setCurrentIndex(tab.preference.findData("Ask"))
    tab.preference_button.click()
    qtbot.waitUntil(lambda: tab.ask.isVisible(), timeout=WAIT)
    assert service.store.scr_record(nhs).consent == "Ask"


def test_roles_without_b0020_cannot_record_a_preference(qtbot, make_window, slot, cards, service):
    nhs = _patient_with_scr(service.store, 8)
    window = make_window()
    _login(qtbot, window, slot, cards["blake"])  # R8001 nurse: B0370, no B0020, no B0082
    tab = _find(qtbot, window, nhs)
    assert tab.ask.isVisible() and not tab.consent_box.isVisible() and not tab.legal_box.isVisible()
