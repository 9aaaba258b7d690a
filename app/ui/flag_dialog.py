"""Recording a reasonable adjustment flag: the editor (impairment groups, adjustments, consent) and the removal dialog.

Both check what the user entered (``app.client.flag_edit.draft_problems``) before anything is sent and show the
problems in words inside the dialog; the service's own refusals land there too. Everything is reachable by keyboard
(mnemonics, tab order top to bottom) and every control has an accessible name.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.client.flag_edit import AdjustmentEntry, FlagDraft, ImpairmentEntry, draft_problems
from app.flag_rules import ATTORNEY_OR_DEPUTY, BESPOKE, BEST_INTEREST, PATIENT_CONSENT, FlagCodes
from app.ui.dialogs import accessible, dialog_buttons
from app.ui.signals import emit

CONSENTS = ((PATIENT_CONSENT, "The &patient consented"),
            (BEST_INTEREST, "&Best-interest decision (Mental Capacity Act 2005)"),
            (ATTORNEY_OR_DEPUTY, "Lasting power of &attorney or court-appointed deputy"))


def _problem_label(parent: QWidget) -> QLabel:
    label = QLabel("", parent)
    label.setObjectName("dialogProblem")
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    label.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    label.hide()
    return label


def adjustment_text(entry: AdjustmentEntry, codes: FlagCodes) -> str:
    what = codes.adjustment.codes.get(entry.code, "") if entry.code else ""
    parts = [codes.adjustment_category.codes.get(entry.category, entry.category), what or entry.text]
    if what and entry.text:
        parts.append(entry.text)
    if entry.note:
        parts.append(f"note: {entry.note}")
    return " — ".join(p for p in parts if p)


class FlagEditDialog(QDialog):
    """Create or change a flag. ``saved(FlagDraft)`` fires only for a draft with no problems."""

    saved = Signal(object)

    def __init__(self, parent: QWidget | None, codes: FlagCodes, *, patient_name: str,
                 draft: FlagDraft | None = None) -> None:
        super().__init__(parent)
        self.codes = codes
        changing = draft is not None
        self.setObjectName("flagEditor")
        self.setWindowTitle(("Change" if changing else "Record") + " a reasonable adjustment flag")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.resize(900, 700)
        outer = QVBoxLayout(self)
        heading = QLabel(f"Reasonable adjustment flag for {patient_name}", self)
        heading.setTextFormat(Qt.TextFormat.PlainText)
        heading.setWordWrap(True)
        outer.addWidget(heading)
        self.problem = _problem_label(self)
        outer.addWidget(self.problem)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        body = QWidget(scroll)
        layout = QVBoxLayout(body)
        layout.addWidget(self._impairment_box(body))
        layout.addWidget(self._adjustment_box(body))
        layout.addWidget(self._consent_box(body))
        notes_label = QLabel("&Notes for colleagues (optional)", body)
        self.notes = QLineEdit(body)
        notes_label.setBuddy(self.notes)
        accessible(self.notes, "Notes for colleagues", "Optional notes about this flag")
        layout.addWidget(notes_label)
        layout.addWidget(self.notes)
        scroll.setWidget(body)
        outer.addWidget(scroll, 1)
        self.buttons, self.save_button = dialog_buttons(
            self, QDialogButtonBox.StandardButton.Save, text="&Save flag", name="Save the reasonable adjustment flag",
            cancel_name="Cancel without saving", on_accept=self.submit)
        outer.addWidget(self.buttons)
        if draft is not None:
            self.set_draft(draft)
        self._consent_changed()

    # --- sections -----------------------------------------------------------------------------------------

    def _impairment_box(self, parent: QWidget) -> QGroupBox:
        box = QGroupBox("Impairment groups", parent)
        accessible(box, "Impairment groups")
        grid = QGridLayout(box)
        self.impairments: dict[str, tuple[QCheckBox, QLineEdit]] = {}
        for row, (code, name) in enumerate(self.codes.impairment.codes.items()):
            short, _, example = name.partition(" (for example ")  # the examples wrap beside the box
            check = QCheckBox(short, box)
            accessible(check, f"Impairment: {name}")
            if example:
                examples = QLabel(f"for example {example[:-1] if example.endswith(')') else example}", box)
                examples.setWordWrap(True)
                grid.addWidget(examples, row, 1)
            note = QLineEdit(box)
            note.setPlaceholderText("Describe" if code == "10" else "Note (optional)")
            accessible(note, f"Note for {name}", "Required for 'Other (please specify)'" if code == "10" else "")
            note.setEnabled(False)
            check.toggled.connect(note.setEnabled)
            grid.addWidget(check, row, 0)
            grid.addWidget(note, row, 2)
            self.impairments[code] = (check, note)
        grid.setColumnStretch(1, 2)
        grid.setColumnStretch(2, 1)
        return box

    def _adjustment_box(self, parent: QWidget) -> QGroupBox:
        box = QGroupBox("Adjustments", parent)
        accessible(box, "Adjustments")
        layout = QVBoxLayout(box)
        self.adjustment_list = QListWidget(box)
        accessible(self.adjustment_list, "Adjustments recorded", "Delete removes the selected adjustment")
        self.adjustment_list.setMinimumHeight(90)
        layout.addWidget(self.adjustment_list)
        form = QGridLayout()
        category_label = QLabel("Categor&y", box)
        self.category = QComboBox(box)
        for code, name in self.codes.adjustment_category.codes.items():
            self.category.addItem(name, code)
        category_label.setBuddy(self.category)
        accessible(self.category, "Adjustment category")
        what_label = QLabel("Ad&justment", box)
        self.what = QComboBox(box)
        self.what.setEditable(True)
        self.what.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.what.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.what.setMinimumContentsLength(30)  # the longest adjustment would otherwise widen the dialog
        self.what.addItem("", "")
        for code, name in sorted(self.codes.adjustment.codes.items(), key=lambda kv: kv[1].lower()):
            self.what.addItem(name, code)
        completer = self.what.completer()
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        what_label.setBuddy(self.what)
        accessible(self.what, "Adjustment", "Type to filter the list of adjustments")
        accessible(self.what.lineEdit(), "Adjustment", "Type to filter the list of adjustments")
        text_label = QLabel("&Describe (bespoke adjustments)", box)
        self.what_text = QLineEdit(box)
        text_label.setBuddy(self.what_text)
        accessible(self.what_text, "Describe the adjustment", "For a bespoke adjustment not in the list")
        note_label = QLabel("No&te (optional)", box)
        self.what_note = QLineEdit(box)
        note_label.setBuddy(self.what_note)
        accessible(self.what_note, "Note for this adjustment")
        for row, (label, widget) in enumerate(((category_label, self.category), (what_label, self.what),
                                               (text_label, self.what_text), (note_label, self.what_note))):
            form.addWidget(label, row, 0)
            form.addWidget(widget, row, 1)
        form.setColumnStretch(1, 1)
        layout.addLayout(form)
        buttons = QHBoxLayout()
        self.add_adjustment = QPushButton("A&dd adjustment", box)
        accessible(self.add_adjustment, "Add this adjustment")
        self.add_adjustment.clicked.connect(self._add_adjustment)
        self.remove_adjustment = QPushButton("Remove selected adjust&ment", box)
        accessible(self.remove_adjustment, "Remove the selected adjustment")
        self.remove_adjustment.clicked.connect(self._remove_adjustment)
        buttons.addWidget(self.add_adjustment)
        buttons.addWidget(self.remove_adjustment)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        return box

    def _consent_box(self, parent: QWidget) -> QGroupBox:
        box = QGroupBox("Consent to record the flag", parent)
        accessible(box, "Consent to record the flag")
        layout = QVBoxLayout(box)
        self.consent_group = QButtonGroup(box)
        self.consents: dict[str, QRadioButton] = {}
        for code, text in CONSENTS:
            radio = QRadioButton(text, box)
            accessible(radio, text.replace("&", ""))
            self.consent_group.addButton(radio)
            radio.toggled.connect(self._consent_changed)
            layout.addWidget(radio)
            self.consents[code] = radio
        summary_label = QLabel("How the best-interest decision was &reached", box)
        self.summary = QLineEdit(box)
        summary_label.setBuddy(self.summary)
        accessible(self.summary, "How the best-interest decision was reached", "Required for a best-interest decision")
        by_label = QLabel("Name of the attorney or dep&uty", box)
        self.consent_by = QLineEdit(box)
        by_label.setBuddy(self.consent_by)
        accessible(self.consent_by, "Name of the attorney or deputy", "Required when an attorney or deputy consented")
        for widget in (summary_label, self.summary, by_label, self.consent_by):
            layout.addWidget(widget)
        return box

    # --- behaviour ----------------------------------------------------------------------------------------

    def _consent_changed(self, *_: object) -> None:
        self.summary.setEnabled(self.consents[BEST_INTEREST].isChecked())
        self.consent_by.setEnabled(self.consents[ATTORNEY_OR_DEPUTY].isChecked())

    def _entry_item(self, entry: AdjustmentEntry) -> None:
        item = QListWidgetItem(adjustment_text(entry, self.codes))
        item.setData(Qt.ItemDataRole.UserRole, entry)
        self.adjustment_list.addItem(item)

    def _add_adjustment(self) -> None:
        category = str(self.category.currentData() or "")
        index = self.what.findText(self.what.currentText().strip(), Qt.MatchFlag.MatchFixedString)
        code = str(self.what.itemData(index) or "") if index >= 0 else ""
        text = self.what_text.text().strip()
        if not code and not (category == BESPOKE and text):
            self.show_problem("Choose the adjustment from the list (or, for a bespoke adjustment, describe it).")
            self.what.setFocus()
            return
        self._entry_item(AdjustmentEntry(category, code, text, self.what_note.text().strip()))
        self.what.setCurrentIndex(0)
        self.what_text.clear()
        self.what_note.clear()
        self.problem.hide()

    def _remove_adjustment(self) -> None:
        row = self.adjustment_list.currentRow()
        if row >= 0:
            self.adjustment_list.takeItem(row)

    def keyPressEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        if event.key() == Qt.Key.Key_Delete and self.adjustment_list.hasFocus():
            self._remove_adjustment()
            return
        super().keyPressEvent(event)

    def set_draft(self, draft: FlagDraft) -> None:
        for code, (check, note) in self.impairments.items():
            entry = next((i for i in draft.impairments if i.code == code), None)
            check.setChecked(entry is not None)
            note.setText(entry.note if entry else "")
        self.adjustment_list.clear()
        for entry in draft.adjustments:
            self._entry_item(entry)
        if draft.consent in self.consents:
            self.consents[draft.consent].setChecked(True)
        self.summary.setText(draft.consent_summary)
        self.consent_by.setText(draft.consent_by)
        self.notes.setText(draft.notes)

    def draft(self) -> FlagDraft:
        consent = next((code for code, radio in self.consents.items() if radio.isChecked()), "")
        impairments = tuple(ImpairmentEntry(code, note.text().strip())
                            for code, (check, note) in self.impairments.items() if check.isChecked())
        adjustments = tuple(self.adjustment_list.item(i).data(Qt.ItemDataRole.UserRole)
                            for i in range(self.adjustment_list.count()))
        return FlagDraft(consent=consent, consent_summary=self.summary.text().strip() if consent == BEST_INTEREST
                         else "", consent_by=self.consent_by.text().strip() if consent == ATTORNEY_OR_DEPUTY else "",
                         impairments=impairments, adjustments=adjustments, notes=self.notes.text().strip())

    def submit(self) -> None:
        draft = self.draft()
        problems = draft_problems(draft, self.codes)
        if problems:
            self.show_problem("\n".join(problems))
            return
        self.problem.hide()
        self.save_button.setEnabled(False)  # until the service answers
        emit(self.saved, draft)

    def show_problem(self, text: str) -> None:
        self.save_button.setEnabled(True)
        self.problem.setText(text)
        accessible(self.problem, f"Problem: {text}")
        self.problem.show()
        self.problem.setFocus()


class RemoveFlagDialog(QDialog):
    """Remove a flag with a reason (kept as history). ``confirmed(reason, comment)``."""

    confirmed = Signal(str, str)

    def __init__(self, parent: QWidget | None, codes: FlagCodes) -> None:
        super().__init__(parent)
        self.setObjectName("removeFlag")
        self.setWindowTitle("Remove the reasonable adjustment flag")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        layout = QVBoxLayout(self)
        intro = QLabel("The flag is kept in the record's history with your reason. Why is it being removed?", self)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.problem = _problem_label(self)
        layout.addWidget(self.problem)
        self.reasons: dict[str, QRadioButton] = {}
        for code, text in (("DoesntApply", "It no longer &applies to the patient"),
                           ("Error", "It was recorded in &error")):
            radio = QRadioButton(text, self)
            accessible(radio, text.replace("&", ""), codes.removal_reason.codes.get(code, ""))
            layout.addWidget(radio)
            self.reasons[code] = radio
        label = QLabel("&Comment (required)", self)
        self.comment = QLineEdit(self)
        label.setBuddy(self.comment)
        accessible(self.comment, "Comment on the removal", "Required")
        layout.addWidget(label)
        layout.addWidget(self.comment)
        self.buttons, self.ok = dialog_buttons(self, QDialogButtonBox.StandardButton.Ok, text="&Remove flag",
                                               name="Remove the flag", cancel_name="Cancel: keep the flag",
                                               on_accept=self.submit)
        layout.addWidget(self.buttons)

    def submit(self) -> None:
        reason = next((code for code, radio in self.reasons.items() if radio.isChecked()), "")
        comment = self.comment.text().strip()
        problems = [text for ok, text in ((reason, "Choose why the flag is being removed."),
                                          (comment, "Add a comment saying why.")) if not ok]
        if problems:
            self.show_problem(" ".join(problems))
            return
        self.ok.setEnabled(False)
        emit(self.confirmed, reason, comment)

    def show_problem(self, text: str) -> None:
        self.ok.setEnabled(True)
        self.problem.setText(text)
        accessible(self.problem, f"Problem: {text}")
        self.problem.show()
        self.problem.setFocus()
