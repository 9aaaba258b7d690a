"""Run by test_scaling.py in a child pytest with QT_SCALE_FACTOR=2 (Qt reads it once, at start): the real window
at 200% with a patient open; nothing in the banner is cut. Not collected on its own (no test_ prefix)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from tests.support.ui.fixtures import PIN
from tests.support.ui.helpers import login, open_by_nhs

pytestmark = pytest.mark.pcsc
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def test_record_at_200_percent(qtbot, make_window, slot, cards, tmp_path):
    assert QApplication.primaryScreen().devicePixelRatio() == 2.0
    window = make_window()
    window.resize(1100, 800)
    qtbot.waitUntil(lambda: window.clinical_enabled, timeout=30_000)
    slot.insert(cards["alex"])
    login(qtbot, window, PIN, role_index=0)
    open_by_nhs(qtbot, window, "9000000017")
    banner = window.record.banner
    banner.toggle.click()
    qtbot.wait(50)
    for label in (banner.born, banner.gender, banner.nhs, banner.address_line):
        assert label.width() >= label.sizeHint().width(), f"{label.objectName()} is cut at 200%"
    assert banner.name.height() >= banner.name.heightForWidth(banner.name.width())
    image = window.grab()
    assert image.devicePixelRatio() == 2.0
    target = SHOTS if os.environ.get("SPINEDESK_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    image.save(str(target / "main-window-200pct.png"))
