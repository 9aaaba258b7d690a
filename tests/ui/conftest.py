"""GUI test fixtures: a real X server (Xvfb), the real service on loopback, pcscd's virtual reader, training cards.

With ``CI`` set, a missing Xvfb or pcscd fails the GUI tests instead of skipping them. The card tests use the
second virtual slot (Virtual PCD 00 01, port 35964) and the client watches only that reader, so another engineer's
card in slot 00 00 cannot interfere; a slot still busy with someone else's card is waited for, not failed.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import PORT1, READER1, pcscd, wait_card_state  # noqa: F401  (fixture re-export)

CI = bool(os.environ.get("CI"))
PIN = "24681357"


def _fail_or_skip(reason: str) -> None:
    if CI:
        pytest.fail(f"GUI tests must run under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def xdisplay() -> Iterator[str]:
    """A real X display: the one given, or an Xvfb of our own."""
    if os.environ.get("DISPLAY") and os.environ.get("SPINEDESK_TEST_DISPLAY") == "given":
        os.environ["QT_QPA_PLATFORM"] = "xcb"
        yield os.environ["DISPLAY"]
        return
    xvfb = shutil.which("Xvfb") or ("/usr/bin/Xvfb" if Path("/usr/bin/Xvfb").exists() else None)
    if xvfb is None:
        _fail_or_skip("Xvfb is not installed (apt-get install xvfb)")
    number = next(n for n in range(90, 200) if not Path(f"/tmp/.X{n}-lock").exists()
                  and not Path(f"/tmp/.X11-unix/X{n}").exists())
    screen = os.environ.get("SPINEDESK_XVFB_SCREEN", "1400x1000x24")
    proc = subprocess.Popen([xvfb, f":{number}", "-screen", "0", screen, "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.environ["DISPLAY"] = f":{number}"
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    yield f":{number}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def qapp(xdisplay):
    from PySide6.QtWidgets import QApplication

    from app.ui.app import STYLE
    from app.ui.signals import protect_singletons

    protect_singletons()  # as run_client does (PySide6 6.12.0 on CPython 3.11: see app/ui/signals.py)
    app = QApplication.instance() or QApplication(["spinedesk-tests"])
    if app.platformName() != "xcb":
        _fail_or_skip(f"a QApplication already runs on '{app.platformName()}', not a real X server")
    app.setStyleSheet(STYLE)
    yield app
    app.closeAllWindows()
    app.processEvents()
    if hasattr(app, "shutdown"):  # PySide6 >= 6.5: destroy the app while its X server is still there
        app.shutdown()


@pytest.fixture(scope="session")
def ui_data(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ui-data")


@pytest.fixture(scope="session")
def ui_ca(ui_data):
    from app.pki import TrainingCA

    return TrainingCA.load_or_create(ui_data / "training-pki")


@pytest.fixture(scope="session")
def card_templates(ui_ca, ui_data) -> dict[str, Path]:
    """Alex (two roles), Blake (one role; also an expiring card), Nora (no roles), and a card from a foreign CA."""
    from app.card.virtual import issue_card
    from app.pki import TrainingCA

    other_ca = TrainingCA.load_or_create(ui_data / "another-training-pki")  # a CA the service does not trust
    cards = {}
    for key, name, days, ca in (("alex", "Dr Alex Training", 365, ui_ca), ("blake", "Dr Blake Second", 365, ui_ca),
                                ("expiring", "Dr Erin Expiring", 30, ui_ca), ("noroles", "Dr Nora Noroles", 365, ui_ca),
                                ("foreign", "Dr Fay Foreign", 365, other_ca),
                                ("officer", "Olivia Officer", 365, ui_ca)):
        card, _ = issue_card(ca, name=name, algorithm="p256", pin=PIN, puk="12345678", days=days)
        cards[key] = ui_data / f"{key}.json"
        card.save(cards[key])
    return cards


@pytest.fixture(scope="session")
def service(ui_ca, ui_data, card_templates):
    """The real service (uvicorn thread, SQLite file), seeded, with both users registered."""
    from app.cli import training
    from app.service.core.limits import HttpLimits
    from app.service.storage import open_store

    store = open_store(f"sqlite:///{ui_data / 'service.db'}")
    training.seed_if_empty(store, 2000)  # enough for CP-IS plans and flags to occur
    training.register_user(store, card_templates["alex"])
    training.register_user(store, card_templates["blake"], user_id="blake",
                           roles=(("blake-clinical", "S8000:G8000:R8001"),))
    training.register_user(store, card_templates["expiring"], user_id="blake")
    training.register_user(store, card_templates["noroles"], user_id="nora", roles=())
    training.register_user(store, card_templates["officer"], user_id="olivia",
                           roles=(("olivia-po", "S8002:G8003:R8014"),))
    # the GUI tests log in many times from one address: not throttled (the login rate limit has its own tests)
    running = training.start_service("unused://", ui_ca.directory, store=store,
                                     limits=HttpLimits(auth_rate_per_minute=1e6, auth_burst=1_000_000))
    yield running
    running.stop()


@pytest.fixture
def cards(card_templates, tmp_path) -> dict[str, Path]:
    """Fresh copies per test: PIN counters persist in the card file."""
    return {k: Path(shutil.copy(v, tmp_path / f"{k}.json")) for k, v in card_templates.items()}


class Slot:
    """A card in the virtual reader 00 01; waits out another user of the slot; always pulled at the end."""

    def __init__(self, system) -> None:
        self.system = system
        self.current = None

    def insert(self, path: Path, timeout: float = 120) -> None:
        from app.cli.training import TrainingCardSlot

        self.pull()
        slot = TrainingCardSlot(path, pin=PIN, port=PORT1)
        slot.insert()
        self.current = slot
        assert slot.wait_inserted(timeout), "the virtual reader 00 01 stayed busy"

    def pull(self) -> None:
        if self.current is not None:
            self.current.remove()
            self.current = None
            wait_card_state(self.system, READER1, False, timeout=10)


@pytest.fixture
def slot(pcscd) -> Iterator[Slot]:  # noqa: F811
    s = Slot(pcscd)
    yield s
    s.pull()


class FakeReport:
    """A WES report at the gate's seam (the real checker is tested by its own suite)."""

    def __init__(self, results) -> None:
        self.results = results

    @property
    def failures(self):
        return [r for r in self.results if r.status == "fail"]

    @property
    def compliant(self) -> bool:
        return not self.failures


def fake_report_html(report) -> str:
    """The printable report at the renderer's seam (the real one is ``wes.report.html.render_html``)."""
    return "<html><body><h1>WES report</h1>" + "".join(
        f"<p>{r.id} {r.status}: {r.remediation}</p>" for r in report.results) + "</body></html>"


class FakeResult:
    def __init__(self, id, title, status, remediation="", evidence="seen", link="") -> None:
        self.id, self.title, self.status, self.remediation = id, title, status, remediation
        self.evidence, self.link, self.severity = evidence, link, "required"


def compliant_gate(on_progress):
    results = [FakeResult("WES-OS-01", "Supported operating system", "pass"),
               FakeResult("WES-PCSC-01", "Smart card service", "pass")]
    for r in results:
        on_progress(r)
    return FakeReport(results)


def failing_gate(on_progress):
    results = [FakeResult("WES-OS-01", "Supported operating system", "pass"),
               FakeResult("WES-AV-02", "Anti-malware running", "fail",
                          remediation="Start the anti-malware service and keep its signatures current.")]
    for r in results:
        on_progress(r)
    return FakeReport(results)


@pytest.fixture
def make_window(qtbot, service, ui_ca, tmp_path):
    """A real MainWindow against the real service and pcscd (reader 00 01 only)."""
    from app.cli.desktop import PcscCardAccess, quiet_http_logs
    from app.client.client import SpineClient
    from app.ui.main_window import MainWindow
    from app.ui.ports import ClientDeps

    quiet_http_logs()
    made = []

    def _make(*, gate=compliant_gate, removal="lock", training_card=None, now=None):
        http = httpx.Client(timeout=15)
        access = PcscCardAccess(ui_ca.trust_store(), only_reader=READER1, **({"now": now} if now else {}))
        deps = ClientDeps(spine=SpineClient(service.url, http), cards=access,
                          wes_gate=gate, training=True, removal=removal, service_label=service.url,
                          training_card=training_card, export_dir=tmp_path, wes_html=fake_report_html)
        window = MainWindow(deps)
        qtbot.addWidget(window)
        window.resize(1100, 760)
        window.show()
        qtbot.waitExposed(window)
        window.start()
        made.append((window, http))
        return window

    yield _make
    for window, http in made:
        window.shutdown()
        http.close()


@pytest.fixture
def log_file(tmp_path) -> Iterator[Path]:
    """Everything logged (DEBUG and up) while the test runs, as the client's log file would hold it."""
    path = tmp_path / "spinedesk.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    yield path
    root.removeHandler(handler)
    root.setLevel(old_level)
    handler.close()
