"""Card pulled mid-view, lock and resume, user switch, logout mode; contact edits with If-Match; log hygiene."""

from __future__ import annotations

import threading
import uuid
from datetime import date

import httpx
import pytest
from PySide6.QtCore import QCoreApplication, Qt

from app.client.pds_models import SearchQuery
from tests.ui.conftest import PIN
from tests.ui.helpers import WAIT, login, open_by_nhs, wait_pin_dialog

pytestmark = pytest.mark.pcsc


def _fill_views(qtbot, window, service):
    """Search results in the model, a record open, the cache warm: patient data everywhere."""
    window.search.family.setText("Smith")
    window.search.given.setText("Jane")
    window.search.dob.setText("22-Oct-2010")
    window.search.fuzzy.setChecked(True)
    window.search.details_button.click()
    qtbot.waitUntil(lambda: window.search.model.rowCount() > 0 or bool(window.messages.message), timeout=WAIT)
    assert window.messages.message == "" and window.search.details_message.text() == ""
    window.search.nhs.setText("9000000009")
    open_by_nhs(qtbot, window, "")
    assert window.cache and window.record.banner.texts()


def test_card_pulled_mid_view_clears_every_patient_view_and_model(qtbot, make_window, slot, cards, service):
    window = make_window(removal="logout")
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["alex"])
    login(qtbot, window, PIN, role_index=0)
    _fill_views(qtbot, window, service)
    window.edit_contact()
    assert window.edit_dialog is not None
    assert window.patient_data_present() != []
    slot.pull()
    qtbot.waitUntil(lambda: window.session is None, timeout=WAIT)
    assert window.patient_data_present() == []
    assert window.search.model.rowCount() == 0 and window.record.patient is None
    assert window.record.banner.texts() == [] and not window.record.banner.isVisible()
    assert window.cache == {} and window.pds is None and window.edit_dialog is None
    assert window.stack.currentWidget() is window.login_page
    assert window.last_clear_ms is not None and window.last_clear_ms < 500
    assert window.flow.locked is None  # logout mode: nothing kept
    assert window.card_status.text() == "Card: reader ready, no card"


def test_lock_resumes_same_card_and_role_and_other_card_gets_a_fresh_login(qtbot, make_window, slot, cards,
                                                                            service):
    window = make_window(removal="lock")
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["alex"])
    login(qtbot, window, PIN, role_index=1)
    role = window.session.role.urid
    _fill_views(qtbot, window, service)
    slot.pull()
    qtbot.waitUntil(lambda: window.session is None, timeout=WAIT)
    assert window.patient_data_present() == []
    assert window.card_status.text().startswith("Locked for Dr Alex Training")
    # the same card and PIN resume the same role without the role picker
    slot.insert(cards["alex"])
    dialog = wait_pin_dialog(qtbot, window)
    assert dialog.windowTitle() == "Unlock Spine Desk"
    login(qtbot, window, PIN, role_index=None)
    assert window.session.role.urid == role and window.flow.role_picker is None
    assert window.patient_data_present() == []  # resumed, but nothing from before the lock is shown again
    # a different card: a new login, never the previous user's context
    slot.pull()
    qtbot.waitUntil(lambda: window.session is None, timeout=WAIT)
    slot.insert(cards["blake"])
    dialog = wait_pin_dialog(qtbot, window)
    assert dialog.windowTitle() == "Log in to Spine Desk"
    assert window.flow.locked is None
    session = login(qtbot, window, PIN, role_index=None)
    assert session.login.user_name == "Dr Blake Second"
    assert window.patient_data_present() == []


def test_contact_edit_saves_with_if_match_and_a_conflict_offers_reload(qtbot, make_window, slot, cards, service):
    window = make_window()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["blake"])
    login(qtbot, window, PIN, role_index=None)
    patient = open_by_nhs(qtbot, window, "9000000017")
    number = f"0113 496 {uuid.uuid4().int % 10000:04d}"
    window.record.demographics.edit.click()
    dialog = window.edit_dialog
    dialog.phones["mobile"].setText(number)
    dialog.buttons.button(dialog.buttons.StandardButton.Save).click()
    qtbot.waitUntil(lambda: window.record.patient is not None and window.record.patient.version > patient.version,
                    timeout=WAIT)
    assert window.record.demographics.values["Mobile phone"].text() == number
    assert "saved" in window.messages.message
    # someone else changes the record meanwhile (a second session of the same user, straight over HTTP)
    seen = window.record.patient
    token = _raw_patch(service, window, seen.nhs_number, seen.version)
    assert token
    window.record.demographics.edit.click()
    dialog = window.edit_dialog
    dialog.phones["home"].setText("0113 496 0001")
    dialog.buttons.button(dialog.buttons.StandardButton.Save).click()
    qtbot.waitUntil(lambda: window.messages.action.isVisible(), timeout=WAIT)
    assert "changed this patient's record after you opened it" in window.messages.message
    assert window.messages.action.text() == "Reload record"
    window.messages.action.click()
    qtbot.waitUntil(lambda: window.record.patient is not None and window.record.patient.version == seen.version + 1,
                    timeout=WAIT)
    assert window.record.demographics.values["Home phone"].text() != "0113 496 0001"  # nothing overwritten


def _raw_patch(service, window, nhs: str, version: int) -> str:
    session = window.session
    headers = {"Authorization": f"Bearer {session.auth.token}", "NHSD-Session-URID": session.auth.urid,
               "X-Request-ID": str(uuid.uuid4()), "If-Match": f'W/"{version}"',
               "Content-Type": "application/json-patch+json"}
    body = {"patches": [{"op": "add", "path": "/telecom/-",
                         "value": {"system": "email", "value": f"{uuid.uuid4().hex[:8]}@example.com"}}]}
    r = httpx.patch(f"{service.url}/personal-demographics/FHIR/R4/Patient/{nhs}", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.headers["etag"]


def test_no_pin_or_clinical_content_reaches_the_log(qtbot, make_window, slot, cards, service, log_file):
    window = make_window()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["blake"])
    dialog = wait_pin_dialog(qtbot, window)
    qtbot.keyClicks(dialog.pin, "87654321")  # a wrong PIN, then the right one
    qtbot.keyClick(dialog.pin, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.problem.isVisible(), timeout=WAIT)
    login(qtbot, window, PIN, role_index=None)
    window.search.family.setText("Smith")
    window.search.given.setText("Jane")
    window.search.dob.setText("22-Oct-2010")
    window.search.details_button.click()
    qtbot.waitUntil(lambda: window.search.model.rowCount() > 0, timeout=WAIT)
    open_by_nhs(qtbot, window, "9000000009")
    window.search.nhs.setText("9434765919")  # a valid number that no patient has: an error path
    window.open_patient("9434765919")
    qtbot.waitUntil(lambda: "No patient has the NHS number" in window.messages.message, timeout=WAIT)
    slot.pull()
    qtbot.waitUntil(lambda: window.session is None, timeout=WAIT)
    text = log_file.read_text(encoding="utf-8")
    assert "logged in" in text and "patient data cleared" in text  # the log is written at all
    for secret in (PIN, "87654321", "9000000009", "900 000 0009", "9434765919", "Smith", "SMITH", "Jane",
                   "2010-10-22", "22-Oct-2010", "Trevelyan", "LS1 6AE"):
        assert secret not in text, f"{secret!r} reached the log"


def test_lock_and_logout_from_the_session_menu(qtbot, make_window, slot, cards, service):
    window = make_window(removal="lock")
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["blake"])
    login(qtbot, window, PIN, role_index=None)
    open_by_nhs(qtbot, window, "9000000009")
    assert window.lock_action.isEnabled() and window.lock_action.shortcut().toString() == "Ctrl+Shift+L"
    window.lock_action.trigger()  # the card stays in: the PIN dialog comes straight back to unlock
    assert window.session is None and window.patient_data_present() == []
    dialog = wait_pin_dialog(qtbot, window)
    assert dialog.windowTitle() == "Unlock Spine Desk"
    login(qtbot, window, PIN, role_index=None)
    window.logout_action.trigger()
    assert window.session is None and window.flow.locked is None and window.patient_data_present() == []
    assert window.card_status.text() == "Card: card inserted"
    assert window.login_page.login_button.isEnabled()  # the card is still in: log in again on request


def test_a_session_the_service_revoked_ends_in_the_client(qtbot, make_window, slot, cards, service):
    window = make_window()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["blake"])
    session = login(qtbot, window, PIN, role_index=None)
    open_by_nhs(qtbot, window, "9000000009")
    httpx.delete(f"{service.url}/auth/session", headers={"Authorization": f"Bearer {session.auth.token}",
                                                          "X-Request-ID": str(uuid.uuid4())}).raise_for_status()
    window.open_patient("9000000017")
    qtbot.waitUntil(lambda: window.session is None, timeout=WAIT)
    assert "did not accept your login" in window.messages.message
    assert window.patient_data_present() == []


def _held_back(monkeypatch, pds, method: str, first_argument) -> threading.Event:
    """``pds.<method>`` answers for ``first_argument`` only once the returned event is set (a slow answer)."""
    release = threading.Event()
    real = getattr(pds, method)

    def slow(argument):
        if argument == first_argument:
            release.wait(30)
        return real(argument)

    monkeypatch.setattr(pds, method, slow)
    return release


def _deliver_late_answers(window) -> None:
    window.net.wait(30_000)  # the held answer is computed …
    QCoreApplication.processEvents()  # … and arrives through the event loop


def test_a_slower_earlier_patient_never_replaces_the_one_opened_last(qtbot, make_window, slot, cards, monkeypatch):
    window = make_window()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["alex"])
    login(qtbot, window, PIN, role_index=0)
    release = _held_back(monkeypatch, window.pds, "read", "9000000009")
    window.open_patient("9000000009")  # asked for first, answered last
    window.open_patient("9000000017")
    qtbot.waitUntil(lambda: window.record.patient is not None and window.record.patient.nhs_number == "9000000017",
                    timeout=WAIT)
    release.set()
    _deliver_late_answers(window)
    assert window.record.patient.nhs_number == "9000000017"


def test_a_slower_earlier_search_never_replaces_the_latest_results(qtbot, make_window, slot, cards, monkeypatch):
    window = make_window()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["alex"])
    login(qtbot, window, PIN, role_index=0)
    first = SearchQuery(family="Smith", given="Jane", birth_date=date(2010, 10, 22), fuzzy=True)
    latest = SearchQuery(family="Nosuchname", birth_date=date(1970, 3, 7))
    release = _held_back(monkeypatch, window.pds, "search", first)
    window.search_patients(first)  # asked for first, answered last
    window.search_patients(latest)
    qtbot.waitUntil(lambda: window.search.results_label.text() == "No patients found", timeout=WAIT)
    release.set()
    _deliver_late_answers(window)
    assert window.search.results_label.text() == "No patients found"
    assert window.search.model.rowCount() == 0
