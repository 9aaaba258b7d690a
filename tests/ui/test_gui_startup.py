"""The window comes first: the service, the training card and the WES check start behind it, with visible steps.

Clinical use stays closed until the start-up has finished and the WES gate has passed; a start-up failure goes
through the one error path. The way to the first window imports no service, HTTP, crypto or WES code.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import threading

import pytest

from app.cli.training import TRAINING_PIN
from app.config import Paths, Settings
from tests.integration.conftest import PORT1, READER1
from tests.ui.conftest import compliant_gate
from tests.ui.helpers import WAIT, login

pytestmark = pytest.mark.pcsc

HEAVY = ("httpx", "cryptography", "uvicorn", "app.service", "app.card.pcsc", "smartcard", "wes", "app.card.piv")


def test_the_first_window_imports_nothing_heavy(tmp_path):
    """What ``spinedesk`` imports before the window is shown (measure the rest with ``python -X importtime``)."""
    code = ("import io, contextlib, json, sys\n"
            "import app.__main__\n"
            "from app.config import load_settings\n"
            "from app.cli.desktop import client_deps\n"
            "from app.ui.app import run_client\n"
            "from app.ui.main_window import MainWindow\n"
            "with contextlib.ExitStack() as stack:\n"
            "    client_deps(load_settings(), stack, io.StringIO())\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    env = {"SPINEDESK_DATA_DIR": str(tmp_path / "data"), "SPINEDESK_SITE_CONFIG": str(tmp_path / "none.toml"),
           "XDG_CONFIG_HOME": str(tmp_path / "c"), "XDG_STATE_HOME": str(tmp_path / "s"), "PATH": "/usr/bin:/bin",
           "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.splitlines()[-1])
    heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == []


@pytest.fixture
def training_settings(tmp_path):
    return Settings(paths=Paths(tmp_path / "config", tmp_path / "data", tmp_path / "log", tmp_path / "none.toml"))


def test_window_first_then_service_card_and_wes(qtbot, pcscd, training_settings):
    from app.cli.desktop import client_deps
    from app.ui.main_window import MainWindow

    release = threading.Event()
    with contextlib.ExitStack() as stack:
        deps = client_deps(training_settings, stack, io.StringIO(), vpcd_port=PORT1, only_reader=READER1,
                           patients=50)
        real, steps = deps.startup, []

        def held(on_step):
            on_step("Held by the test")
            assert release.wait(120)
            return real(lambda text: (steps.append(text), on_step(text)))

        deps.startup, deps.wes_gate = held, compliant_gate
        window = MainWindow(deps)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        window.start()
        try:
            page = window.progress_page
            qtbot.waitUntil(lambda: page.step.text() == "Held by the test", timeout=WAIT)
            # shown, with the card status and the progress, while nothing has started: clinical use is closed
            assert window.isVisible() and window.stack.currentWidget() is page
            assert window.card_status.isVisible() and window.card_status.text()
            assert not window.clinical_enabled and not window.login_action.isEnabled()
            assert not window.flow.enabled and deps.spine is None
            assert TRAINING_PIN in window.login_page.hint.text() and window.training_banner.isVisible()
            window.run_wes_gate()  # asked for by hand meanwhile: it waits for the start-up
            assert window.wes_report is None and "still starting" in window.messages.message
            release.set()
            # the training card goes in first; the service, then the WES check follow; the card then logs in
            session = login(qtbot, window, TRAINING_PIN, role_index=0)
            assert session.login.user_id == "training-clinician"
            assert steps[0] == "Preparing the training smartcard…"
            assert "Starting the training service…" in steps
            assert window.started and window.clinical_enabled and window.wes_report.compliant
            assert page.list.count() == 2  # the gate's results were listed as they came
        finally:
            window.shutdown()


def test_a_failed_start_is_shown_once_and_keeps_clinical_use_closed(qtbot, pcscd, training_settings):
    from app.cli.desktop import client_deps
    from app.ui.main_window import MainWindow

    with contextlib.ExitStack() as stack:
        deps = client_deps(training_settings, stack, io.StringIO(), vpcd_port=PORT1, only_reader=READER1)

        def broken(on_step):
            on_step("Starting the training service…")
            raise OSError("the training service did not start on http://127.0.0.1:1")

        deps.startup, deps.wes_gate = broken, compliant_gate
        window = MainWindow(deps)
        qtbot.addWidget(window)
        window.show()
        window.start()
        try:
            qtbot.waitUntil(lambda: window.startup_error is not None, timeout=WAIT)
            assert "the training service did not start" in window.messages.message
            assert window.stack.currentWidget() is window.login_page
            assert "could not start" in window.login_page.heading.text()
            assert not window.clinical_enabled and not window.login_page.login_button.isEnabled()
            assert not window.login_action.isEnabled() and window.wes_report is None
            assert "could not start" in window.card_status.text()
        finally:
            window.shutdown()
