"""Start the desktop client: the QApplication, the style sheet and the main window (``run_client``)."""

from __future__ import annotations

import signal

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from app.ui.main_window import MainWindow
from app.ui.ports import ClientDeps
from app.ui.signals import protect_singletons

STYLE = """
QLabel#trainingBanner { background: #ffeb3b; color: #000000; font-weight: bold; padding: 6px;
                        border: 3px dashed #000000; }
QFrame#patientBanner { background: #e8edee; border: 2px solid #005eb8; }
QFrame#patientBanner[deceased="true"] { background: #d0d0d0; border: 3px dashed #212b32; }
QFrame#messageArea[level="error"] { background: #fde8e8; border: 2px solid #d5281b; }
QFrame#messageArea[level="notice"] { background: #e8f1f8; border: 2px solid #005eb8; }
QLineEdit:focus, QPushButton:focus, QToolButton:focus, QComboBox:focus, QCheckBox:focus, QTableView:focus,
QListWidget:focus, QTabBar::tab:focus, QTextBrowser:focus, QLabel:focus {
    border: 3px solid #ffb81c; }
"""


def run_client(deps: ClientDeps, argv: list[str] | None = None) -> int:
    protect_singletons()  # before any Qt call: see app/ui/signals.py
    app = QApplication.instance() or QApplication(argv or ["spinedesk"])
    app.setApplicationName("Spine Desk")
    app.setStyleSheet(STYLE)
    window = MainWindow(deps)
    window.resize(1100, 760)
    window.show()
    window.start()
    _quit_on_signals(app)
    try:
        return app.exec()
    finally:
        window.shutdown()  # the card, the session and the workers, however the loop ended


def _quit_on_signals(app: QApplication) -> None:
    """Ctrl-C and SIGTERM end the client cleanly (the training card is pulled, the service stopped). Qt's loop
    runs in C++, so a timer lets Python look at pending signals a few times a second."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: app.quit())
    timer = QTimer(app)
    timer.timeout.connect(lambda: None)
    timer.start(250)
