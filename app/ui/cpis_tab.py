"""Child protection (CP-IS): the user is told before viewing that unscheduled care notifies the local authority."""

from __future__ import annotations

import html
from datetime import datetime

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QTextBrowser, QVBoxLayout, QWidget

from app.client.cpis import CpisResult
from app.client.models import Role
from app.ui.dialogs import accessible
from app.ui.format import format_date, format_time
from app.ui.signals import emit

NOTIFY_WARNING = ("Viewing child protection information in unscheduled care (for example an emergency department, "
                  "out-of-hours or walk-in care) notifies the patient's local authority that you accessed it. "
                  "The access is also recorded on the patient's record.")


def _when(moment: datetime | None) -> str:
    """Date and 24-hour time in this computer's time zone."""
    if moment is None:
        return "Unknown"
    local = moment.astimezone() if moment.tzinfo else moment
    return f"{format_date(local)} {format_time(local)}"


def result_html(result: CpisResult) -> str:
    parts = []
    if result.note:
        parts.append(f"<p><b>Note</b> {html.escape(result.note)}</p>")
    if not result.plans:
        parts.append("<p>No child protection plan or looked-after status is recorded for this patient (current, or "
                     "ended in the last 12 months).</p>")
    for plan in result.plans:
        state = "Current" if plan.active else "Ended"
        parts.append(
            f"<h3>{plan.plan_type} ({state})</h3>"
            f"<p><b>Start date</b> {format_date(plan.start)}<br><b>End date</b> "
            f"{format_date(plan.end) if plan.end else 'Not ended'}</p>"
            f"<p><b>Responsible local authority</b> {html.escape(plan.authority)} ({html.escape(plan.authority_code)})"
            f"<br><b>Team</b> {html.escape(plan.team) or 'Not recorded'}<br>"
            f"<b>Office hours</b> {html.escape(plan.office_hours) or 'Not recorded'}<br>"
            f"<b>Out of hours</b> {html.escape(plan.out_of_hours) or 'Not recorded'}</p>")
    parts.append("<h3>Last unscheduled accesses</h3>")
    if result.accesses:
        parts.append("<ul>" + "".join(
            f"<li>{_when(a.at)} — {html.escape(a.user_name)}, {html.escape(a.role_name)}, "
            f"{html.escape(a.organisation)}</li>" for a in result.accesses) + "</ul>")
    else:
        parts.append("<p>None recorded.</p>")
    return "".join(parts)


class CpisTab(QWidget):
    view_requested = Signal(bool)  # unscheduled?

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.intro = QLabel("", self)
        self.intro.setWordWrap(True)
        self.intro.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        layout.addWidget(self.intro)
        row = QHBoxLayout()
        self.unscheduled = QPushButton("View — &unscheduled care (notifies the local authority)", self)
        accessible(self.unscheduled, "View child protection information in unscheduled care",
                   "The patient's local authority is notified of this access")
        self.scheduled = QPushButton("View — s&cheduled care (no notification)", self)
        accessible(self.scheduled, "View child protection information in scheduled care",
                   "No notification is sent")
        self.unscheduled.clicked.connect(lambda: emit(self.view_requested, True))
        self.scheduled.clicked.connect(lambda: emit(self.view_requested, False))
        row.addWidget(self.unscheduled)
        row.addWidget(self.scheduled)
        row.addStretch(1)
        layout.addLayout(row)
        self.body = QTextBrowser(self)
        accessible(self.body, "Child protection information")
        layout.addWidget(self.body, 1)
        self.clear()

    def prepare(self, role: Role) -> None:
        """Before anything is fetched: say what viewing will do for this role."""
        self.body.clear()
        self.body.hide()
        can_notify, can_schedule = role.can_view_cpis_notifying, role.can_view_cpis_scheduled
        self.unscheduled.setVisible(can_notify)
        self.scheduled.setVisible(can_schedule)
        if not (can_notify or can_schedule):
            self.intro.setText("Your role cannot view child protection (CP-IS) information.")
        elif can_notify:
            self.intro.setText(NOTIFY_WARNING + " Choose how you are seeing this patient.")
        else:
            self.intro.setText("Your role views child protection information for scheduled care: the local "
                               "authority is not notified.")

    def show_result(self, result: CpisResult) -> None:
        self.body.setHtml(result_html(result))
        self.body.show()

    def clear(self) -> None:
        self.body.clear()
        self.body.hide()
        self.intro.clear()
