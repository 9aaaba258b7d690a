"""The WES gate at start (visible progress) and the WES report (failures with their remediation; export, print).

The report object comes from ``wes.run_checks`` through the injected gate; this module only reads its documented
attributes (``compliant``, ``results``, ``failures``; each result's ``id``, ``title``, ``status``,
``severity``, ``evidence``, ``remediation``, ``link``), so tests can hand it a fake report. The printable document
(export, PDF, print) comes from the injected renderer, ``wes.report.html.render_html`` in the real client.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.ui.dialogs import accessible
from app.ui.signals import emit


def _status(result: Any) -> str:
    status = getattr(result, "status", "")
    return str(getattr(status, "value", status)).replace("_", " ").upper()


def failures_html(report: Any) -> str:
    """What must be fixed, in words: each failure with its evidence and remediation."""
    parts = []
    if report.compliant:
        parts.append("<h2>This workstation meets the Warrantied Environment Specification.</h2>")
    else:
        parts.append(f"<h2>This workstation is NOT compliant: {len(report.failures)} requirement(s) failed.</h2>"
                     "<p>Clinical views stay disabled until these are fixed (ask your IT service desk):</p>")
    for r in report.failures:
        link = f' <a href="{html.escape(r.link)}">{html.escape(r.link)}</a>' if getattr(r, "link", "") else ""
        parts.append(f"<h3>{html.escape(r.id)} — {html.escape(r.title)} ({_status(r)})</h3>"
                     f"<p><b>Found</b> {html.escape(r.evidence)}</p>"
                     f"<p><b>To fix</b> {html.escape(r.remediation or 'See the WES documentation.')}{link}</p>")
    parts.append("<h3>All checks</h3><ul>")
    for r in report.results:
        parts.append(f"<li>{_status(r)} — {html.escape(r.id)} {html.escape(r.title)}</li>")
    parts.append("</ul>")
    return "".join(parts)


class WesProgressPage(QWidget):
    """Shown while the gate runs: a progress bar and each check's verdict as it arrives."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("wesProgress")
        layout = QVBoxLayout(self)
        self.title = QLabel("Starting Spine Desk and checking this workstation (WES)…", self)
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        self.title.setFont(font)
        layout.addWidget(self.title)
        self.step = QLabel("", self)  # the start-up's current step (service, training card), then the check's
        self.step.setObjectName("startupStep")
        self.step.setWordWrap(True)
        accessible(self.step, "Start-up step")
        layout.addWidget(self.step)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 0)  # busy until the checker says how many checks there are
        accessible(self.bar, "Workstation check progress")
        layout.addWidget(self.bar)
        self.list = QListWidget(self)
        accessible(self.list, "Checks completed")
        layout.addWidget(self.list, 1)

    def add(self, result: Any) -> None:
        self.list.addItem(f"{_status(result)} — {result.id} {result.title}")
        self.bar.setFormat(f"{self.list.count()} checks done")

    def set_step(self, text: str) -> None:
        self.step.setText(text)
        accessible(self.step, f"Start-up step: {text}")

    def reset(self) -> None:
        self.list.clear()
        self.bar.setRange(0, 0)
        self.set_step("Checking this workstation against the WES…")


class WesReportView(QWidget):
    """The report: compliance verdict, failures with remediation, export (HTML, PDF) and print."""

    closed = Signal()

    def __init__(self, parent: QWidget | None, report: Any, *, export_dir: Path, write_pdf: Any = None,
                 render_html: Callable[[Any], str] | None = None, closable: bool = True) -> None:
        super().__init__(parent)
        self.setObjectName("wesReport")
        self.report = report
        self._export_dir = export_dir
        self._write_pdf = write_pdf
        self._render_html = render_html
        layout = QVBoxLayout(self)
        verdict = ("Compliant: this workstation meets the WES." if report.compliant
                   else f"Not compliant: {len(report.failures)} requirement(s) failed. Clinical views are disabled.")
        self.verdict = QLabel(verdict, self)
        self.verdict.setObjectName("wesVerdict")
        self.verdict.setWordWrap(True)
        self.verdict.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        accessible(self.verdict, verdict)
        layout.addWidget(self.verdict)
        self.body = QTextBrowser(self)
        self.body.setOpenExternalLinks(True)
        self.body.setHtml(failures_html(report))
        accessible(self.body, "WES report", "Each failure with what was found and how to fix it")
        layout.addWidget(self.body, 1)
        buttons = QHBoxLayout()
        self.export_html_button = QPushButton("Export &HTML…", self)
        self.export_pdf_button = QPushButton("Export &PDF…", self)
        self.print_button = QPushButton("P&rint…", self)
        for button, name in ((self.export_html_button, "Export the WES report as HTML"),
                             (self.export_pdf_button, "Export the WES report as PDF"),
                             (self.print_button, "Print the WES report")):
            accessible(button, name)
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.close_button = QPushButton("&Close report", self)
        accessible(self.close_button, "Close the WES report")
        self.close_button.setVisible(closable)
        self.close_button.clicked.connect(lambda *_: emit(self.closed))
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)
        self.export_html_button.clicked.connect(lambda: self._ask("wes-report.html", "HTML (*.html)",
                                                                  self.export_html))
        self.export_pdf_button.clicked.connect(lambda: self._ask("wes-report.pdf", "PDF (*.pdf)", self.export_pdf))
        self.print_button.clicked.connect(self.print_report)

    def _ask(self, name: str, kind: str, save: Any) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the WES report", str(self._export_dir / name), kind)
        if path:
            save(Path(path))

    def html(self) -> str:
        if self._render_html is not None:
            return self._render_html(self.report)
        # without the checker's renderer the export still holds what the screen shows
        return f"<html><body>{failures_html(self.report)}</body></html>"

    def export_html(self, path: Path) -> None:
        path.write_text(self.html(), encoding="utf-8")

    def export_pdf(self, path: Path) -> None:
        if self._write_pdf is not None:
            self._write_pdf(self.html(), path)
            return
        from PySide6.QtGui import QPdfWriter

        writer = QPdfWriter(str(path))
        doc = QTextDocument()
        doc.setHtml(self.html())
        doc.print_(writer)

    def print_report(self) -> None:
        from PySide6.QtPrintSupport import QPrintDialog, QPrinter

        printer = QPrinter()
        dialog = QPrintDialog(printer, self)
        if dialog.exec():
            doc = QTextDocument()
            doc.setHtml(self.html())
            doc.print_(printer)
