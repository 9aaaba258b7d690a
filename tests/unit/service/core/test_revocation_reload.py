"""The reload entry points: SIGHUP (a flag the next request acts on) and ``spinedesk service reload-crl``.

A reload re-reads every CRL file even when nothing about the file seems to have changed, and ends, in the
database, the sessions of every certificate the CRLs now revoke — including sessions another process opened
before it had read the revocation. Everything here runs on the real clock (the CA's default clock and the
service's); the stale case dates its CA from the real clock too, never from a fixed date.
"""

from __future__ import annotations

import io
import signal
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.__main__ import main
from app.pki import TrainingCA
from app.service.core.auth import token_hash
from app.service.runtime import ServiceConfig
from app.service.storage import open_store
from tests.unit.service.core.test_revocation_live import Card, publish, running

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")


def test_sighup_makes_the_process_reread_its_crls_and_end_sessions_of_revoked_certificates(store, tmp_path):
    from app.pki.revocation_view import CertRef
    from app.service.runtime import reload_on_sighup

    ca = TrainingCA.load_or_create(tmp_path / "pki")
    config = ServiceConfig(database="unused://", base_url="http://127.0.0.1:8443", training_pki=str(ca.directory))
    with running(config, store, lambda: datetime.now(UTC)) as service:
        auth = service.context.auth
        alice, bob = Card(ca, store, "alice"), Card(ca, store, "bob")
        bob_token = bob.login(auth)
        ca.revoke(alice.cert.serial_number)
        auth.authenticate(f"Bearer {bob_token}", bob.urid)  # this process has read the revocation now
        generation = auth.trust.current(datetime.now(UTC)).generation
        # a session for alice written by a process that had not read the new CRL yet
        ref = CertRef.of(alice.cert)
        store.create_session("late-session", "alice", datetime.now(UTC) + timedelta(hours=1),
                             cert_issuer=ref.issuer, cert_serial=ref.serial, role_profile_id=alice.urid)

        previous = signal.getsignal(signal.SIGHUP)
        try:
            reload_on_sighup(auth.trust)
            handler = signal.getsignal(signal.SIGHUP)
            assert callable(handler)
            handler(signal.SIGHUP, None)  # what the signal does, without sending one to the test runner
        finally:
            signal.signal(signal.SIGHUP, previous)

        auth.authenticate(f"Bearer {bob_token}", bob.urid)  # the next request in this process does the reload
        assert auth.trust.current(datetime.now(UTC)).generation == generation + 1
        assert store.get_session("late-session") is None


def session_of(card: Card, store, now: datetime) -> str:
    """A session as a card login records it (what /auth/session stores), made directly in ``store``."""
    from app.pki.revocation_view import CertRef

    token = uuid.uuid4().hex
    ref = CertRef.of(card.cert)
    store.create_session(token_hash(token), card.user, now + timedelta(hours=1), cert_issuer=ref.issuer,
                         cert_serial=ref.serial, role_profile_id=card.urid)
    return token


def _training_env(monkeypatch, tmp_path):
    data = tmp_path / "data"
    monkeypatch.setenv("SPINEDESK_DATA_DIR", str(data))
    monkeypatch.setenv("SPINEDESK_SITE_CONFIG", str(tmp_path / "no-site.toml"))
    return data


def test_reload_crl_command_ends_sessions_of_revoked_certificates(tmp_path, monkeypatch, capsys):
    data = _training_env(monkeypatch, tmp_path)
    ca = TrainingCA.load_or_create(data / "training-pki")
    url = f"sqlite:///{tmp_path / 'service.db'}"
    with open_store(url) as store:
        card = Card(ca, store)
        token = session_of(card, store, datetime.now(UTC))
        other = session_of(Card(ca, store, "u2"), store, datetime.now(UTC))
    ca.revoke(card.cert.serial_number)

    out = io.StringIO()
    assert main(["service", "--database", url, "reload-crl"], stdout=out) == 0, capsys.readouterr().err
    text = out.getvalue()
    assert "crl.pem" in text and "Spine Desk Training Issuing CA 1" in text and "next update" in text
    assert "1 revoked" in text and "Ended 1 session" in text
    with open_store(url) as store:
        assert store.get_session(token_hash(token)) is None
        assert store.get_session(token_hash(other)) is not None


def test_reload_crl_command_says_what_to_do_about_a_stale_crl(tmp_path, monkeypatch):
    monkeypatch.setenv("SPINEDESK_DATA_DIR", str(tmp_path / "data"))
    ten_days_ago = datetime.now(UTC) - timedelta(days=10)  # from the real clock: the CRL ran out 3 days ago
    ca = TrainingCA.load_or_create(tmp_path / "ca", clock=lambda: ten_days_ago)
    crl = tmp_path / "site" / "issuing.crl"
    publish(ca, crl)
    site = tmp_path / "spinedesk.toml"
    site.write_text(f'[service]\nurl = "https://spine.example.invalid"\n'
                    f'[trust]\nanchors = ["{ca.directory}/issuing.pem"]\ncrls = ["{crl}"]\n', encoding="utf-8")
    monkeypatch.setenv("SPINEDESK_SITE_CONFIG", str(site))

    out = io.StringIO()
    assert main(["service", "--database", f"sqlite:///{tmp_path / 'service.db'}", "reload-crl"], stdout=out) == 1
    assert f"IT must publish a fresh CRL to {crl}" in out.getvalue()
    assert "Revocation information is out of date" in out.getvalue()


def test_upgrading_ends_sessions_that_recorded_no_certificate(store_url, store_kind, raw_sql, monkeypatch):
    """Migration 5 adds the login certificate to sessions; a session from before it names none, so it ends."""
    from app.service.storage import schema_postgres, schema_sqlite

    module = schema_sqlite if store_kind == "sqlite" else schema_postgres
    current = module.MIGRATIONS
    monkeypatch.setattr(module, "MIGRATIONS", current[:4])
    with open_store(store_url) as old:
        assert old.schema_version() == 4
    later = datetime.now(UTC) + timedelta(hours=1)
    # the user written as that release wrote it (this release's store reads tables that schema does not have yet)
    raw_sql("INSERT INTO users (id, name, active, created_at) VALUES (?, ?, TRUE, ?)",
            ("u1", "Dr Before", later.isoformat() if store_kind == "sqlite" else later))
    raw_sql("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
            ("before-upgrade", "u1", later.isoformat() if store_kind == "sqlite" else later,
             later.isoformat() if store_kind == "sqlite" else later))
    monkeypatch.setattr(module, "MIGRATIONS", current)
    with open_store(store_url) as upgraded:
        assert upgraded.schema_version() == current[-1].version
        assert upgraded.get_session("before-upgrade", now=datetime.now(UTC)) is None
    assert raw_sql("SELECT COUNT(*) FROM sessions") == [(0,)]
