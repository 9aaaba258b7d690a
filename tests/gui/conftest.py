"""Fast GUI tier: the real client window with fake ports, Qt offscreen. No X server, no pcscd, no service.

The window is built from the same ``ClientDeps`` the composition root (``app.cli.desktop``) fills, with
``FakeSpine`` (recorded service answers), ``FakeCards`` (the in-process virtual PIV applet), and a WES gate that
returns a fake report. Every test module here sets ``pytestmark = pytest.mark.gui_fast``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from tests.gui.fakes import FakeCards, FakeSpine, FakeTrainingCard
from tests.gui.recording import CARD_PIN as PIN
from tests.gui.recording import RECORDED, load_all
from tests.ui.conftest import compliant_gate, fake_report_html

MANIFEST = json.loads((RECORDED / "manifest.json").read_text(encoding="utf-8"))
PATIENTS: dict[str, str] = MANIFEST["patients"]
TODAY = date.fromisoformat(MANIFEST["recorded_on"])  # the day the answers were recorded: ages and dates fit it
ALEX, BLAKE, NORA, OLIVIA = MANIFEST["users"]
EXPIRING = "Dr Erin Expiring"  # a card only: the service never sees it in these tests


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


@pytest.fixture(scope="session")
def exchanges() -> dict[str, dict[str, Any]]:
    return load_all()


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory):
    from app.pki import TrainingCA

    return TrainingCA.load_or_create(tmp_path_factory.mktemp("fast-gui-pki"))


@pytest.fixture(scope="session")
def card_files(test_ca, tmp_path_factory) -> dict[str, dict[str, Any]]:
    """One card per recorded user (same holder names, this run's keys), a card from a CA nobody trusts, and a
    card whose certificate expires in 30 days."""
    from app.card.virtual import issue_card
    from app.pki import TrainingCA

    foreign = TrainingCA.load_or_create(tmp_path_factory.mktemp("foreign-pki"))
    files = {}
    for name, ca, days in [(n, test_ca, 365) for n in (ALEX, BLAKE, NORA, OLIVIA)] + [
            ("Dr Fay Foreign", foreign, 365), (EXPIRING, test_ca, 30)]:
        card, _ = issue_card(ca, name=name, algorithm="p256", pin=PIN, puk="12345678", days=days)
        files[name] = card.to_json()
    return files


@pytest.fixture
def card(card_files) -> Any:
    """``card(name)``: a fresh virtual applet for that holder (PIN counters start full in every test)."""
    from app.card.virtual import CardFile, PivApplet

    def make(name: str = ALEX) -> Any:
        return PivApplet(CardFile.from_json(card_files[name]), persist=lambda _card: None)

    return make


@pytest.fixture
def spine(exchanges) -> Iterator[FakeSpine]:
    fake = FakeSpine(exchanges)
    yield fake
    fake.close()
    assert not fake.unexpected, f"requests with no recorded answer: {fake.unexpected}"


@pytest.fixture
def cards(test_ca) -> FakeCards:
    return FakeCards(test_ca.trust_store())  # the cards are issued by this run: checked on the real clock


@pytest.fixture
def make_window(qtbot, spine, cards, tmp_path):
    """``make_window(...)``: the real ``MainWindow`` on the fake ports, shown and started."""
    from app.ui.main_window import MainWindow
    from app.ui.ports import ClientDeps

    made = []

    def _make(*, gate=compliant_gate, removal="lock", training_card: FakeTrainingCard | None = None):
        deps = ClientDeps(spine=spine, cards=cards, wes_gate=gate, training=True, removal=removal,
                          service_label=spine.base_url, training_card=training_card, export_dir=tmp_path,
                          wes_html=fake_report_html, today=lambda: TODAY)
        window = MainWindow(deps)
        qtbot.addWidget(window)
        window.resize(1100, 760)
        window.show()
        window.start()
        made.append(window)
        return window

    yield _make
    for window in made:
        window.shutdown()
