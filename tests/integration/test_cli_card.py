"""``spinedesk card issue | insert | status`` as a user runs them: real processes, real pcscd, signals."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PIN, READER0, spinedesk, wait_card_state

pytestmark = pytest.mark.pcsc
ROOT = Path(__file__).parents[2]


@pytest.fixture
def env(training_dir, tmp_path):
    return {"SPINEDESK_DATA_DIR": str(training_dir), "XDG_STATE_HOME": str(tmp_path / "state"),
            "SPINEDESK_SITE_CONFIG": str(tmp_path / "no-site.toml")}


def test_issue_insert_status_and_sigterm_removal(pcscd, tmp_path, env):
    out = tmp_path / "card.json"
    issued = spinedesk("card", "issue", "--out", str(out), "--name", "Nurse Test", "--alg", "p256",
                       "--pin-stdin", "--days", "30", env=env, input=PIN + "\n")
    assert issued.returncode == 0, issued.stderr
    assert "PUK" in issued.stdout and PIN not in issued.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    proc = subprocess.Popen([sys.executable, "-m", "app", "card", "insert", str(out)], cwd=ROOT,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_card_state(pcscd, READER0, True, timeout=10)
        status = spinedesk("card", "status", "--reader", READER0, env=env)
        assert status.returncode == 0, status.stderr
        assert "CN=Nurse Test" in status.stdout
        assert "trusted" in status.stdout and "renewal due" in status.stdout  # 30 days < 90-day window
        assert "3 tries left" in status.stdout
        assert "3B 8C 01" in status.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    assert "inserted" in stdout and "Card removed." in stdout
    assert wait_card_state(pcscd, READER0, False)


def test_status_with_no_card(pcscd, env):
    result = spinedesk("card", "status", "--reader", READER0, env=env)
    assert result.returncode == 1
    assert "There is no card in 'Virtual PCD 00 00'. Insert your smartcard." in result.stderr


def test_status_of_a_foreign_card_is_untrusted(pcscd, tmp_path, env, insert):
    from app.card.virtual import issue_card
    from app.pki import TrainingCA

    foreign = TrainingCA.load_or_create(tmp_path / "other-ca")
    card, _ = issue_card(foreign, name="Stranger", algorithm="p256", pin=PIN)
    card.save(tmp_path / "foreign.json")
    insert(tmp_path / "foreign.json")
    result = spinedesk("card", "status", "--reader", READER0, env=env)
    assert result.returncode == 1
    assert "untrusted_issuer" in result.stdout
    assert "not issued by an authority this service trusts" in result.stderr


def test_damaged_card_file_is_explained(tmp_path, env):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = spinedesk("card", "insert", str(bad), env=env, timeout=20)
    assert result.returncode == 1
    assert str(bad) in result.stderr and "Issue a new training card" in result.stderr


def test_invalid_pin_on_issue(tmp_path, env):
    result = spinedesk("card", "issue", "--out", str(tmp_path / "c.json"), "--name", "X", "--pin-stdin",
                       env=env, input="12ab\n")
    assert result.returncode == 1 and "digits" in result.stderr
    assert not (tmp_path / "c.json").exists()
