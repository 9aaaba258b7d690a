"""Revocation while the service runs, over both stores: a certificate revoked in the CA (its CRL republished) is
refused at the next login AND its live tokens are refused at once and ended in the database; a CRL that runs out
is replaced from disk without a restart; a stale CRL is refused with its own reason that tells IT what to do.

The existing tests/unit/service/core/test_auth.py builds a fresh service after each revocation; these never restart one.
Tests that move time build the CA and the service on the same fixed clock; the HTTP test uses the real clock
throughout (the CA's default clock and the service's).
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.pki import TrainingCA
from app.protocol import login_message
from app.service.core.auth import AuthError, AuthService, token_hash
from app.service.core.context import access_denied
from app.service.runtime import Service, ServiceConfig, build_service
from app.service.store import RoleProfile, Store
from tests.clock import Clock
from tests.support.service.live import serve

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
URID = "rev-urid-1"




class Card:
    def __init__(self, ca: TrainingCA, store: Store, user: str = "u1") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.uuid = uuid.uuid4()
        self.cert = ca.issue_card_certificate(self.key.public_key(), name=f"Dr {user}", card_uuid=self.uuid)
        self.b64 = base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()
        store.add_user(user, f"Dr {user}", card_uuids=[str(self.uuid)])
        store.add_role_profile(RoleProfile(f"{URID}-{user}", user, "A81001", "Test Surgery", "S8000:G8000:R8000",
                                           "Clinical Practitioner Access Role", ("B0264",)))
        self.user, self.urid = user, f"{URID}-{user}"

    def login(self, auth: AuthService) -> str:
        challenge = auth.challenge(self.b64)
        signature = self.key.sign(login_message(challenge.nonce, auth.audience), ec.ECDSA(hashes.SHA256()))
        return auth.complete(challenge.nonce, base64.b64encode(signature).decode(), self.b64, self.urid).token


def publish(ca: TrainingCA, path: Path) -> None:
    """What IT does: copy the CA's current CRL to the site's CRL file (a new file renamed over the old one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".new")
    temp.write_bytes(ca.crl().public_bytes(serialization.Encoding.PEM))
    os.replace(temp, path)


@contextmanager
def running(config: ServiceConfig, store: Store, clock: Clock) -> Iterator[Service]:
    service = build_service(config, store, clock=clock)
    try:
        yield service
    finally:
        if service.purger is not None:
            service.purger.stop()
        if service.deliverer is not None:
            service.deliverer.stop()
        service.context.cpis_writer.close()
        service.audit.close()


def production_config(ca: TrainingCA, crl: Path) -> ServiceConfig:
    """A production-style service (revocation required) reading its trust from files: the training issuing CA as
    its anchor (the training root publishes no CRL, which a production path through it would need), its CRL at
    ``crl``."""
    return ServiceConfig(database="unused://", base_url="https://spine.example.nhs.uk",
                         anchors=(str(ca.directory / "issuing.pem"),), crls=(str(crl),))


def refused(call, *args) -> AuthError:
    with pytest.raises(AuthError) as err:
        call(*args)
    return err.value


# --- (a) a revocation reaches a running service: the next login and the live token -------------------------------

def test_revocation_while_running_refuses_the_next_login_and_the_live_token_at_once(store, tmp_path):
    ca = TrainingCA.load_or_create(tmp_path / "pki")
    with serve(store, ca, patients=5) as live:
        alice = live.login("alice")
        assert httpx.get(live.pds("/Patient/9000000009"), headers=live.headers(alice, "clin-1")).status_code == 200
        ca.revoke(x509.load_der_x509_certificate(live.certs["alice"]).serial_number)  # republishes crl.pem

        answer = httpx.get(live.pds("/Patient/9000000009"), headers=live.headers(alice, "clin-1"))
        assert answer.status_code == 401, answer.text
        assert "revoked" in answer.json()["issue"][0]["diagnostics"]
        assert store.get_session(token_hash(alice)) is None  # ended in the database, for every process
        records = store.query_audit(user_id="alice", limit=5)
        assert records[0].outcome == "401" and records[0].details["reason"] == "certificate-revoked"
        with pytest.raises(httpx.HTTPStatusError) as login:  # refused after the signature, in general words
            live.login("alice")
        assert login.value.response.status_code == 403
        bob = live.login("bob")  # nobody else is affected
        assert httpx.get(live.pds("/Patient/9000000009"), headers=live.headers(bob, "po-1")).status_code != 401


def test_production_service_reads_a_revocation_from_the_published_crl_file(store, tmp_path):
    clock = Clock(T0)
    ca = TrainingCA.load_or_create(tmp_path / "ca", clock=clock)
    crl = tmp_path / "site" / "issuing.crl"
    publish(ca, crl)
    with running(production_config(ca, crl), store, clock) as service:
        auth = service.context.auth
        card = Card(ca, store)
        token = card.login(auth)
        clock.advance(minutes=5)
        ca.revoke(card.cert.serial_number)
        publish(ca, crl)
        err = refused(auth.authenticate, f"Bearer {token}", card.urid)
        assert (err.status, err.reason) == (401, "certificate-revoked")
        assert store.get_session(token_hash(token), now=clock()) is None
        err = refused(card.login, auth)  # the challenge tells nothing; the login is refused after the signature
        assert (err.status, err.reason, err.__cause__.reason) == (403, "login-refused", "certificate-revoked")

        other = Card(ca, store, "u2")  # deny by default: a session that names no certificate cannot be checked
        store.create_session(token_hash("no-certificate"), "u2", clock() + timedelta(hours=1), now=clock())
        err = refused(auth.authenticate, "Bearer no-certificate", other.urid)
        assert (err.status, err.reason) == (401, "session-without-certificate")


# --- (b) and (c) a CRL past its next update: a clear refusal, then a fresh file on disk is used ------------------

def test_stale_crl_is_refused_clearly_and_a_fresh_one_on_disk_is_used_without_restart(store, tmp_path):
    clock = Clock(T0)
    ca = TrainingCA.load_or_create(tmp_path / "ca", clock=clock)  # CRL issued at T0, next update T0 + 7 days
    crl = tmp_path / "site" / "issuing.crl"
    publish(ca, crl)
    with running(production_config(ca, crl), store, clock) as service:
        auth = service.context.auth
        card = Card(ca, store)
        clock.advance(days=7, hours=-1)  # the CRL is still current: log in
        token = card.login(auth)
        clock.advance(hours=2)  # the CRL has run out and nobody has published a new one

        for err in (refused(card.login, auth), refused(auth.authenticate, f"Bearer {token}", card.urid)):
            assert (err.status, err.reason) == (503, "revocation-info-stale")
            assert "revocation information is out of date" in err.message.lower()
            assert f"publish a fresh CRL to {crl}" in err.message
            assert "Spine Desk Training Issuing CA 1" in err.message
            assert (access_denied(err).status, access_denied(err).spine_code) == (503, "SERVICE_UNAVAILABLE")

        publish(ca, crl)  # IT publishes a fresh CRL (issued now); the service is not restarted
        assert card.login(auth)
        assert auth.authenticate(f"Bearer {token}", card.urid).user.id == "u1"


def test_training_service_keeps_its_crl_current_while_it_runs(store, tmp_path):
    clock = Clock(T0)
    ca = TrainingCA.load_or_create(tmp_path / "pki", clock=clock)
    config = ServiceConfig(database="unused://", base_url="http://127.0.0.1:8443", training_pki=str(ca.directory))
    with running(config, store, clock) as service:
        auth = service.context.auth
        card = Card(ca, store)
        assert card.login(auth)
        clock.advance(days=8)  # past the next update of the CRL the service started with
        token = card.login(auth)  # the training CA republished it
        assert auth.authenticate(f"Bearer {token}", card.urid).user.id == "u1"
