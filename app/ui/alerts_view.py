"""The privacy officer's queue: SCR privacy alerts raised at their organisation, acknowledged one by one."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.client.scr import PrivacyAlert
from app.ui.dialogs import accessible, buddy, heading, row_table
from app.ui.format import format_date, format_nhs_number, format_time
from app.ui.signals import emit

HEADERS = ("Raised", "Alert", "Reason given", "Patient NHS No.", "User", "Role", "State")


class AlertsView(QWidget):
    refresh_requested = Signal(str)  # status filter
    acknowledge_requested = Signal(str, str)  # alert id, note

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("alertsView")
        self.alerts: list[PrivacyAlert] = []
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Privacy alerts for your organisation", self, 1.3))
        top = QHBoxLayout()
        self.status = QComboBox(self)
        for text, value in (("Open alerts", "open"), ("Acknowledged", "acknowledged"), ("All", "all")):
            self.status.addItem(text, value)
        label = buddy("&Show", self.status, "Which alerts to show")
        self.refresh = QPushButton("&Refresh", self)
        accessible(self.refresh, "Refresh the alert queue")
        self.refresh.clicked.connect(lambda: emit(self.refresh_requested, self.status.currentData()))
        self.status.currentIndexChanged.connect(lambda _i: emit(self.refresh_requested, self.status.currentData()))
        top.addWidget(label)
        top.addWidget(self.status)
        top.addWidget(self.refresh)
        top.addStretch(1)
        layout.addLayout(top)
        self.count = QLabel("", self)
        layout.addWidget(self.count)
        self.table = QTableWidget(0, len(HEADERS), self)
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        row_table(self.table, "Privacy alerts", "Select an alert, then acknowledge it")
        layout.addWidget(self.table, 1)
        bottom = QHBoxLayout()
        self.note = QLineEdit(self)
        note_label = buddy("&Note", self.note, "Acknowledgement note", "Optional: what you checked")
        self.ack = QPushButton("&Acknowledge selected alert", self)
        accessible(self.ack, "Acknowledge the selected alert")
        self.ack.clicked.connect(self._acknowledge)
        bottom.addWidget(note_label)
        bottom.addWidget(self.note, 1)
        bottom.addWidget(self.ack)
        layout.addLayout(bottom)

    def show_alerts(self, alerts: Sequence[PrivacyAlert]) -> None:
        self.alerts = list(alerts)
        self.table.setRowCount(len(self.alerts))
        for row, a in enumerate(self.alerts):
            local = a.at.astimezone() if a.at is not None and a.at.tzinfo else a.at
            cells = (f"{format_date(local)} {format_time(local) if local else ''}", f"{a.kind}: {a.reason_code}",
                     a.reason or "None given", format_nhs_number(a.nhs_number), a.user_name, a.role_name,
                     "Acknowledged" if a.acknowledged else "Open")
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.AccessibleTextRole, f"{HEADERS[col]} {text}")
                self.table.setItem(row, col, item)
        self.count.setText(f"{len(self.alerts)} alert{'s' if len(self.alerts) != 1 else ''}")
        if self.alerts:
            self.table.selectRow(0)

    def _acknowledge(self) -> None:
        row = self.table.currentRow()
        if 0 <= row < len(self.alerts):
            emit(self.acknowledge_requested, self.alerts[row].id, self.note.text().strip())
            self.note.clear()

    def clear(self) -> None:
        self.alerts = []
        self.table.setRowCount(0)
        self.count.clear()
        self.note.clear()
