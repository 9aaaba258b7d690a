"""The real window, the real service on loopback and a training card in pcscd's virtual reader."""

from __future__ import annotations

import uuid

import httpx
import pytest

from app.protocol import PDS_BASE
from tests.support.ui.fixtures import PIN, failing_gate
from tests.support.ui.helpers import WAIT, living_adult, login, open_by_nhs, type_pin, wait_pin_dialog

pytestmark = pytest.mark.pcsc


def test_wrong_pin_then_role_pick_then_search_and_banner(qtbot, make_window, slot, cards, service):
    window = make_window()
    assert window.training_banner.isVisible() and "TRAINING" in window.training_banner.text()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["alex"])
    dialog = wait_pin_dialog(qtbot, window)
    assert dialog.pin.echoMode() == dialog.pin.EchoMode.Password
    type_pin(qtbot, dialog, "11112222")
    qtbot.waitUntil(lambda: dialog.problem.isVisible(), timeout=WAIT)
    assert "2 tries left" in dialog.problem.text()
    assert dialog.pin.text() == ""
    type_pin(qtbot, dialog, PIN)
    qtbot.waitUntil(lambda: window.flow.role_picker is not None, timeout=WAIT)
    labels = [window.flow.role_picker.list.item(i).text() for i in range(window.flow.role_picker.list.count())]
    assert any("Clinical Practitioner Access Role — Spine Desk Training Practice (A81001)" in t for t in labels)
    assert any("Clerical Access Role" in t for t in labels)
    clinical = next(i for i, t in enumerate(labels) if "Clinical" in t)
    window.flow.role_picker.choose(clinical)
    qtbot.waitUntil(lambda: window.session is not None, timeout=WAIT)
    assert window.card_status.text() == ("Logged in as Dr Alex Training, Clinical Practitioner Access Role "
                                         "(Spine Desk Training Practice)")
    # the picked role is bound to the session at the service: the same token cannot act in alex's other role
    roles = window.session.login.roles
    clerical = next(r.urid for r in roles if r.urid != window.session.role.urid)
    other = httpx.get(f"{service.url}{PDS_BASE}/Patient/9000000009", headers={
        "Authorization": f"Bearer {window.session.auth.token}", "NHSD-Session-URID": clerical,
        "X-Request-ID": str(uuid.uuid4())})
    assert other.status_code == 403 and "log in again" in other.text
    patient = open_by_nhs(qtbot, window, "900 000 0009")  # NHS's full-record example: a deceased child
    assert patient.nhs_number == "9000000009"
    banner = window.record.banner
    assert banner.name.text() == "SMITH, Jane (Mrs)"
    assert banner.born.text() == "22-Oct-2010"
    assert banner.died.text() == "22-Oct-2010" and banner.died.isVisible()
    assert banner.age_at_death_label.text() == "Age at death" and banner.age_at_death.text() == "0d"
    assert banner.gender.text() == "Female"
    assert banner.nhs.text() == "900 000 0009"
    assert banner.deceased and banner.property("deceased") is True


def test_search_by_details_has_no_banner_and_opens_living_patient(qtbot, make_window, slot, cards, service):
    window = make_window()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["blake"])  # one role: chosen automatically
    login(qtbot, window, PIN, role_index=None)
    assert window.flow.role_picker is None
    # a living adult from the seeded data, searched for by family name and date of birth
    row = living_adult()
    name = row.resource["name"][0]
    window.search.family.setText(name["family"])
    window.search.dob.setText(row.birth_date.strftime("%d-%b-%Y"))
    window.search.details_button.click()
    qtbot.waitUntil(lambda: window.search.model.rowCount() > 0, timeout=WAIT)
    assert not window.record.banner.isVisible()  # a list of patients never shows a banner
    assert window.stack.currentWidget() is window.search
    nhs = [p.nhs_number for p in window.search.model.patients]
    assert row.nhs_number in nhs
    window.search.table.selectRow(nhs.index(row.nhs_number))
    window.search._open_row(window.search.model.index(nhs.index(row.nhs_number), 0))
    qtbot.waitUntil(lambda: window.record.patient is not None, timeout=WAIT)
    banner = window.record.banner
    assert banner.name.text().startswith(name["family"].upper() + ", ")
    assert banner.born.text().startswith(row.birth_date.strftime("%d-%b-%Y") + " (")
    assert banner.born.text().endswith("y)")
    assert not banner.died.isVisible()


def test_restricted_patient_details_withheld(qtbot, make_window, slot, cards):
    window = make_window()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["blake"])
    login(qtbot, window, PIN, role_index=None)
    open_by_nhs(qtbot, window, "9000000025")
    demo = window.record.demographics
    assert demo.withheld.isVisible() and "restricted" in demo.withheld.text()
    assert demo.values["Usual address"].text() == "Withheld (restricted record)"
    assert not demo.edit.isEnabled()
    assert window.record.banner.address_full.text() == "Withheld: this patient's record is restricted"


def test_blocked_card_is_explained(qtbot, make_window, slot, cards):
    window = make_window()
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=WAIT)
    slot.insert(cards["blake"])
    dialog = wait_pin_dialog(qtbot, window)
    for expected in ("2 tries left", "1 try left"):
        type_pin(qtbot, dialog, "99990000")
        qtbot.waitUntil(lambda expected=expected: expected in dialog.problem.text(), timeout=WAIT)
    type_pin(qtbot, dialog, "99990000")
    qtbot.waitUntil(lambda: window.messages.message != "", timeout=WAIT)
    assert "locked after too many wrong PINs" in window.messages.message
    assert "registration authority" in window.messages.message
    assert window.flow.pin_dialog is None and window.session is None


def test_non_compliant_workstation_keeps_clinical_views_closed(qtbot, make_window, slot, cards, tmp_path):
    window = make_window(gate=failing_gate)
    qtbot.waitUntil(lambda: window.wes_report is not None, timeout=WAIT)
    assert not window.clinical_enabled
    view = window.wes_view
    assert "Not compliant" in view.verdict.text()
    text = view.body.toPlainText()
    assert "WES-AV-02" in text and "Start the anti-malware service" in text
    view.export_html(tmp_path / "wes.html")
    assert "WES-AV-02" in (tmp_path / "wes.html").read_text()
    view.export_pdf(tmp_path / "wes.pdf")
    assert (tmp_path / "wes.pdf").read_bytes().startswith(b"%PDF")
    slot.insert(cards["blake"])
    qtbot.waitUntil(lambda: "card inserted" in window.card_status.text(), timeout=WAIT)
    assert window.flow.pin_dialog is None and window.session is None
    assert "disabled" in window.card_status.text()
    view.close()
