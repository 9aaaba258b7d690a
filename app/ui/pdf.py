"""HTML to PDF (and a PNG of the first page) with Qt's own rich-text engine: no browser, no extra dependency.

Used by ``spinedesk wes check --format pdf`` (imported lazily, so the other formats never load Qt). Works
headless: with no display and no QT_QPA_PLATFORM set, Qt's offscreen platform is used.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtCore import QMarginsF, QRectF, QSizeF
from PySide6.QtGui import (
    QGuiApplication,
    QImage,
    QImageWriter,
    QPageLayout,
    QPageSize,
    QPainter,
    QPdfWriter,
    QTextDocument,
)
from PySide6.QtWidgets import QApplication

_A4_MM = (210.0, 297.0)
_MARGIN_MM = 14.0
_app: QApplication | None = None


def _ensure_app() -> None:
    """Text layout needs a QGuiApplication (fonts). Reuse the client's; otherwise make a QApplication (so widgets
    made later in the same process still work), offscreen if headless."""
    global _app
    if QGuiApplication.instance() is not None:
        return
    headless = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if headless and "QT_QPA_PLATFORM" not in os.environ:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    _app = QApplication(["spinedesk"])


def _document(html: str) -> QTextDocument:
    doc = QTextDocument()
    doc.setDocumentMargin(0)
    doc.setHtml(html)
    return doc


def html_to_pdf(html: str, out: Path, *, title: str = "", creator: str = "Spine Desk") -> None:
    """Write ``html`` as an A4 PDF to ``out``, paginated, text selectable (and extractable)."""
    _ensure_app()
    writer = QPdfWriter(str(out))
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setPageMargins(QMarginsF(_MARGIN_MM, _MARGIN_MM, _MARGIN_MM, _MARGIN_MM), QPageLayout.Unit.Millimeter)
    writer.setResolution(300)
    writer.setTitle(title)
    writer.setCreator(creator)
    doc = _document(html)
    doc.print_(writer)
    if not out.exists() or out.stat().st_size == 0:
        raise OSError(f"Qt did not write the PDF {out}")


def html_to_png(html: str, out: Path, *, dpi: int = 110) -> None:
    """Render the first A4 page of ``html`` (same margins as the PDF) to a PNG, for documentation."""
    _ensure_app()
    px = dpi / 25.4
    page_w, page_h = _A4_MM[0] * px, _A4_MM[1] * px
    margin = _MARGIN_MM * px
    doc = _document(html)
    doc.setPageSize(QSizeF(page_w - 2 * margin, page_h - 2 * margin))
    image = QImage(int(page_w), int(page_h), QImage.Format.Format_RGB32)
    image.fill(0xFFFFFF)
    painter = QPainter(image)
    try:
        painter.translate(margin, margin)
        doc.drawContents(painter, QRectF(0, 0, page_w - 2 * margin, page_h - 2 * margin))
    finally:
        painter.end()
    writer = QImageWriter(str(out), b"PNG")
    if not writer.write(image):
        raise OSError(f"could not write {out}: {writer.errorString()}")
