"""The login protocol's three hardenings, over both stores, with real keys, certificates and the real CA:

1. a session is bound to the role profile (URID) chosen for it: a request naming another of the user's roles with
   that token is refused (403), and the role is chosen once (at session creation or by one follow-up call);
2. the signed login message names the service it is meant for (its audience): a signature made for service A is
   refused by service B, even when both trust the same card and hold the same user;
3. the challenge endpoint answers the same for a good certificate and for unknown, revoked and inactive ones;
   the refusal comes only at session creation, after the signature is verified, with one generic message.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.pki import TrainingCA
from app.protocol import AUTH_CHALLENGE_PATH, AUTH_ROLE_PATH, AUTH_SESSION_PATH, PDS_BASE, login_message
from app.service.core.auth import AuthError, AuthService
from app.service.storage import open_store
from app.service.store import RoleProfile
from tests.support.service.live import serve

PATIENT = f"{PDS_BASE}/Patient/9000000009"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return TrainingCA.load_or_create(tmp_path_factory.mktemp("pki"))


class Card:
    def __init__(self, ca: TrainingCA) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.uuid = uuid.uuid4()
        self.cert = ca.issue_card_certificate(self.key.public_key(), name="Dr Hardened", card_uuid=self.uuid,
                                              days=30)
        self.b64 = b64(self.cert.public_bytes(serialization.Encoding.DER))

    def sign(self, nonce: str, audience: str) -> str:
        return b64(self.key.sign(login_message(nonce, audience), ec.ECDSA(hashes.SHA256())))


def http_login(http: httpx.Client, card: Card, audience: str, **extra: str) -> httpx.Response:
    challenge = http.post(AUTH_CHALLENGE_PATH, json={"certificate": card.b64})
    assert challenge.status_code == 200, challenge.text
    nonce = challenge.json()["nonce"]
    return http.post(AUTH_SESSION_PATH, json={"nonce": nonce, "signature": card.sign(nonce, audience),
                                              "certificate": card.b64, **extra})


def headers(token: str, urid: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "NHSD-Session-URID": urid, "X-Request-ID": str(uuid.uuid4())}


# --- 1. the token carries the role chosen at login -----------------------------------------------------------------

def test_a_token_works_only_for_the_role_chosen_at_login(store, ca):
    card = Card(ca)
    with serve(store, ca, patients=5) as live, httpx.Client(base_url=live.url) as http:
        store.add_credentials("alice", card_uuids=[str(card.uuid)])  # alice holds clin-1 and clerk-1
        created = http_login(http, card, live.url, urid="clin-1")
        assert created.status_code == 201, created.text
        token = created.json()["token"]
        assert created.json()["role"]["urid"] == "clin-1"
        assert http.get(PATIENT, headers=headers(token, "clin-1")).status_code == 200

        other = http.get(PATIENT, headers=headers(token, "clerk-1"))  # alice's own other role: still refused
        assert other.status_code == 403, other.text
        assert other.json()["resourceType"] == "OperationOutcome"
        assert "log in again" in other.json()["issue"][0]["diagnostics"]


def test_the_role_is_selected_once_after_login_and_cannot_be_changed(store, ca):
    card = Card(ca)
    with serve(store, ca, patients=5) as live, httpx.Client(base_url=live.url) as http:
        store.add_credentials("alice", card_uuids=[str(card.uuid)])
        created = http_login(http, card, live.url)
        assert created.status_code == 201, created.text
        token = created.json()["token"]
        assert {r["urid"] for r in created.json()["role_profiles"]} == {"clin-1", "clerk-1"}

        unselected = http.get(PATIENT, headers=headers(token, "clin-1"))  # no role chosen yet: nothing works
        assert unselected.status_code == 403 and "select" in unselected.json()["issue"][0]["diagnostics"]

        bearer = {"Authorization": f"Bearer {token}"}
        assert http.post(AUTH_ROLE_PATH, json={"urid": "po-1"}, headers=bearer).status_code == 403  # bob's role
        chosen = http.post(AUTH_ROLE_PATH, json={"urid": "clerk-1"}, headers=bearer)
        assert chosen.status_code == 200, chosen.text
        assert http.post(AUTH_ROLE_PATH, json={"urid": "clerk-1"}, headers=bearer).status_code == 200  # a retry
        changed = http.post(AUTH_ROLE_PATH, json={"urid": "clin-1"}, headers=bearer)
        assert changed.status_code == 403 and "log in again" in changed.json()["issue"][0]["diagnostics"]

        assert http.get(PATIENT, headers=headers(token, "clerk-1")).status_code == 200
        assert http.get(PATIENT, headers=headers(token, "clin-1")).status_code == 403


# --- 2. the signed message names its audience ----------------------------------------------------------------------

def test_a_signature_made_for_service_a_is_refused_by_service_b(store, ca):
    card = Card(ca)
    store.add_user("u1", "Dr Hardened", card_uuids=[str(card.uuid)])
    store.add_role_profile(RoleProfile("u1-r", "u1", "A81001", "Surgery", "S8000:G8000:R8000", "Clin", ("B0264",)))
    service_a = AuthService(store, ca.trust_store(), audience="https://a.example.nhs.uk")
    service_b = AuthService(store, ca.trust_store(), audience="https://b.example.nhs.uk")
    assert service_b.audience == "https://b.example.nhs.uk"

    relayed = service_b.challenge(card.b64)  # a rogue service A relays B's challenge to the user's client
    with pytest.raises(AuthError) as err:
        service_b.complete(relayed.nonce, card.sign(relayed.nonce, service_a.audience), card.b64)
    assert (err.value.status, err.value.reason) == (401, "bad-signature")

    fresh = service_b.challenge(card.b64)
    assert service_b.complete(fresh.nonce, card.sign(fresh.nonce, service_b.audience), card.b64).user.id == "u1"


def test_the_challenge_names_the_services_audience(store, ca):
    with serve(store, ca, patients=5) as live:
        answer = httpx.post(f"{live.url}{AUTH_CHALLENGE_PATH}", json={"certificate": b64(live.certs["bob"])})
        assert answer.status_code == 200 and answer.json()["audience"] == live.url


# --- 3. the challenge tells nothing about the certificate ----------------------------------------------------------

def test_the_challenge_answers_alike_for_good_unknown_revoked_and_inactive_certificates(store, ca, tmp_path):
    good, unknown, revoked, inactive = Card(ca), Card(ca), Card(ca), Card(ca)
    foreign = Card(TrainingCA.load_or_create(tmp_path / "foreign"))
    with serve(store, ca, patients=5) as live, httpx.Client(base_url=live.url) as http:
        store.add_credentials("alice", card_uuids=[str(good.uuid), str(revoked.uuid)])
        store.add_user("gone", "Dr Gone", card_uuids=[str(inactive.uuid)])
        store.add_role_profile(RoleProfile("gone-1", "gone", "A81001", "S", "S8000:G8000:R8000", "C", ("B0264",)))
        store.deactivate_user("gone")
        ca.revoke(revoked.cert.serial_number)

        answers = {}
        for name, card in (("good", good), ("unknown", unknown), ("revoked", revoked), ("inactive", inactive),
                           ("foreign", foreign)):
            answer = http.post(AUTH_CHALLENGE_PATH, json={"certificate": card.b64})
            answers[name] = (answer.status_code, sorted(answer.json()), answer.headers.get("content-type"))
        assert len(set(map(repr, answers.values()))) == 1, answers
        assert answers["good"][0] == 200

        refusals = set()
        for card in (unknown, revoked, inactive, foreign):  # refused only now, all with the same words
            refused = http_login(http, card, live.url)
            assert refused.status_code == 403, refused.text
            refusals.add(refused.json()["issue"][0]["diagnostics"])
        assert len(refusals) == 1, refusals
        assert not any(word in next(iter(refusals)) for word in ("revoked", "registered", "inactive", "issuer"))

        forged = http.post(AUTH_CHALLENGE_PATH, json={"certificate": unknown.b64}).json()["nonce"]
        bad = http.post(AUTH_SESSION_PATH, json={"nonce": forged, "signature": good.sign(forged, live.url),
                                                 "certificate": unknown.b64})
        assert bad.status_code == 401 and "does not verify" in bad.json()["issue"][0]["diagnostics"]

        assert http_login(http, good, live.url, urid="clin-1").status_code == 201


def test_the_detailed_refusal_goes_to_the_log_not_the_caller(store, ca, caplog):
    card = Card(ca)
    auth = AuthService(store, ca.trust_store(), audience="https://spine.example.nhs.uk")
    challenge = auth.challenge(card.b64)
    with caplog.at_level("INFO", logger="app.service.core.auth"), pytest.raises(AuthError) as err:
        auth.complete(challenge.nonce, card.sign(challenge.nonce, auth.audience), card.b64)
    assert (err.value.status, err.value.reason) == (403, "login-refused")
    assert "registered" not in err.value.message
    assert "unknown-card" in caplog.text


# --- the upgrade --------------------------------------------------------------------------------------------------

def test_upgrading_ends_sessions_bound_to_no_role_and_open_challenges(store_url, store_kind, raw_sql, monkeypatch):
    """Migration 7 binds sessions to a role and takes the user out of challenges: what was open ends."""
    from app.service.storage import schema_postgres, schema_sqlite

    module = schema_sqlite if store_kind == "sqlite" else schema_postgres
    current = module.MIGRATIONS
    assert current[6].name == "session role, challenges without a user"
    monkeypatch.setattr(module, "MIGRATIONS", current[:6])  # the release before migration 7
    later = datetime.now(UTC) + timedelta(hours=1)
    stamp = later.isoformat() if store_kind == "sqlite" else later
    with open_store(store_url) as old:
        assert old.schema_version() == 6
    # the user written as that release wrote it (this release's store reads tables that schema does not have yet)
    raw_sql("INSERT INTO users (id, name, active, created_at) VALUES (?, ?, TRUE, ?)", ("u1", "Dr Before", stamp))
    raw_sql("INSERT INTO role_profiles (id, user_id, org_ods, org_name, role_code, role_name, activity_codes) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", ("u1-r", "u1", "A81001", "S", "S8000:G8000:R8000", "C", '["B0264"]'))
    raw_sql("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
            ("before-upgrade", "u1", stamp, stamp))
    raw_sql("INSERT INTO challenges (nonce, cert_fingerprint, user_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
            ("before-upgrade", "ab" * 32, "u1", stamp, stamp))
    monkeypatch.setattr(module, "MIGRATIONS", current)
    with open_store(store_url) as upgraded:
        assert upgraded.schema_version() == current[-1].version
        assert upgraded.get_session("before-upgrade", now=datetime.now(UTC)) is None
        assert upgraded.consume_challenge("before-upgrade") is None
        upgraded.create_session("after", "u1", later)
        assert upgraded.bind_session_role("after", "u1-r") == "u1-r"


def test_the_audience_is_the_public_url_then_the_site_url_then_the_services_own_address(tmp_path):
    import argparse
    from pathlib import Path

    from app.cli.service import _config, add_parser
    from app.config import Mode, Paths, Settings

    def args(*argv: str) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        add_parser(parser.add_subparsers(dest="command"))
        return parser.parse_args(["service", "--database", "sqlite:///unused.db", "--port", "9443", *argv])

    paths = Paths(tmp_path, tmp_path, tmp_path, tmp_path / "site.toml")
    production = Settings(paths, Mode.PRODUCTION, "https://spine.example.nhs.uk", trust_anchors=(Path("/r.pem"),))
    tls = ("--tls-cert", "c.pem", "--tls-key", "k.pem")
    assert _config(args(*tls), production).audience == "https://spine.example.nhs.uk"  # the site's [service] url
    assert _config(args(*tls, "--public-url", "https://LB.example.nhs.uk:443/"), production).audience == \
        "https://lb.example.nhs.uk"
    assert _config(args(), Settings(paths)).audience == "http://127.0.0.1:9443"  # training: its own address
    with pytest.raises(SystemExit):  # argparse refuses it, saying why
        args("--public-url", "spine.example.nhs.uk")
