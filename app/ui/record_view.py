"""One patient's record: the banner on top, then tabs (Demographics, SCR, child protection, adjustments)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.client.models import Role
from app.client.pds_models import Patient
from app.ui.banner import PatientBanner, address_text
from app.ui.cpis_tab import CpisTab
from app.ui.dialogs import accessible, dialog_buttons
from app.ui.flags_tab import FlagsTab
from app.ui.format import NOT_RECORDED, format_date, format_gender, format_name, format_nhs_number
from app.ui.scr_tab import ScrTab
from app.ui.signals import emit

_SELECTABLE = Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard


def _value() -> QLabel:
    label = QLabel()
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(_SELECTABLE)
    label.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    label.setWordWrap(True)
    return label


class DemographicsTab(QWidget):
    edit_requested = Signal()

    ROWS = ("Name", "Date of birth", "Gender", "NHS No.", "Usual address", "Home phone", "Work phone",
            "Mobile phone", "Email", "GP practice")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.withheld = QLabel("", self)
        self.withheld.setObjectName("withheld")
        self.withheld.setWordWrap(True)
        self.withheld.hide()
        layout.addWidget(self.withheld)
        form = QFormLayout()
        self.values: dict[str, QLabel] = {}
        for row in self.ROWS:
            value = _value()
            value.setObjectName(f"demo{row.replace(' ', '').replace('.', '')}")
            self.values[row] = value
            form.addRow(QLabel(row, self), value)
        layout.addLayout(form)
        buttons = QHBoxLayout()
        self.edit = QPushButton("&Edit address and phone numbers", self)
        accessible(self.edit, "Edit address and phone numbers")
        self.edit.clicked.connect(lambda *_: emit(self.edit_requested))
        buttons.addWidget(self.edit)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        layout.addStretch(1)

    def show_patient(self, patient: Patient, *, can_edit: bool) -> None:
        name = patient.usual_name
        texts = {
            "Name": format_name(name.family, name.given, name.prefix) if name else format_name(None),
            "Date of birth": format_date(patient.birth_date),
            "Gender": format_gender(patient.gender),
            "NHS No.": format_nhs_number(patient.nhs_number),
            "GP practice": patient.gp_ods or NOT_RECORDED,
        }
        if patient.restricted:
            withheld = "Withheld (restricted record)"
            texts.update({row: withheld for row in ("Usual address", "Home phone", "Work phone", "Mobile phone",
                                                   "Email", "GP practice")})
            self.withheld.setText("This patient's record is restricted: their address, contact details and GP "
                                  "are withheld, and cannot be shown or changed here.")
            self.withheld.show()
        else:
            self.withheld.hide()
            texts["Usual address"] = address_text(patient.home_address)
            for row, (system, use) in (("Home phone", ("phone", "home")), ("Work phone", ("phone", "work")),
                                       ("Mobile phone", ("phone", "mobile")), ("Email", ("email", None))):
                item = patient.contact(system, use)
                texts[row] = item.value if item else NOT_RECORDED
        for row, value in self.values.items():
            value.setText(texts.get(row, ""))
            accessible(value, f"{row} {texts.get(row, '')}")
        self.edit.setEnabled(can_edit and not patient.restricted)
        self.edit.setVisible(can_edit)

    def clear(self) -> None:
        for value in self.values.values():
            value.clear()
            value.setAccessibleName("")
        self.withheld.clear()
        self.withheld.hide()


class EditContactDialog(QDialog):
    """Home address and phone numbers. Saving sends only what changed, with If-Match for the version read."""

    saved = Signal(object, object)  # (lines, postcode) or None, {use: number}

    def __init__(self, parent: QWidget | None, patient: Patient) -> None:
        super().__init__(parent)
        self.setObjectName("editContact")
        self.setWindowTitle("Edit address and phone numbers")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.patient = patient
        home = patient.home_address
        lines = list(home.lines if home and not home.ended else ())
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.lines = [QLineEdit(lines[i] if i < len(lines) else "", self) for i in range(5)]
        for i, edit in enumerate(self.lines, start=1):
            accessible(edit, f"Address line {i}")
            form.addRow(QLabel(f"Address line {i}", self), edit)
        self.postcode = QLineEdit(home.postcode or "" if home and not home.ended else "", self)
        accessible(self.postcode, "Postcode")
        form.addRow(QLabel("Postcode", self), self.postcode)
        self.phones: dict[str, QLineEdit] = {}
        for use, text in (("home", "Home phone"), ("work", "Work phone"), ("mobile", "Mobile phone")):
            item = patient.contact("phone", use)
            self.phones[use] = QLineEdit(item.value if item else "", self)
            accessible(self.phones[use], text, "Leave empty to remove this number")
            form.addRow(QLabel(text, self), self.phones[use])
        layout.addLayout(form)
        self.problem = QLabel("", self)
        self.problem.setWordWrap(True)
        self.problem.hide()
        layout.addWidget(self.problem)
        self.buttons, _ = dialog_buttons(self, QDialogButtonBox.StandardButton.Save, text=None, name="Save changes",
                                         cancel_name="Cancel without saving", on_accept=self._save)
        layout.addWidget(self.buttons)
        self._original = self._values()
        self.lines[0].setFocus()

    def _values(self) -> tuple[tuple[str, ...], str, dict[str, str]]:
        return (tuple(e.text().strip() for e in self.lines), self.postcode.text().strip(),
                {use: e.text().strip() for use, e in self.phones.items()})

    def _save(self) -> None:
        lines, postcode, phones = self._values()
        old_lines, old_postcode, old_phones = self._original
        address = (lines, postcode) if (lines, postcode) != (old_lines, old_postcode) else None
        changed = {use: v for use, v in phones.items() if v != old_phones[use]}
        if address is None and not changed:
            self.reject()
            return
        self.buttons.setEnabled(False)
        emit(self.saved, address, changed)

    def show_problem(self, text: str) -> None:
        self.problem.setText(text)
        accessible(self.problem, text)
        self.problem.show()
        self.buttons.setEnabled(True)


class RecordView(QWidget):
    back = Signal()

    def __init__(self, today: Callable[[], date], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("recordView")
        self._today = today
        self.patient: Patient | None = None
        layout = QVBoxLayout(self)
        self.banner = PatientBanner(self)
        layout.addWidget(self.banner)
        self.tabs = QTabWidget(self)
        accessible(self.tabs, "Patient record sections")
        self.demographics = DemographicsTab(self.tabs)
        self.tabs.addTab(self.demographics, "&Demographics")
        self.scr = ScrTab(self.tabs)
        self.cpis = CpisTab(self.tabs)
        self.flags = FlagsTab(self.tabs)
        self.tabs.addTab(self.scr, "&Summary Care Record")
        self.tabs.addTab(self.cpis, "C&hild protection")
        self.tabs.addTab(self.flags, "&Reasonable adjustments")
        layout.addWidget(self.tabs, 1)
        self.back_button = QPushButton("&Back to search", self)
        accessible(self.back_button, "Back to patient search")
        self.back_button.clicked.connect(lambda *_: emit(self.back))
        layout.addWidget(self.back_button)
        self.setTabOrder(self.banner.toggle, self.tabs)

    def show_patient(self, patient: Patient, role: Role) -> None:
        """The record as ``role`` may see it (what it may do is the client model's to say)."""
        same = self.patient is not None and self.patient.nhs_number == patient.nhs_number
        self.patient = patient
        self.banner.show_patient(patient, self._today(), clinical=role.clinical)
        self.demographics.show_patient(patient, can_edit=role.can_edit_demographics)
        if not same:  # a reload of the same record keeps what the user already chose to view
            self.cpis.prepare(role)
            self.flags.prepare(can_write=role.can_record_flags)  # flags.create / update / remove

    def clear(self) -> None:
        self.patient = None
        self.banner.clear()
        self.demographics.clear()
        self.scr.clear()
        self.cpis.clear()
        self.flags.clear()
        self.tabs.setCurrentIndex(0)
