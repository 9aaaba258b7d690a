"""Start the desktop client: the QApplication, the style sheet and the main window (``run_client``)."""

from __future__ import annotations

import signal
import sys
import time

from PySide6.QtCore import QEvent, QObject, QTimer
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


def run_client(deps: ClientDeps, argv: list[str] | None = None, *, startup_marks: bool = False) -> int:
    """Show the client and run Qt's loop; ``startup_marks`` (``SPINEDESK_STARTUP_MARKS``) writes the cold-start
    benchmark's marks on stderr."""
    protect_singletons()  # before any Qt call: see app/ui/signals.py
    app = QApplication.instance() or QApplication(argv or ["spinedesk"])
    app.setApplicationName("Spine Desk")
    app.setStyleSheet(STYLE)
    window = MainWindow(deps)
    window.resize(1100, 760)
    if startup_marks:  # benchmarks/ui_cold_start.py reads these lines on stderr
        _startup_marks(window)
    window.show()
    QTimer.singleShot(0, window.start)  # the first paint comes first; the start-up runs behind it
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


class _FirstPaint(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.seen = False

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if not self.seen and event.type() == QEvent.Type.Paint:
            self.seen = True
            QTimer.singleShot(0, lambda: _mark("shown"))  # after this paint has been flushed to the screen
        return False


def _mark(what: str) -> None:
    print(f"spinedesk-mark {what} {time.time():.6f}", file=sys.stderr, flush=True)


def _startup_marks(window: MainWindow) -> None:
    """Wall-clock marks for the cold-start benchmark: the first paint of the window, then ready to log in."""
    watcher = _FirstPaint(window)
    window.installEventFilter(watcher)
    window.start_finished.connect(lambda open_: _mark("ready" if open_ else "closed"))
