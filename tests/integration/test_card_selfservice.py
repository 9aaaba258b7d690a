"""Card self-service as a user runs it: the training card in pcscd's virtual reader (vpcd), the service in its own
process, ``spinedesk card change-pin | unblock | renew`` and ``spinedesk login`` as separate processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509

from app.card.virtual import CardFile
from app.pki import TrainingCA

from .conftest import PIN, READER0, spinedesk, wait_card_state

pytestmark = pytest.mark.pcsc
ROOT = Path(__file__).parents[2]
NEW_PIN = "50829173"


@contextmanager
def inserted(pcscd, card_file: Path, env: dict) -> Iterator[None]:
    proc = subprocess.Popen([sys.executable, "-m", "app", "card", "insert", str(card_file)], cwd=ROOT,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_card_state(pcscd, READER0, True, timeout=10)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
        wait_card_state(pcscd, READER0, False)


def _issue(env: dict, card_file: Path, name: str, days: int = 30) -> str:
    issued = spinedesk("card", "issue", "--out", str(card_file), "--name", name, "--alg", "p256", "--pin-stdin",
                       "--days", str(days), env=env, input=PIN + "\n")
    assert issued.returncode == 0, issued.stderr
    return next(line.split()[1] for line in issued.stdout.splitlines() if line.strip().startswith("PUK"))


def _add_user(env: dict, db: str, user: str, name: str, card_file: Path, urid: str, *activities: str) -> None:
    added = spinedesk("service", "--database", db, "users", "add", "--id", user, "--name", name, "--card-file",
                      str(card_file), env=env)
    assert added.returncode == 0, added.stderr
    role = ["--activities", *activities] if activities else []
    added = spinedesk("service", "--database", db, "users", "add-role", "--user", user, "--urid", urid, "--org",
                      "A81001", "--org-name", "Training Surgery", "--role", "S8000:G8000:R8000", *role, env=env)
    assert added.returncode == 0, added.stderr


def test_change_pin_block_and_unblock_with_the_puk(pcscd, env, tmp_path):
    card_file = tmp_path / "card.json"
    puk = _issue(env, card_file, "Nurse Self")
    with inserted(pcscd, card_file, env):
        weak = spinedesk("card", "change-pin", "--pin-stdin", env=env, input=f"{PIN}\n123456\n123456\n")
        assert weak.returncode == 1 and "counting up or down" in weak.stderr
        changed = spinedesk("card", "change-pin", "--pin-stdin", env=env, input=f"{PIN}\n{NEW_PIN}\n{NEW_PIN}\n")
        assert changed.returncode == 0, changed.stderr
        assert "PIN has been changed" in changed.stdout
        for left in (2, 1):
            wrong = spinedesk("card", "change-pin", "--pin-stdin", env=env, input=f"{PIN}\n24071938\n24071938\n")
            assert wrong.returncode == 1 and "Incorrect PIN" in wrong.stderr and f"{left} tr" in wrong.stderr
        blocked = spinedesk("card", "change-pin", "--pin-stdin", env=env, input=f"{PIN}\n24071938\n24071938\n")
        assert blocked.returncode == 1 and "locked" in blocked.stderr
        status = spinedesk("card", "status", "--reader", READER0, env=env)
        assert "BLOCKED" in status.stdout
        wrong_puk = "87654321" if puk != "87654321" else "12348765"
        refused = spinedesk("card", "unblock", "--puk-stdin", env=env, input=f"{wrong_puk}\n24071938\n24071938\n")
        assert refused.returncode == 1 and "unlock code (PUK) is wrong" in refused.stderr, refused.stderr
        unblocked = spinedesk("card", "unblock", "--puk-stdin", env=env, input=f"{puk}\n24071938\n24071938\n")
        assert unblocked.returncode == 0, unblocked.stderr
        assert "3 tries left" in spinedesk("card", "status", "--reader", READER0, env=env).stdout
    every = "".join((weak.stderr, changed.stdout, unblocked.stdout, status.stdout))
    assert PIN not in every and NEW_PIN not in every and puk not in every
    assert CardFile.load(card_file).check_pin("24071938")


def test_secrets_never_come_from_a_missing_terminal(pcscd, env, tmp_path):
    card_file = tmp_path / "card.json"
    _issue(env, card_file, "Nurse Quiet")
    with inserted(pcscd, card_file, env):
        result = spinedesk("card", "change-pin", env=env, input="")
    assert result.returncode == 1 and "--pin-stdin" in result.stderr and "Traceback" not in result.stderr


def test_renewal_end_to_end(pcscd, env, service, tmp_path):
    url, db = service
    card_file = tmp_path / "card.json"
    _issue(env, card_file, "Dr Renew")
    _add_user(env, db, "renew", "Dr Renew", card_file, "renew-clin")
    old = CardFile.load(card_file)
    with inserted(pcscd, card_file, env):
        renewed = spinedesk("card", "renew", "--service-url", url, "--pin-stdin", env=env, input=PIN + "\n")
        assert renewed.returncode == 0, renewed.stderr
        assert "new certificate" in renewed.stdout and PIN not in renewed.stdout + renewed.stderr
        login = spinedesk("login", "--service-url", url, "--role", "renew-clin", "--pin-stdin", env=env,
                          input=PIN + "\n")
        assert login.returncode == 0, login.stderr
        assert "Dr Renew" in login.stderr  # the same person, with the new certificate
    new = CardFile.load(card_file)
    assert new.certificate.serial_number != old.certificate.serial_number
    assert new.certificate.subject == old.certificate.subject
    assert new.private_key.public_key() == new.certificate.public_key() != old.certificate.public_key()
    assert not new.certificate_pending
    ca = TrainingCA.load_or_create(Path(env["SPINEDESK_DATA_DIR"]) / "training-pki")
    revoked = {entry.serial_number for entry in ca.crl()}
    assert old.certificate.serial_number in revoked and new.certificate.serial_number not in revoked
    assert isinstance(new.certificate, x509.Certificate)


def test_renewal_outside_the_window_leaves_the_card_alone(pcscd, env, service, tmp_path):
    url, db = service
    card_file = tmp_path / "card.json"
    _issue(env, card_file, "Dr Early", days=365)
    _add_user(env, db, "early", "Dr Early", card_file, "early-clin")
    before = CardFile.load(card_file)
    with inserted(pcscd, card_file, env):
        refused = spinedesk("card", "renew", "--service-url", url, "--pin-stdin", env=env, input=PIN + "\n")
    assert refused.returncode == 1 and "can be renewed from" in refused.stderr, refused.stderr
    after = CardFile.load(card_file)
    assert after.private_key.public_key() == before.private_key.public_key() and not after.certificate_pending


def test_a_local_smartcard_unlocker_unblocks_a_card_through_the_service(pcscd, env, service, tmp_path):
    url, db = service
    unlocker_file, blocked_file = tmp_path / "unlocker.json", tmp_path / "blocked.json"
    _issue(env, unlocker_file, "Ms Unlocker")
    _issue(env, blocked_file, "Dr Blocked")
    _add_user(env, db, "unlocker", "Ms Unlocker", unlocker_file, "unlocker-ra", "B1300")
    _add_user(env, db, "blocked", "Dr Blocked", blocked_file, "blocked-clin")
    with inserted(pcscd, unlocker_file, env):
        login = spinedesk("login", "--service-url", url, "--role", "unlocker-ra", "--pin-stdin", env=env,
                          input=PIN + "\n")
        assert login.returncode == 0, login.stderr
    token = login.stdout.strip()
    card = CardFile.load(blocked_file)
    card.pin_tries_left = 0
    card.save(blocked_file)
    with inserted(pcscd, blocked_file, env):
        done = spinedesk("card", "unblock", "--via-service", "--role", "unlocker-ra", "--service-url", url, env=env,
                         input=f"{token}\n{NEW_PIN}\n{NEW_PIN}\n")
        assert done.returncode == 0, done.stderr
        assert "unlocked" in done.stdout
    assert CardFile.load(blocked_file).check_pin(NEW_PIN)
    audit = spinedesk("service", "--database", db, "audit", "verify", env=env)
    assert audit.returncode == 0


def test_self_service_leaves_no_pin_or_puk_anywhere(pcscd, env, service, tmp_path):
    """Verbose logging everywhere; every file the run produced, every output. The PUK is in one place by design:
    the training records the service releases it from (``card-unblock.json``, 0600)."""
    from .test_no_pin_in_logs import leaks

    url, db = service
    secret, renewed_pin, puk = "86420753", "75319864", "64208531"
    card_file = tmp_path / "card.json"
    issued = spinedesk("-v", "card", "issue", "--out", str(card_file), "--name", "Dr Quiet", "--alg", "p256",
                       "--pin-stdin", "--puk-stdin", "--days", "30", env=env, input=f"{secret}\n{puk}\n")
    assert issued.returncode == 0, issued.stderr
    _add_user(env, db, "quiet", "Dr Quiet", card_file, "quiet-clin")
    outputs = {"issue": issued.stdout + issued.stderr}
    with inserted(pcscd, card_file, env):
        runs = {
            "change-pin": spinedesk("-v", "card", "change-pin", "--pin-stdin", env=env,
                                    input=f"{secret}\n{renewed_pin}\n{renewed_pin}\n"),
            "renew": spinedesk("-v", "card", "renew", "--service-url", url, "--pin-stdin", env=env,
                               input=renewed_pin + "\n"),
            "unblock": spinedesk("-v", "card", "unblock", "--puk-stdin", env=env,
                                 input=f"{puk}\n{secret}\n{secret}\n"),
        }
    for name, run in runs.items():
        assert run.returncode == 0, (name, run.stderr)
        outputs[name] = run.stdout + run.stderr
    files = {str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert any(name.startswith("state") and name.endswith(".log") for name in files), sorted(files)
    blobs = {**files, **{f"output of {k}": v.encode() for k, v in outputs.items()}}
    for pin in (secret, renewed_pin):
        assert not leaks(pin, blobs), f"PIN leaked into {leaks(pin, blobs)}"
    assert [name for name in leaks(puk, blobs) if not name.endswith("card-unblock.json")] == []
