"""Reasonable adjustments: that a flag exists, for everyone with access; what it says, for clinical roles."""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QTextBrowser, QVBoxLayout, QWidget

from app.client.flags import RaFlag
from app.ui.dialogs import accessible
from app.ui.format import format_date
from app.ui.signals import emit


def flags_html(flags: Sequence[RaFlag]) -> str:
    if not flags:
        return "<p>No reasonable adjustment flag is recorded for this patient.</p>"
    parts = []
    for flag in flags:
        e = html.escape
        parts.append(f"<h3>Reasonable adjustment flag ({e(flag.status)})</h3>"
                     f"<p><b>Since</b> {format_date(flag.since)}<br><b>Recorded by</b> {e(flag.recorded_by)}, "
                     f"{e(flag.organisation)}</p>")
        if flag.withheld:
            parts.append("<p><b>Details withheld</b> This patient has reasonable adjustment needs. Your role can see "
                         "that the flag exists but not its details: ask a clinical colleague.</p>")
            continue
        parts.append("<h4>Impairments</h4><ul>" + "".join(
            f"<li>{e(name)}{f' — {e(note)}' if note else ''}</li>" for name, note in flag.impairments) + "</ul>"
                     if flag.impairments else "<p><b>Impairments</b> Not recorded</p>")
        parts.append("<h4>Adjustments</h4><ul>" + "".join(
            f"<li><b>{e(a.category)}</b> {e(a.text)}{f' — {e(a.note)}' if a.note else ''}</li>"
            for a in flag.adjustments) + "</ul>" if flag.adjustments else "<p><b>Adjustments</b> Not recorded</p>")
        parts.append(f"<p><b>Consent</b> {e(flag.consent) or 'Not recorded'}</p>")
        if flag.notes:
            parts.append(f"<p><b>Notes</b> {e(flag.notes)}</p>")
    return "".join(parts)


class FlagsTab(QWidget):
    """Shows the flags; for roles allowed to record them (B0360), Record / Change / Remove."""

    load_requested = Signal()
    create_requested = Signal()
    edit_requested = Signal(str)  # flag id
    remove_requested = Signal(str)  # flag id

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.intro = QLabel("Reasonable adjustment flags: what this patient needs to use services on an equal "
                            "footing.", self)
        self.intro.setWordWrap(True)
        layout.addWidget(self.intro)
        self.load = QPushButton("Refresh reasonable ad&justments", self)
        accessible(self.load, "Refresh reasonable adjustments")
        self.load.clicked.connect(lambda *_: emit(self.load_requested))
        layout.addWidget(self.load)
        self.body = QTextBrowser(self)
        accessible(self.body, "Reasonable adjustments")
        layout.addWidget(self.body, 1)
        buttons = QHBoxLayout()
        self.record_flag = QPushButton("Record a reasonable adjustment &flag…", self)
        accessible(self.record_flag, "Record a reasonable adjustment flag")
        self.record_flag.clicked.connect(lambda *_: emit(self.create_requested))
        self.edit = QPushButton("Chan&ge the flag…", self)
        accessible(self.edit, "Change the reasonable adjustment flag")
        self.edit.clicked.connect(lambda *_: emit(self.edit_requested, self._active_id))
        self.remove = QPushButton("Remo&ve the flag…", self)
        accessible(self.remove, "Remove the reasonable adjustment flag, with a reason")
        self.remove.clicked.connect(lambda *_: emit(self.remove_requested, self._active_id))
        for button in (self.record_flag, self.edit, self.remove):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.can_write = False
        self._active_id: str = ""
        self.clear()

    def prepare(self, can_write: bool) -> None:
        """A new record: whether this role may record, change and remove flags (shown once the flags load)."""
        self.can_write = can_write
        self._buttons(loaded=False)

    def show_flags(self, flags: Sequence[RaFlag]) -> None:
        self.body.setHtml(flags_html(flags))
        self.body.show()
        active = next((f for f in flags if f.active and not f.withheld), None)
        self._active_id = active.flag_id if active is not None else ""
        self._buttons(loaded=True)

    def _buttons(self, *, loaded: bool) -> None:
        writable = loaded and self.can_write
        self.record_flag.setVisible(writable and not self._active_id)
        self.edit.setVisible(writable and bool(self._active_id))
        self.remove.setVisible(writable and bool(self._active_id))

    def clear(self) -> None:
        self.body.clear()
        self.body.hide()
        self._active_id = ""
        self._buttons(loaded=False)
