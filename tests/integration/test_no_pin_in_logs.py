"""A PIN never reaches a log, a card file, or the output of any command — checked on a real card run."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app.card.piv import PivSession, algorithm_for
from app.errors import PinIncorrect

from .conftest import READER0, spinedesk, wait_card_state

pytestmark = pytest.mark.pcsc
ROOT = Path(__file__).parents[2]
SECRET_PIN = "86420753"  # unusual digits: any appearance is a leak
WRONG_PIN = "75319864"


def forms(pin: str) -> list[str]:
    raw = pin.encode()
    return [pin, raw.hex(), raw.hex().upper(), raw.hex(" "), raw.hex(" ").upper()]


def test_a_full_card_run_logs_no_pin(pcscd, tmp_path, caplog):
    env = {"SPINEDESK_DATA_DIR": str(tmp_path / "data"), "XDG_STATE_HOME": str(tmp_path / "state"),
           "SPINEDESK_SITE_CONFIG": str(tmp_path / "none.toml")}
    card_file = tmp_path / "card.json"
    outputs = []
    issued = spinedesk("-v", "card", "issue", "--out", str(card_file), "--name", "Log Check", "--pin-stdin",
                       env=env, input=SECRET_PIN + "\n")
    assert issued.returncode == 0, issued.stderr
    outputs += [issued.stdout, issued.stderr]
    proc = subprocess.Popen([sys.executable, "-m", "app", "-v", "card", "insert", str(card_file)], cwd=ROOT,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_card_state(pcscd, READER0, True, timeout=10)
        caplog.set_level(logging.DEBUG)
        with pcscd.connect(READER0) as conn:
            session = PivSession(conn)
            session.select()
            cert = session.read_certificate()
            with pytest.raises(PinIncorrect):
                session.verify_pin(WRONG_PIN)
            session.verify_pin(SECRET_PIN)
            session.sign(b"nonce", algorithm_for(cert.public_key()))
        status = spinedesk("-v", "card", "status", env=env)
        outputs += [status.stdout, status.stderr]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        outputs += [out, err]
    logs = [p.read_text(errors="replace") for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert logs, "the commands wrote no log file at all; this test would prove nothing"
    assert any("spinedesk" in text or "app." in text for text in logs)
    haystack = "\n".join([*outputs, *logs, caplog.text, card_file.read_text()])
    for pin in (SECRET_PIN, WRONG_PIN):
        for form in forms(pin):
            assert form not in haystack, f"PIN leaked as {form!r}"


def test_pcscd_runs_without_apdu_logging(pcscd):
    cmdlines = subprocess.run(["pgrep", "-a", "-x", "pcscd"], capture_output=True, text=True).stdout
    assert cmdlines.strip(), "pcscd is not running"
    assert "--apdu" not in cmdlines and " -a" not in cmdlines and "--auto-exit" not in cmdlines
