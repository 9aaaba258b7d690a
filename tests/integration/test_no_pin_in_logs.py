"""A PIN never reaches a log, a card file, a database, or the output of any command — checked on real card runs:
the card commands, and ``spinedesk login --pin-stdin`` against a live service in its own process with the card in
pcscd's virtual reader (a wrong PIN first, then the right one), verbose logging on everywhere."""

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


def leaks(pin: str, blobs: dict[str, bytes]) -> list[str]:
    """Where any form of ``pin`` (its digits, which are also the VERIFY APDU's bytes, or their hex) appears in
    ``blobs`` (name -> content)."""
    needles = [f.encode() for f in forms(pin)]
    return sorted({name for name, blob in blobs.items() for needle in needles if needle in blob})


def test_spinedesk_login_against_a_live_service_leaves_no_pin_anywhere(pcscd, env, service, tmp_path):
    url, db = service
    env = {**env, "SPINEDESK_SITE_CONFIG": str(tmp_path / "none.toml")}
    card_file = tmp_path / "card.json"
    outputs: dict[str, str] = {}
    issued = spinedesk("-v", "card", "issue", "--out", str(card_file), "--name", "Dr No Pin", "--alg", "p256",
                       "--pin-stdin", env=env, input=SECRET_PIN + "\n")
    assert issued.returncode == 0, issued.stderr
    outputs["card issue"] = issued.stdout + issued.stderr
    for args in (("users", "add", "--id", "nopin", "--name", "Dr No Pin", "--card-file", str(card_file)),
                 ("users", "add-role", "--user", "nopin", "--urid", "nopin-clin", "--org", "A81001", "--org-name",
                  "Training Surgery", "--role", "S8000:G8000:R8000")):
        done = spinedesk("-v", "service", "--database", db, *args, env=env)
        assert done.returncode == 0, done.stderr
        outputs[" ".join(args[:2])] = done.stdout + done.stderr
    proc = subprocess.Popen([sys.executable, "-m", "app", "-v", "card", "insert", str(card_file)], cwd=ROOT,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_card_state(pcscd, READER0, True, timeout=10)
        wrong = spinedesk("-v", "login", "--service-url", url, "--pin-stdin", env=env, input=WRONG_PIN + "\n")
        assert wrong.returncode == 1 and "Incorrect PIN" in wrong.stderr, wrong.stderr
        outputs["login, wrong PIN"] = wrong.stdout + wrong.stderr
        login = spinedesk("-v", "login", "--service-url", url, "--pin-stdin", env=env, input=SECRET_PIN + "\n")
        assert login.returncode == 0, login.stderr
        assert "Dr No Pin" in login.stderr and login.stdout.strip()  # a real session: the token is printed
        outputs["login"] = login.stdout + login.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        outputs["card insert"] = out + err
    # every file the run produced: logs (XDG_STATE_HOME), the service's output, its database (and journal files),
    # the training CA and card files, whatever else landed in the test's directory
    files = {str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert any(name.startswith("state") and name.endswith(".log") for name in files), sorted(files)
    assert any(name.startswith("service.db") for name in files), sorted(files)
    assert b"nopin" in b"".join(blob for name, blob in files.items() if name.startswith("state")), \
        "the logs do not mention the login at all; this test would prove nothing"
    blobs = {**files, **{f"output of {k}": v.encode() for k, v in outputs.items()}}
    for pin in (SECRET_PIN, WRONG_PIN):
        assert not leaks(pin, blobs), f"PIN leaked into {leaks(pin, blobs)}"


def test_pcscd_runs_without_apdu_logging(pcscd):
    cmdlines = subprocess.run(["pgrep", "-a", "-x", "pcscd"], capture_output=True, text=True).stdout
    assert cmdlines.strip(), "pcscd is not running"
    assert "--apdu" not in cmdlines and " -a" not in cmdlines and "--auto-exit" not in cmdlines
