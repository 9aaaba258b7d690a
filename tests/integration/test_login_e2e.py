"""The whole trust path as a user runs it: card in pcscd's reader, service in its own process, ``spinedesk login``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from app.protocol import PDS_BASE

from .conftest import PIN, READER0, free_port, spinedesk, wait_card_state

pytestmark = pytest.mark.pcsc
ROOT = Path(__file__).parents[2]


def test_card_login_through_pcscd_then_pds_read(pcscd, env, service, tmp_path):
    url, db = service
    card_file = tmp_path / "card.json"
    assert spinedesk("card", "issue", "--out", str(card_file), "--name", "Dr E2E", "--alg", "p256", "--pin-stdin",
                     env=env, input=PIN + "\n").returncode == 0
    assert spinedesk("service", "--database", db, "users", "add", "--id", "e2e", "--name", "Dr E2E",
                     "--card-file", str(card_file), env=env).returncode == 0
    for urid in ("e2e-clin", "e2e-other"):  # two roles: the token works for the one chosen with --role only
        added = spinedesk("service", "--database", db, "users", "add-role", "--user", "e2e", "--urid", urid,
                          "--org", "A81001", "--org-name", "Training Surgery", "--role", "S8000:G8000:R8000", env=env)
        assert added.returncode == 0, added.stderr
    proc = subprocess.Popen([sys.executable, "-m", "app", "card", "insert", str(card_file)], cwd=ROOT,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_card_state(pcscd, READER0, True, timeout=10)
        wrong = spinedesk("login", "--service-url", url, "--pin-stdin", env=env, input="99999999\n")
        assert wrong.returncode == 1 and "Incorrect PIN. You have 2 tries left." in wrong.stderr
        relayed = spinedesk("login", "--service-url", url.replace("127.0.0.1", "localhost"), "--pin-stdin",
                            env=env, input="99999999\n")  # the service names 127.0.0.1 as its audience
        assert relayed.returncode == 1 and "sign a login for another service" in relayed.stderr, relayed.stderr
        assert "Incorrect PIN" not in relayed.stderr  # stopped before the PIN reached the card
        login = spinedesk("login", "--service-url", url, "--role", "e2e-clin", "--pin-stdin", env=env,
                          input=PIN + "\n")
        assert login.returncode == 0, login.stderr
        token = login.stdout.strip()
        assert "Dr E2E" in login.stderr and "e2e-clin" in login.stderr and PIN not in login.stderr + login.stdout
        headers = {"Authorization": f"Bearer {token}", "NHSD-Session-URID": "e2e-clin",
                   "X-Request-ID": str(uuid.uuid4())}
        r = httpx.get(f"{url}{PDS_BASE}/Patient/9000000009", headers=headers)
        assert r.status_code == 200 and r.json()["id"] == "9000000009"
        other = httpx.get(f"{url}{PDS_BASE}/Patient/9000000009", headers={**headers, "NHSD-Session-URID": "e2e-other"})
        assert other.status_code == 403, other.text  # the user's own other role: a new login is needed
        # the card forgot the PIN when login finished: it must be asked again
        from app.card.piv import PivSession

        with pcscd.connect(READER0) as conn:
            session = PivSession(conn)
            session.select()
            assert not session.pin_status().verified
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    verify = spinedesk("service", "--database", db, "audit", "verify", env=env)
    assert verify.returncode == 0 and "Audit chain intact" in verify.stdout


def test_login_against_a_dead_service_says_what_to_do(pcscd, env, tmp_path, insert, rsa_card):
    insert(rsa_card)
    result = spinedesk("login", "--service-url", f"http://127.0.0.1:{free_port()}", "--pin-stdin", env=env,
                       input=PIN + "\n")
    assert result.returncode == 1
    assert "cannot be reached" in result.stderr and "Traceback" not in result.stderr
