"""The Summary Care Record: permission to view asked per episode, emergency access with a reason (which alerts the
privacy officer), opted-out patients explained; allergies and medications laid out for scanning."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.client.models import Role
from app.client.scr import (
    CONSENT_PREFERENCES,
    LEGAL_REASONS,
    ScrIndex,
    ScrRecord,
)
from app.ui.dialogs import accessible
from app.ui.format import format_date
from app.ui.signals import emit

OPTED_OUT = ("This patient has opted out of having a Summary Care Record shown (consent preference 'No'), so "
             "nothing is shown. Use other sources, such as the patient, their GP practice or their own records.")
_MED_TITLES = (("repeat", "Current repeat medications"), ("acute", "Acute medications (last 12 months)"),
               ("discontinued", "Discontinued repeat medications (last 6 months)"))


def record_html(record: ScrRecord, basis: str) -> str:
    e = html.escape
    parts = [f"<p><b>Viewed</b> {e(basis)}. Summary from {e(record.author) or 'the GP practice'}"
             f"{', ' + format_date(record.created) if record.created else ''}.</p>", "<h3>Allergies and adverse "
             "reactions</h3>"]
    if record.allergies:
        parts.append("<table border='1' cellpadding='4'><tr><th>Date</th><th>Description</th><th>Reaction</th>"
                     "<th>Severity</th></tr>" + "".join(
                         f"<tr><td>{format_date(a.recorded)}</td><td><b>{e(a.description)}</b></td>"
                         f"<td>{e(a.reaction) or 'Not recorded'}</td><td>{e(a.severity) or 'Not recorded'}</td></tr>"
                         for a in record.allergies) + "</table>")
    else:
        parts.append("<p>Allergies not recorded.</p>")
    for kind, title in _MED_TITLES:
        meds = [m for m in record.medications if m.kind == kind]
        parts.append(f"<h3>{title}</h3>")
        if meds:
            parts.append("<table border='1' cellpadding='4'><tr><th>Date</th><th>Medication</th><th>Dosage</th>"
                         "<th>Quantity</th></tr>" + "".join(
                             f"<tr><td>{format_date(m.when)}</td><td><b>{e(m.product)}</b></td><td>{e(m.dose)}</td>"
                             f"<td>{e(m.quantity)}</td></tr>" for m in meds) + "</table>")
        else:
            parts.append("<p>None recorded.</p>")
    if record.additional:
        parts.append("<h3>Additional information</h3><ul>" + "".join(
            f"<li>{e(kind)}: {e(text)} ({format_date(when)})</li>" for kind, text, when in record.additional)
            + "</ul>")
    return "".join(parts)


class ScrTab(QWidget):
    check_requested = Signal()
    permission = Signal(bool)  # the patient's answer
    emergency = Signal(str)  # the reason
    legal = Signal(int, str)  # the legal basis (SCR-AlertReason 1-3) and the reason
    consent_preference = Signal(str)  # Yes / No / Ask

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.intro = QLabel("", self)
        self.intro.setWordWrap(True)
        self.intro.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.intro.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByKeyboard)
        layout.addWidget(self.intro)
        self.check = QPushButton("Find the &Summary Care Record", self)
        accessible(self.check, "Find the patient's Summary Care Record")
        self.check.clicked.connect(lambda *_: emit(self.check_requested))
        layout.addWidget(self.check, 0, Qt.AlignmentFlag.AlignLeft)
        self.ask = QWidget(self)
        ask = QVBoxLayout(self.ask)
        ask.setContentsMargins(0, 0, 0, 0)
        self.question = QLabel("Ask the patient: \"May I look at your Summary Care Record?\"", self.ask)
        self.question.setWordWrap(True)
        ask.addWidget(self.question)
        answers = QHBoxLayout()
        self.yes = QPushButton("Patient gives &permission", self.ask)
        self.no = QPushButton("Patient &refuses", self.ask)
        accessible(self.yes, "Record that the patient gives permission to view, and view")
        accessible(self.no, "Record that the patient refuses permission to view")
        self.yes.clicked.connect(lambda: emit(self.permission, True))
        self.no.clicked.connect(lambda: emit(self.permission, False))
        answers.addWidget(self.yes)
        answers.addWidget(self.no)
        answers.addStretch(1)
        ask.addLayout(answers)
        self.emergency_box = QWidget(self.ask)
        em = QHBoxLayout(self.emergency_box)
        em.setContentsMargins(0, 0, 0, 0)
        label = QLabel("Emergency &access reason", self.emergency_box)
        self.reason = QLineEdit(self.emergency_box)
        self.reason.setPlaceholderText("Why the patient cannot be asked and the record is needed now")
        label.setBuddy(self.reason)
        accessible(self.reason, "Emergency access reason", "Required; your privacy officer will see it")
        self.emergency_button = QPushButton("View in an &emergency (alerts the privacy officer)", self.emergency_box)
        accessible(self.emergency_button, "View in an emergency without permission; alerts the privacy officer")
        self.emergency_button.clicked.connect(self._emergency)
        em.addWidget(label)
        em.addWidget(self.reason, 1)
        em.addWidget(self.emergency_button)
        ask.addWidget(self.emergency_box)
        self.problem = QLabel("", self.ask)
        self.problem.setWordWrap(True)
        ask.addWidget(self.problem)
        layout.addWidget(self.ask)
        self.legal_box = self._legal_box()
        layout.addWidget(self.legal_box)
        self.consent_box = self._consent_box()
        layout.addWidget(self.consent_box)
        self.can_legal = self.can_consent = False
        self.body = QTextBrowser(self)
        self.body.setOpenLinks(False)
        accessible(self.body, "Summary Care Record")
        layout.addWidget(self.body, 1)
        self.clear()

    def _legal_box(self) -> QWidget:
        box = QWidget(self)
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        intro = QLabel("Legal override: only where the law requires or allows access without the patient's "
                       "permission. Your privacy officer is alerted and sees your reason.", box)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        row = QHBoxLayout()
        basis_label = QLabel("Legal &basis", box)
        self.legal_basis = QComboBox(box)
        self.legal_basis.addItem("Choose…", 0)
        for code, text in LEGAL_REASONS.items():
            self.legal_basis.addItem(text, code)
        basis_label.setBuddy(self.legal_basis)
        accessible(self.legal_basis, "Legal basis for the override")
        reason_label = QLabel("Override reaso&n", box)
        self.legal_reason = QLineEdit(box)
        reason_label.setBuddy(self.legal_reason)
        accessible(self.legal_reason, "Legal override reason", "Required; your privacy officer will see it")
        self.legal_button = QPushButton("View under a &legal override (alerts the privacy officer)", box)
        accessible(self.legal_button, "View under a legal override; alerts the privacy officer")
        self.legal_button.clicked.connect(self._legal)
        for widget, stretch in ((basis_label, 0), (self.legal_basis, 0), (reason_label, 0), (self.legal_reason, 1)):
            row.addWidget(widget, stretch)
        layout.addLayout(row)
        layout.addWidget(self.legal_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.legal_problem = QLabel("", box)
        self.legal_problem.setWordWrap(True)
        layout.addWidget(self.legal_problem)
        return box

    def _consent_box(self) -> QWidget:
        box = QWidget(self)
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        label = QLabel("Patient's consent &preference for their Summary Care Record", box)
        label.setWordWrap(True)
        self.preference = QComboBox(box)
        for code, text in CONSENT_PREFERENCES.items():
            self.preference.addItem(text, code)
        label.setBuddy(self.preference)
        accessible(self.preference, "Patient's consent preference for their Summary Care Record",
                   "What the patient has told you; recorded on the Spine for every viewer")
        self.preference_button = QPushButton("Record the patient's c&hoice", box)
        accessible(self.preference_button, "Record the patient's consent preference")
        self.preference_button.clicked.connect(
            lambda *_: emit(self.consent_preference, str(self.preference.currentData())))
        row.addWidget(label, 1)
        row.addWidget(self.preference)
        row.addWidget(self.preference_button)
        return box

    def _legal(self) -> None:
        basis, reason = int(self.legal_basis.currentData() or 0), self.legal_reason.text().strip()
        if not basis or len(reason) < 5:
            self.legal_problem.setText("Choose the legal basis and give the reason for the override (for example "
                                       "the statute or the court order).")
            (self.legal_basis if not basis else self.legal_reason).setFocus()
            return
        self.legal_problem.clear()
        emit(self.legal, basis, reason)

    def _emergency(self) -> None:
        reason = self.reason.text().strip()
        if len(reason) < 5:
            self.problem.setText("Give the reason for emergency access: why the patient cannot be asked and why the "
                                 "record is needed now.")
            self.reason.setFocus()
            return
        self.problem.clear()
        emit(self.emergency, reason)

    def prepare(self, role: Role, *, registered_here: bool, org: str) -> None:
        self.clear()
        self.can_legal = role.can_override_scr_legally
        self.can_consent = role.can_record_consent
        if not role.can_view_scr:
            self.intro.setText("Your role cannot view Summary Care Records.")
            self.check.hide()
            return
        self.intro.setText("The Summary Care Record is shown only with the patient's permission, asked in each "
                           "episode of care." + ("" if registered_here else
                                                 f" The patient is not registered at your organisation ({org}): "
                                                 "viewing the record or recording their consent preference "
                                                 "self-claims a legitimate relationship, and your privacy officer "
                                                 "is alerted."))
        self.emergency_box.setVisible(role.can_open_scr_in_emergency)

    def show_index(self, index: ScrIndex) -> None:
        self.check.hide()
        self.consent_box.setVisible(self.can_consent and (index.scr_id is not None or index.consent == "No"))
        found = self.preference.findData("Ask" if index.consent not in CONSENT_PREFERENCES else index.consent)
        self.preference.setCurrentIndex(max(found, 0))
        if index.refused or index.consent == "No":  # opted out: nothing is asked or shown, and the user hears why
            self.intro.setText(index.refused or OPTED_OUT)
            return
        if index.scr_id is None:
            self.intro.setText("This patient has no Summary Care Record.")
            return
        self.ask.show()
        self.legal_box.setVisible(self.can_legal)
        self.yes.setFocus()

    def show_refused(self) -> None:
        self.ask.hide()
        self.legal_box.setVisible(self.can_legal)  # a refusal is set aside only by a legal override
        self.intro.setText("The patient refused permission to view their Summary Care Record in this episode of "
                           "care, so it is not shown." + (" Only a legal override can set that aside."
                                                          if self.can_legal else ""))

    def show_record(self, record: ScrRecord, basis: str) -> None:
        self.ask.hide()
        self.legal_box.hide()
        self.body.setHtml(record_html(record, basis))
        self.body.show()

    def clear(self) -> None:
        self.intro.clear()
        self.check.show()
        self.ask.hide()
        self.legal_box.hide()
        self.consent_box.hide()
        self.reason.clear()
        self.problem.clear()
        self.legal_reason.clear()
        self.legal_basis.setCurrentIndex(0)
        self.legal_problem.clear()
        self.body.clear()
        self.body.hide()
