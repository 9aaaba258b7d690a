"""The offscreen QApplication of the in-process Qt tiers (tests/gui, tests/unit/ui): protected singletons and the
client's style sheet, as ``run_client`` sets them up; one per package, shut down after the package's last test."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="package")
def qapp():
    """An offscreen QApplication for this package only: shut down when its last test has run, so that the
    end-to-end tier, in the same pytest process (as CI runs the whole suite), can start its own on Xvfb. An
    application that is already running (the end-to-end tier ran first) is used as it is and left running."""
    from PySide6.QtWidgets import QApplication

    from app.ui.app import STYLE
    from app.ui.signals import protect_singletons

    protect_singletons()  # as run_client does
    existing = QApplication.instance()
    if existing is None:
        saved = os.environ.get("QT_QPA_PLATFORM")
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # no X server needed
        app = QApplication(["spinedesk-fast-gui-tests"])
        if saved is None:
            del os.environ["QT_QPA_PLATFORM"]
        else:
            os.environ["QT_QPA_PLATFORM"] = saved
    else:
        app = existing
    app.setStyleSheet(STYLE)
    yield app
    app.closeAllWindows()
    app.processEvents()
    if existing is None:
        app.shutdown()
