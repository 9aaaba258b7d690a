"""Screenshots of the main screens from the real window under Xvfb (training mode, real service and card).

Saved to docs/screenshots/ when SPINEDESK_SCREENSHOTS is set (``SPINEDESK_SCREENSHOTS=1 CI=1 pytest
tests/gui_e2e/test_screenshots.py``); otherwise to a temporary folder, so the run still proves each screen renders.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.ui.fixtures import PIN, failing_gate
from tests.support.ui.helpers import WAIT, living_adult, open_by_nhs, role_index, type_pin, wait_pin_dialog

pytestmark = pytest.mark.pcsc
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def shots(tmp_path) -> Path:
    target = SHOTS if os.environ.get("SPINEDESK_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    return target


def _save(widget, path: Path) -> None:
    assert widget.grab().save(str(path))
    assert path.stat().st_size > 5_000


def test_main_screens(qtbot, make_window, slot, cards, shots):
    window = make_window()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    _save(window, shots / "client-login.png")
    slot.insert(cards["alex"])
    dialog = wait_pin_dialog(qtbot, window)
    qtbot.keyClicks(dialog.pin, "1234")
    _save(dialog, shots / "client-pin.png")  # a dialog of its own (window.grab() would not show it)
    dialog.pin.clear()
    type_pin(qtbot, dialog, PIN)
    qtbot.waitUntil(lambda: window.flow.role_picker is not None, timeout=WAIT)
    _save(window.flow.role_picker, shots / "client-role-picker.png")
    window.flow.role_picker.choose(role_index(window, "Clinical Practitioner"))
    qtbot.waitUntil(lambda: window.session is not None, timeout=WAIT)
    window.search.family.setText("Smith")
    window.search.given.setText("Jane")
    window.search.dob.setText("22-Oct-2010")
    window.search.fuzzy.setChecked(True)
    window.search.details_button.click()
    qtbot.waitUntil(lambda: window.search.model.rowCount() > 0, timeout=WAIT)
    _save(window, shots / "client-search.png")
    open_by_nhs(qtbot, window, living_adult().nhs_number)
    _save(window, shots / "client-record-training.png")
    window.record.banner.toggle.click()
    _save(window, shots / "client-record-details.png")
    window.record.clear()
    open_by_nhs(qtbot, window, "9000000009")
    _save(window, shots / "client-record-deceased.png")


def test_non_compliant_report(qtbot, make_window, shots):
    window = make_window(gate=failing_gate)
    qtbot.waitUntil(lambda: window.wes_report is not None, timeout=WAIT)
    window.wes_view.resize(800, 560)
    _save(window.wes_view, shots / "client-wes-not-compliant.png")
    window.wes_view.close()


def test_clinical_tabs(qtbot, make_window, slot, cards, service, shots):
    from tests.gui_e2e.test_gui_cpis import _patient_with_open_plan
    from tests.gui_e2e.test_gui_scr import _open, _patient_with_scr

    window = make_window()
    tab = _open(qtbot, window, slot, cards, _patient_with_scr(service.store, 3))
    _save(window, shots / "client-scr-permission.png")
    tab.yes.click()
    qtbot.waitUntil(lambda: tab.body.isVisible(), timeout=WAIT)
    window.record.banner.toggle.click()
    _save(window, shots / "client-scr-record.png")
    open_by_nhs(qtbot, window, _patient_with_open_plan(service.store))
    cpis = window.record.cpis
    window.record.tabs.setCurrentWidget(cpis)
    _save(window, shots / "client-cpis-before-viewing.png")
    cpis.unscheduled.click()
    qtbot.waitUntil(lambda: cpis.body.isVisible(), timeout=WAIT)
    _save(window, shots / "client-cpis.png")


def test_starting_window_and_flag_editor(qtbot, make_window, slot, cards, service, shots):
    import threading

    from app.ui.main_window import MainWindow
    from app.ui.ports import ClientDeps
    from tests.gui_e2e.test_gui_flag_edit import _dialog, _login_clinical, _open_flags, _patients
    from tests.support.ui.fixtures import compliant_gate

    release = threading.Event()

    def held(on_step):
        on_step("Starting the training service…")
        release.wait(60)
        raise RuntimeError("the screenshot is taken")

    starting = MainWindow(ClientDeps(spine=None, cards=None, wes_gate=compliant_gate, training=True,
                                     training_pin="123456", startup=held))
    qtbot.addWidget(starting)
    starting.resize(1100, 760)
    starting.show()
    starting.start()
    qtbot.waitUntil(lambda: starting.progress_page.step.text() == "Starting the training service…", timeout=WAIT)
    _save(starting, shots / "client-starting.png")
    release.set()
    qtbot.waitUntil(lambda: starting.startup_error is not None, timeout=WAIT)
    starting.shutdown()
    window = make_window()
    _login_clinical(qtbot, window, slot, cards["alex"])
    tab = _open_flags(qtbot, window, _patients(service.store, flagged=True, skip=5))
    tab.edit.click()
    _save(_dialog(qtbot, window), shots / "client-flag-editor.png")


def test_card_self_service_screens(qtbot, make_window, slot, cards, shots):
    window = make_window()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["alex"])
    login_dialog = wait_pin_dialog(qtbot, window)
    login_dialog.reject()
    qtbot.waitUntil(lambda: window.change_pin_action.isEnabled(), timeout=WAIT)
    window.change_pin_action.trigger()
    qtbot.waitUntil(lambda: window.self_service.dialog is not None and window.self_service.dialog.isVisible(),
                    timeout=WAIT)
    dialog = window.self_service.dialog
    qtbot.keyClicks(dialog.old, PIN)
    qtbot.keyClicks(dialog.new, "123456")
    _save(dialog, shots / "client-change-pin.png")
    dialog.reject()
    qtbot.waitUntil(lambda: window.self_service.dialog is None, timeout=WAIT)
    window.unblock_action.trigger()
    qtbot.waitUntil(lambda: window.self_service.dialog is not None and window.self_service.dialog.isVisible(),
                    timeout=WAIT)
    _save(window.self_service.dialog, shots / "client-unblock.png")
    window.self_service.dialog.reject()
