"""Patient search: by NHS number (checked as you type, shown 3-3-4) or by demographics. Results carry no banner."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.client.pds_models import Patient, SearchQuery, SearchResults
from app.nhs_number import NhsInput, check_input
from app.pds_rules import meets_minimum
from app.ui.dialogs import accessible
from app.ui.format import age_text, format_date, format_gender, format_name, format_nhs_number
from app.ui.signals import emit

_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                       "dec"), start=1)}


def parse_date_input(text: str) -> date | None:
    """``07-Mar-1970``, ``07/03/1970``, ``7-3-1970`` (day first, as in the UK) or ``1970-03-07``; else None."""
    text = text.strip()
    if not text:
        return None
    match = re.fullmatch(r"(\d{1,2})[-/ .]([A-Za-z]{3}|\d{1,2})[-/ .](\d{4})", text)
    try:
        if match:
            day, month, year = match.groups()
            month_no = _MONTHS.get(month.lower()) if month.isalpha() else int(month)
            return date(int(year), month_no, int(day)) if month_no else None
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text)
    except ValueError:
        return None
    return None


class NhsNumberEdit(QLineEdit):
    """Accepts digits with or without spaces; reformats to 3-3-4 as you type; says what is wrong, as you type."""

    verdict_changed = Signal(object)  # NhsCheck

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMaxLength(16)
        self.setPlaceholderText("e.g. 943 476 5919")
        self.textEdited.connect(self._edited)
        self.textChanged.connect(lambda text: emit(self.verdict_changed, check_input(text)))

    def _edited(self, text: str) -> None:
        check = check_input(text)
        if check.state in (NhsInput.INCOMPLETE, NhsInput.VALID, NhsInput.CHECK_DIGIT):
            digits = check.digits
            grouped = " ".join(p for p in (digits[:3], digits[3:6], digits[6:]) if p)
            if grouped != text:
                self.setText(grouped)

    @property
    def check(self):  # type: ignore[no-untyped-def]
        return check_input(self.text())


class ResultsModel(QAbstractTableModel):
    HEADERS = ("Name", "Born", "Gender", "NHS No.", "Postcode")

    def __init__(self, today: Callable[[], date], parent: Any = None) -> None:
        super().__init__(parent)
        self._today = today
        self.patients: list[Patient] = []

    def set_results(self, patients: list[Patient]) -> None:
        self.beginResetModel()
        self.patients = list(patients)
        self.endResetModel()

    def clear(self) -> None:
        self.set_results([])

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.patients)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None

    def cell(self, row: int, column: int) -> str:
        patient = self.patients[row]
        if column == 0:
            name = patient.usual_name
            return format_name(name.family, name.given, name.prefix) if name else format_name(None)
        if column == 1:
            born = format_date(patient.birth_date)
            if patient.birth_date and patient.deceased:
                return f"{born} (died {format_date(patient.deceased)})"
            if patient.birth_date:
                return f"{born} ({age_text(patient.birth_date, self._today())})"
            return born
        if column == 2:
            return format_gender(patient.gender)
        if column == 3:
            return format_nhs_number(patient.nhs_number)
        home = patient.home_address
        if patient.restricted:
            return "Withheld"
        return (home.postcode or "Not recorded") if home else "Not recorded"

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return self.cell(index.row(), index.column())
        return None


class SearchView(QWidget):
    search_nhs = Signal(str)
    search_details = Signal(object)  # SearchQuery
    open_patient = Signal(str)

    def __init__(self, today: Callable[[], date], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("searchView")
        layout = QVBoxLayout(self)
        by_number = QGroupBox("Find by NHS number", self)
        row = QHBoxLayout(by_number)
        label = QLabel("NHS &number", by_number)
        self.nhs = NhsNumberEdit(by_number)
        label.setBuddy(self.nhs)
        accessible(self.nhs, "NHS number", "10 digits; spaces are optional; checked as you type")
        self.nhs_message = QLabel("", by_number)
        self.nhs_message.setObjectName("nhsMessage")
        self.nhs_message.setWordWrap(True)
        self.nhs_button = QPushButton("Find patient", by_number)
        accessible(self.nhs_button, "Find patient by NHS number")
        self.nhs_button.setEnabled(False)
        row.addWidget(label)
        row.addWidget(self.nhs, 1)
        row.addWidget(self.nhs_button)
        outer_number = QVBoxLayout()
        outer_number.addWidget(by_number)
        outer_number.addWidget(self.nhs_message)
        layout.addLayout(outer_number)
        self.nhs.verdict_changed.connect(self._nhs_verdict)
        self.nhs.returnPressed.connect(self._find_nhs)
        self.nhs_button.clicked.connect(self._find_nhs)

        by_details = QGroupBox("Find by details", self)
        form = QFormLayout(by_details)
        self.family = QLineEdit(by_details)
        self.given = QLineEdit(by_details)
        self.dob = QLineEdit(by_details)
        self.dob.setPlaceholderText("DD-Mmm-YYYY, e.g. 07-Mar-1970")
        self.gender = QComboBox(by_details)
        for text, value in (("Any", ""), ("Female", "female"), ("Male", "male"), ("Other", "other"),
                            ("Unknown", "unknown")):
            self.gender.addItem(text, value)
        self.postcode = QLineEdit(by_details)
        self.fuzzy = QCheckBox("Similar spellings (fuzzy search)", by_details)
        for widget, name, text in ((self.family, "Family name", "&Family name"),
                                   (self.given, "Given name", "&Given name"),
                                   (self.dob, "Date of birth", "&Date of birth"),
                                   (self.gender, "Gender", "G&ender"),
                                   (self.postcode, "Postcode", "&Postcode")):
            accessible(widget, name)
            lbl = QLabel(text, by_details)
            lbl.setBuddy(widget)
            form.addRow(lbl, widget)
        accessible(self.fuzzy, "Fuzzy search", "Also find similar spellings of the names")
        form.addRow(self.fuzzy)
        self.details_message = QLabel("", by_details)
        self.details_message.setObjectName("detailsMessage")
        self.details_message.setWordWrap(True)
        form.addRow(self.details_message)
        self.details_button = QPushButton("Search", by_details)
        accessible(self.details_button, "Search by details")
        form.addRow(self.details_button)
        self.details_button.clicked.connect(self._find_details)
        for edit in (self.family, self.given, self.dob, self.postcode):
            edit.returnPressed.connect(self._find_details)
        layout.addWidget(by_details)

        self.results_label = QLabel("Results", self)
        layout.addWidget(self.results_label)
        self.model = ResultsModel(today, self)
        self.table = QTableView(self)
        self.table.setObjectName("results")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.table.setTabKeyNavigation(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        accessible(self.table, "Search results", "Press Enter to open the selected patient's record")
        self.table.activated.connect(self._open_row)
        layout.addWidget(self.table, 1)

    def _nhs_verdict(self, check) -> None:  # type: ignore[no-untyped-def]
        self.nhs_button.setEnabled(check.valid)
        shown = check.state not in (NhsInput.EMPTY, NhsInput.INCOMPLETE) or len(check.digits) >= 10
        self.nhs_message.setText(check.message if shown else "")
        accessible(self.nhs, "NHS number", check.message or "10 digits; spaces are optional; checked as you type")

    def _find_nhs(self) -> None:
        check = self.nhs.check
        if not check.valid:
            self.nhs_message.setText(check.message or "Type the patient's 10-digit NHS number.")
            return
        emit(self.search_nhs, check.digits)

    def query(self) -> SearchQuery | str:
        """The search typed in, or what is wrong with it."""
        dob_text = self.dob.text().strip()
        dob = parse_date_input(dob_text)
        if dob_text and dob is None:
            return "The date of birth is not a date: type it as DD-Mmm-YYYY, for example 07-Mar-1970."
        query = SearchQuery(family=self.family.text(), given=self.given.text(), birth_date=dob,
                            gender=self.gender.currentData() or "", postcode=self.postcode.text(),
                            fuzzy=self.fuzzy.isChecked())
        family, given, postcode = query.family.strip(), query.given.strip(), query.postcode.strip()
        if dob is None:
            return "Give the date of birth: PDS searches always need it."
        if meets_minimum(fuzzy=query.fuzzy, family=bool(family), given=bool(given), gender=bool(query.gender),
                         postcode=bool(postcode)):
            return query
        if not query.fuzzy:
            return "Give the family name and date of birth."
        return ("A fuzzy search needs the given and family names (or one name with gender and postcode) as well as "
                "the date of birth.")

    def _find_details(self) -> None:
        query = self.query()
        if isinstance(query, str):
            self.details_message.setText(query)
            return
        self.details_message.clear()
        emit(self.search_details, query)

    def show_results(self, results: SearchResults) -> None:
        self.model.set_results([m.patient for m in results.matches])
        if results.too_many:
            text = "Too many patients match. Add more details (date of birth, postcode) to narrow the search."
        else:
            count = len(results.matches)
            text = f"{count} patient{'s' if count != 1 else ''} found" if count else "No patients found"
        self.results_label.setText(text)
        accessible(self.results_label, text)
        if results.matches:
            self.table.selectRow(0)
            self.table.setFocus()

    def _open_row(self, index: QModelIndex) -> None:
        if index.isValid():
            emit(self.open_patient, self.model.patients[index.row()].nhs_number)

    def clear(self) -> None:
        for edit in (self.nhs, self.family, self.given, self.dob, self.postcode):
            edit.clear()
        self.gender.setCurrentIndex(0)
        self.fuzzy.setChecked(False)
        self.nhs_message.clear()
        self.details_message.clear()
        self.results_label.setText("Results")
        self.model.clear()
