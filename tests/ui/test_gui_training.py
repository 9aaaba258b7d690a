"""``spinedesk`` with no site configuration: the composition root's training mode, end to end.

The in-process service seeded on first run (2,000 patients), the training card issued with its documented PIN and
inserted by the client into pcscd's virtual reader, a user and roles for it, the TRAINING banner; then the real
WES checker at the gate.
"""

from __future__ import annotations

import contextlib
import io
from datetime import UTC, datetime, timedelta

import pytest

from app.cli.training import TRAINING_PIN, TRAINING_USER
from app.config import Paths, Settings
from tests.integration.conftest import PORT1, READER1
from tests.ui.conftest import compliant_gate
from tests.ui.helpers import WAIT, login, open_by_nhs

pytestmark = pytest.mark.pcsc


@pytest.fixture
def training_settings(tmp_path, monkeypatch):
    # The real WES gate runs here: on a machine where scripts/setup.sh could not load the host firewall guard for
    # vpcd (a CI container without CAP_NET_ADMIN), pcsc.virtual fails in training because vpcd answers on 0.0.0.0.
    # The test machine declares itself isolated with the training-only waiver, beside the (absent) site
    # configuration where the gate looks for it, as an isolated training room would. The gate reads the settings
    # from the environment, so the environment names the same site configuration and data folder.
    monkeypatch.setenv("SPINEDESK_SITE_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("SPINEDESK_DATA_DIR", str(tmp_path / "data"))
    until = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    (tmp_path / "wes-waivers.toml").write_text(
        '[[waiver]]\ncheck = "pcsc.virtual"\nreason = "Test machine: isolated, or its vpcd guarded"\n'
        f'who = "Spine Desk tests"\nuntil = {until}\nmodes = ["training"]\n', encoding="utf-8")
    return Settings(paths=Paths(tmp_path / "config", tmp_path / "data", tmp_path / "log", tmp_path / "none.toml"))


def test_training_mode_first_run(qtbot, pcscd, training_settings):
    from app.cli.desktop import build_deps
    from app.ui.main_window import MainWindow

    out = io.StringIO()
    with contextlib.ExitStack() as stack:
        deps = build_deps(training_settings, stack, out, vpcd_port=PORT1, only_reader=READER1)
        assert "Training data seeded (first run)." in out.getvalue()
        assert deps.training and deps.training_card is not None and deps.training_card.pin == TRAINING_PIN
        assert training_settings.paths.training_card_file.exists()
        deps.wes_gate = compliant_gate  # the real checker's own verdict is the next test's subject
        window = MainWindow(deps)
        qtbot.addWidget(window)
        window.show()
        window.start()
        try:
            assert window.training_banner.isVisible() and "TRAINING" in window.windowTitle()
            assert TRAINING_PIN in window.login_page.hint.text()
            session = login(qtbot, window, TRAINING_PIN, role_index=0)
            assert session.login.user_id == TRAINING_USER
            patient = open_by_nhs(qtbot, window, "9000000017")
            assert window.record.banner.nhs.text() == "900 000 0017" and patient.nhs_number == "9000000017"
            # the Training menu pulls the card: the session ends and the patient is gone
            window.deps.training_card.remove()
            qtbot.waitUntil(lambda: window.session is None, timeout=WAIT)
            assert window.patient_data_present() == []
        finally:
            window.shutdown()
    # a second start reuses the data: no reseeding, the same card
    out = io.StringIO()
    with contextlib.ExitStack() as stack:
        build_deps(training_settings, stack, out, vpcd_port=PORT1, only_reader=READER1)
        assert "seeded" not in out.getvalue()


def test_the_real_wes_checker_gates_start_with_progress(qtbot, pcscd, training_settings):
    pytest.importorskip("wes.runner")
    from app.cli.desktop import build_deps
    from app.ui.main_window import MainWindow
    from wes import Status

    with contextlib.ExitStack() as stack:
        deps = build_deps(training_settings, stack, io.StringIO(), vpcd_port=PORT1, only_reader=READER1, patients=50)
        assert deps.wes_gate is not None
        window = MainWindow(deps)
        qtbot.addWidget(window)
        window.show()
        window.start()
        try:
            qtbot.waitUntil(lambda: window.wes_report is not None, timeout=WAIT)
            report = window.wes_report
            assert window.progress_page.list.count() == len(report.results) > 0
            virtual = report.result("pcsc.virtual")  # guarded by the host firewall, or the isolation waiver
            assert virtual.status in (Status.PASS, Status.WAIVED), virtual.evidence
            assert window.clinical_enabled is report.compliant
            if not report.compliant:
                text = window.wes_view.body.toPlainText()
                for failure in report.failures:
                    assert failure.id in text
                    assert (failure.remediation or "See the WES documentation.")[:40] in text
                assert "disabled" in window.login_page.heading.text()
                window.wes_view.close()
        finally:
            window.shutdown()
