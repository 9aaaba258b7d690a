"""The CUI patient banner: name, Born (age), Gender, NHS No.; deceased styling; an expandable details zone.

Order and tab order follow the CUI guidance. Every value is selectable by keyboard (so it is in the tab order and
can be copied). Labels carry no colons; missing values read "Unknown" / "Not recorded".
"""

from __future__ import annotations

import html
from datetime import date

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from app.client.pds_models import Address, Patient
from app.ui.dialogs import accessible
from app.ui.format import (
    NOT_RECORDED,
    age_text,
    format_date,
    format_gender,
    format_name,
    format_nhs_number,
)

_SELECTABLE = Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard


def banner_fields(patient: Patient, today: date) -> dict[str, str]:
    """Every text the banner shows, computed without Qt (tests check these exact strings)."""
    name = patient.usual_name
    preferred = patient.preferred_name
    fields = {
        "name": format_name(name.family, name.given, name.prefix) if name else format_name(None),
        "preferred": f"Preferred name {' '.join(preferred.given) or preferred.family}" if preferred else "",
        "born": format_date(patient.birth_date),
        "age": "",
        "died": "",
        "age_at_death": "",
        "gender": format_gender(patient.gender),
        "nhs": format_nhs_number(patient.nhs_number),
    }
    if patient.birth_date is not None:
        if patient.deceased is not None:
            fields["died"] = format_date(patient.deceased)
            fields["age_at_death"] = age_text(patient.birth_date, patient.deceased.date())
        else:
            fields["age"] = f"({age_text(patient.birth_date, today)})"
    elif patient.deceased is not None:
        fields["died"] = format_date(patient.deceased)
    return fields


def address_text(address: Address | None) -> str:
    return address.one_line if address and (address.lines or address.postcode) else NOT_RECORDED


def _value(parent: QWidget, name: str) -> QLabel:
    label = QLabel(parent)
    label.setObjectName(name)
    label.setTextFormat(Qt.TextFormat.PlainText)  # data from the service is never interpreted as markup
    label.setTextInteractionFlags(_SELECTABLE)
    label.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    return label


class PatientBanner(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("patientBanner")
        self.setFrameShape(QFrame.Shape.Box)
        self.setLineWidth(2)
        self.deceased = False
        self._address = ""
        outer = QVBoxLayout(self)
        top = QHBoxLayout()
        name_box = QVBoxLayout()
        self.name = _value(self, "bannerName")
        self.name.setWordWrap(True)  # never cut
        font = self.name.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        self.name.setFont(font)
        self.preferred = _value(self, "bannerPreferred")
        name_box.addWidget(self.name)
        name_box.addWidget(self.preferred)
        top.addLayout(name_box, 3)
        grid = QGridLayout()
        self.born_label = QLabel("Born", self)
        self.born = _value(self, "bannerBorn")
        self.died_label = QLabel("Died", self)
        self.died = _value(self, "bannerDied")
        self.age_at_death_label = QLabel("Age at death", self)
        self.age_at_death = _value(self, "bannerAgeAtDeath")
        self.gender_label = QLabel("Gender", self)
        self.gender = _value(self, "bannerGender")
        self.nhs_label = QLabel("NHS No.", self)
        self.nhs = _value(self, "bannerNhs")
        for col, (label, value) in enumerate(((self.born_label, self.born), (self.gender_label, self.gender),
                                               (self.nhs_label, self.nhs))):
            grid.addWidget(label, 0, col * 2)
            grid.addWidget(value, 0, col * 2 + 1)
        grid.addWidget(self.died_label, 1, 0)
        grid.addWidget(self.died, 1, 1)
        grid.addWidget(self.age_at_death_label, 2, 0)
        grid.addWidget(self.age_at_death, 2, 1)
        top.addLayout(grid, 4)
        self.toggle = QToolButton(self)
        self.toggle.setCheckable(True)
        self.toggle.setText("Show details")
        self.toggle.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        accessible(self.toggle, "Show patient details", "Address, contact details and allergies")
        self.toggle.toggled.connect(self._toggle)
        top.addWidget(self.toggle, 0, Qt.AlignmentFlag.AlignTop)
        outer.addLayout(top)
        self.details = QWidget(self)
        self.details.setObjectName("bannerDetails")
        details = QGridLayout(self.details)
        self.address_line = _value(self.details, "bannerAddressLine")
        self.address_label = QLabel("Usual address", self.details)
        self.address_full = _value(self.details, "bannerAddress")
        self.address_full.setWordWrap(True)
        details.addWidget(self.address_label, 0, 0)
        details.addWidget(self.address_full, 0, 1)
        self.contact_labels: dict[str, QLabel] = {}
        self.contacts: dict[str, QLabel] = {}
        for row, key in enumerate(("Home", "Work", "Mobile", "Email"), start=1):
            self.contact_labels[key] = QLabel(key, self.details)
            self.contacts[key] = _value(self.details, f"bannerContact{key}")
            details.addWidget(self.contact_labels[key], row, 0)
            details.addWidget(self.contacts[key], row, 1)
        self.allergies = _value(self.details, "bannerAllergies")
        self.allergies.setTextFormat(Qt.TextFormat.RichText)  # bold for known allergies; the text is escaped
        details.addWidget(QLabel("Allergies", self.details), 5, 0)
        details.addWidget(self.allergies, 5, 1)
        outer.addWidget(self.address_line)
        outer.addWidget(self.details)
        self.details.hide()
        self.setTabOrder(self.name, self.born)
        self.setTabOrder(self.born, self.gender)
        self.setTabOrder(self.gender, self.nhs)
        self.setTabOrder(self.nhs, self.toggle)
        self.clear()

    def _toggle(self, shown: bool) -> None:
        self.details.setVisible(shown)
        self.address_line.setVisible(not shown and bool(self._address))  # the full address is in the details
        self.toggle.setText("Hide details" if shown else "Show details")
        accessible(self.toggle, "Hide patient details" if shown else "Show patient details")

    def show_patient(self, patient: Patient, today: date, *, clinical: bool) -> None:
        fields = banner_fields(patient, today)
        self.name.setText(fields["name"])
        accessible(self.name, f"Patient name {fields['name']}")
        self.preferred.setText(fields["preferred"])
        self.preferred.setVisible(bool(fields["preferred"]))
        born = fields["born"] + (f" {fields['age']}" if fields["age"] else "")
        self.born.setText(born)
        accessible(self.born, f"Born {born}")
        self.deceased = patient.deceased is not None
        for widget in (self.died_label, self.died, self.age_at_death_label, self.age_at_death):
            widget.setVisible(self.deceased)
        self.died.setText(fields["died"])
        accessible(self.died, f"Died {fields['died']}")
        self.age_at_death.setText(fields["age_at_death"])
        accessible(self.age_at_death, f"Age at death {fields['age_at_death']}")
        self.gender.setText(fields["gender"])
        accessible(self.gender, f"Gender {fields['gender']}")
        self.nhs.setText(fields["nhs"])
        accessible(self.nhs, f"NHS number {fields['nhs']}")
        self._details(patient, clinical)
        self.address_line.setVisible(not self.toggle.isChecked())
        self.setProperty("deceased", self.deceased)
        self.style().unpolish(self)
        self.style().polish(self)
        self.setAccessibleName(f"Patient banner{' — deceased' if self.deceased else ''}")
        self.show()
        self.update()

    def _details(self, patient: Patient, clinical: bool) -> None:
        if patient.restricted:
            text = "Withheld: this patient's record is restricted"
            self._address = text
            self.address_line.setText(text)
            self.address_full.setText(text)
            for value in self.contacts.values():
                value.setText("Withheld")
        else:
            temp = patient.temporary_address
            shown = temp or patient.home_address
            self.address_label.setText("Temporary address" if temp else "Usual address")
            full = address_text(shown)
            self._address = full
            self._elide_address()
            accessible(self.address_line, f"{self.address_label.text()} {full}")
            self.address_full.setText(full)
            for key, (system, use) in {"Home": ("phone", "home"), "Work": ("phone", "work"),
                                       "Mobile": ("phone", "mobile"), "Email": ("email", None)}.items():
                item = patient.contact(system, use)
                self.contacts[key].setText(item.value if item else NOT_RECORDED)
        # allergies come from the Summary Care Record, which this version does not read yet
        self.allergies.setText("Allergies unavailable" if clinical else "Not shown for your role")

    def set_allergies(self, descriptions: list[str]) -> None:
        """From the Summary Care Record once viewed: known allergies emphasised with a warning sign (not colour)."""
        known = [d for d in descriptions if "no known" not in d.lower()]
        if known:
            text = "⚠ Known allergies: " + "; ".join(known)
            self.allergies.setText(f"<b>{html.escape(text)}</b>")
        else:
            text = "No known allergies" if descriptions else "Allergies not recorded"
            self.allergies.setText(text)
        accessible(self.allergies, text)

    def _elide_address(self) -> None:
        """One line, cut with an ellipsis to the banner's width (the full address is in the details zone)."""
        width = max(self.width() - 40, 200)
        metrics = self.address_line.fontMetrics()
        self.address_line.setText(metrics.elidedText(self._address, Qt.TextElideMode.ElideRight, width))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._address:
            self._elide_address()

    def clear(self) -> None:
        self._address = ""
        for label in (self.name, self.preferred, self.born, self.died, self.age_at_death, self.gender, self.nhs,
                      self.address_line, self.address_full, self.allergies, *self.contacts.values()):
            label.clear()
            label.setAccessibleName("")
        self.deceased = False
        self.toggle.setChecked(False)
        self.hide()

    def texts(self) -> list[str]:
        """Everything the banner currently shows (tests: nothing left after the card is pulled)."""
        return [w.text() for w in self.findChildren(QLabel) if w.text() and w.objectName().startswith("banner")]

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if self.deceased:  # a hatch as well as a colour: deceased is never shown by colour alone
            painter = QPainter(self)
            painter.fillRect(self.rect(), QBrush(QColor(0, 0, 0, 40), Qt.BrushStyle.BDiagPattern))
            painter.end()
