"""Login by NHS certificate identity, over both stores: a production-style service (revocation required) trusting
the NHS-shaped test PKI (root -> issuing CA -> card certificates, CRLs as files) maps a VALIDATED card certificate
to its user by the 12-digit NHS user UUID in the subject, so a renewed or replacement card logs in as the same user
without being registered again; a revoked, foreign, expired or wrongly-used certificate never does, whatever UUID
it carries; a certificate without the UUID is refused in words that say so. Real HTTP on loopback for the login
itself (challenge, card signature, session) and its audit record; the service runs on a fixed clock."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from app.protocol import login_message
from app.service.core.auth import AuthError, token_hash
from app.service.core.context import LOGIN_ACTION
from app.service.runtime import Service, ServiceConfig, build_service
from app.service.store import RoleProfile, Store
from tests.clock import Clock
from tests.support.nhs_pki import CardCredential, NhsTestPki, make_foreign_pki
from tests.support.service.live import LIVE_LIMITS, free_port, running

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
ADA = "555000111222"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def signature(card: CardCredential, nonce: str, audience: str) -> str:
    message = login_message(nonce, audience)
    if isinstance(card.key, rsa.RSAPrivateKey):
        return b64(card.key.sign(message, padding.PKCS1v15(), hashes.SHA256()))
    return b64(card.key.sign(message, ec.ECDSA(hashes.SHA256())))


@dataclass
class World:
    pki: NhsTestPki
    store: Store
    service: Service
    clock: Clock
    url: str = ""

    def login(self, card: CardCredential, urid: str | None = "ada-clin") -> str:
        """A session token from the service's own login steps (no HTTP)."""
        auth = self.service.context.auth
        challenge = auth.challenge(b64(card.der()))
        return auth.complete(challenge.nonce, signature(card, challenge.nonce, auth.audience), b64(card.der()),
                             urid).token

    def refusal(self, card: CardCredential) -> AuthError:
        with pytest.raises(AuthError) as err:
            self.login(card)
        assert (err.value.status, err.value.reason) == (403, "login-refused")
        return err.value

    def http_login(self, card: CardCredential, urid: str = "ada-clin") -> httpx.Response:
        with httpx.Client(base_url=self.url) as client:
            answer = client.post("/auth/challenge", json={"certificate": b64(card.der())}).json()
            return client.post("/auth/session", json={
                "nonce": answer["nonce"], "signature": signature(card, answer["nonce"], answer["audience"]),
                "certificate": b64(card.der()), "urid": urid}, headers={"X-Request-ID": "login-1"})


def production(pki: NhsTestPki, attribute: str | None) -> ServiceConfig:
    """The site's trust as files: the NHS root as anchor, the issuing CA as intermediate, both CRLs (revocation
    required), and the root's identity attribute (None: not configured, so the default)."""
    identity = () if attribute is None else ((str(pki.root_path), attribute),)
    return ServiceConfig(database="unused://", base_url="https://spine.example.nhs.uk", anchors=(str(pki.root_path),),
                         intermediates=(str(pki.issuing_path),), crls=tuple(map(str, pki.crl_paths)),
                         identity=identity, limits=LIVE_LIMITS)


@contextmanager
def world(store: Store, tmp_path: Path, attribute: str | None = "serialNumber") -> Iterator[World]:
    clock = Clock(T0)
    pki = NhsTestPki.create(tmp_path / "nhs", now=T0)
    store.add_user("ada", "Dr Ada Lovelace", nhs_uuids=[ADA])  # registered by UUID only: no card, no certificate
    store.add_role_profile(RoleProfile("ada-clin", "ada", "A81001", "Test Surgery", "S8000:G8000:R8000",
                                       "Clinical Practitioner Access Role", ("B0264",)))
    service = build_service(production(pki, attribute), store, clock=clock)
    try:
        yield World(pki, store, service, clock)
    finally:
        for worker in (service.purger, service.deliverer):
            if worker is not None:
                worker.stop()
        service.context.cpis_writer.close()
        service.audit.close()


@contextmanager
def over_http(w: World) -> Iterator[World]:
    port = free_port()
    with running(w.service.app, LIVE_LIMITS, port):
        w.url = f"http://127.0.0.1:{port}"
        yield w


def diagnostics(answer: httpx.Response) -> str:
    return answer.json()["issue"][0]["diagnostics"]


# --- renewal and replacement ----------------------------------------------------------------------------------


def test_a_renewed_card_with_the_same_uuid_logs_in_as_the_same_user_over_http(store, tmp_path):
    with world(store, tmp_path) as w, over_http(w):
        first = w.pki.issue_card(name="Dr Ada Lovelace", uuid=ADA, now=T0, alg="rsa2048")
        answer = w.http_login(first)
        assert answer.status_code == 201, answer.text
        assert answer.json()["user"] == {"id": "ada", "name": "Dr Ada Lovelace"}

        w.clock.advance(days=1)
        w.pki.publish_crls(w.clock())
        renewed = w.pki.renew(first, now=w.clock(), alg="p256")  # a new key, serial and certificate; same UUID
        again = w.http_login(renewed)
        assert again.status_code == 201, again.text
        assert again.json()["user"]["id"] == "ada"
        assert store.get_user("ada").cert_fingerprints == ()  # nobody registered either certificate

        logins = store.query_audit(user_id="ada", action=LOGIN_ACTION, limit=5)  # newest first
        assert [r.details["cert_serial"] for r in logins] == [format(c.serial, "x") for c in (renewed, first)]
        assert all(r.details["nhs_uuid"] == ADA and r.details["matched_by"] == "nhs-uuid" for r in logins)
        assert logins[0].details["identity_attribute"] == "serialNumber"
        assert (logins[0].outcome, logins[0].role_profile_id, logins[0].org) == ("201", "ada-clin", "A81001")
        assert logins[0].request_id == "login-1"
        assert store.verify_audit().ok


def test_an_anchor_without_configured_identity_reads_serial_number(store, tmp_path):
    with world(store, tmp_path, attribute=None) as w:
        assert w.login(w.pki.issue_card(name="Ada", uuid=ADA, now=T0, alg="p256"))
        uid_only = w.pki.issue_card(name="Ada", uuid=ADA, now=T0, alg="p256", attribute="UID")
        assert "has no NHS user UUID in the subject's serialNumber" in w.refusal(uid_only).message


def test_an_anchor_configured_for_uid_reads_uid(store, tmp_path):
    with world(store, tmp_path, attribute="UID") as w:
        assert w.login(w.pki.issue_card(name="Ada", uuid=ADA, now=T0, alg="p256", attribute="UID"))
        by_serial = w.pki.issue_card(name="Ada", uuid=ADA, now=T0, alg="p256")  # not where this anchor names it
        assert "has no NHS user UUID in the subject's UID" in w.refusal(by_serial).message


# --- refusals -------------------------------------------------------------------------------------------------


def test_a_revoked_certificate_is_refused_at_once_and_its_sessions_end(store, tmp_path):
    with world(store, tmp_path) as w:
        auth = w.service.context.auth
        card = w.pki.issue_card(name="Ada", uuid=ADA, now=T0, alg="p256")
        spare = w.pki.issue_card(name="Ada", uuid=ADA, now=T0, alg="p256")  # a replacement card, same person
        token = w.login(card)
        assert auth.authenticate(f"Bearer {token}", "ada-clin").user.id == "ada"

        w.clock.advance(minutes=1)
        w.pki.revoke(card, now=w.clock())  # the issuing CA's CRL file is rewritten; the service re-reads it
        with pytest.raises(AuthError) as err:
            auth.authenticate(f"Bearer {token}", "ada-clin")
        assert (err.value.status, err.value.reason) == (401, "certificate-revoked")
        assert store.get_session(token_hash(token), now=w.clock()) is None  # ended in the database
        assert w.refusal(card).__cause__.reason == "certificate-revoked"  # its registered UUID does not help
        assert w.login(spare)  # the person's other card is not affected

        w.clock.advance(minutes=1)
        w.pki.revoke_issuing_ca(now=w.clock())  # the root's CRL revokes the issuing CA: every card below it
        assert w.refusal(spare).__cause__.reason == "certificate-revoked"


@pytest.mark.parametrize("impostor", [False, True], ids=["foreign-names", "same-names"])
def test_a_certificate_from_a_ca_not_in_the_anchors_is_refused(store, tmp_path, impostor):
    with world(store, tmp_path) as w:
        foreign = make_foreign_pki(tmp_path / "foreign", now=T0, impostor=impostor)
        card = foreign.issue_card(name="Dr Ada Lovelace", uuid=ADA, now=T0, alg="p256")  # the registered UUID
        assert w.refusal(card).__cause__.reason == "certificate-untrusted-issuer"
        assert store.query_audit(action=LOGIN_ACTION, limit=5) == []


def test_a_certificate_without_the_uuid_is_refused_in_words_that_say_so(store, tmp_path):
    with world(store, tmp_path) as w, over_http(w):
        bare = w.pki.issue_card(name="Dr Ada Lovelace", uuid=None, now=T0, alg="p256", attribute="none")
        answer = w.http_login(bare)
        assert answer.status_code == 403, answer.text
        text = diagnostics(answer)
        assert "has no NHS user UUID in the subject's serialNumber" in text
        assert "ask your registration authority to renew the card's certificates" in text

        malformed = w.pki.issue_card(name="Dr Ada Lovelace", uuid=ADA[:-1], now=T0, alg="p256")
        answer = w.http_login(malformed)
        assert answer.status_code == 403 and "is not an NHS user UUID (12 digits)" in diagnostics(answer)

        unknown = w.pki.issue_card(name="Dr Nobody", uuid="555000999999", now=T0, alg="p256")
        answer = w.http_login(unknown)  # a good certificate nobody registered: the one general refusal
        assert answer.status_code == 403 and "555000999999" not in answer.text
        assert "the service's log names the reason" in diagnostics(answer)


def test_a_certificate_registered_by_fingerprint_needs_no_uuid(store, tmp_path):
    from app.service.core.auth import fingerprint

    with world(store, tmp_path) as w:
        bare = w.pki.issue_card(name="Dr Ada Lovelace", uuid=None, now=T0, alg="p256", attribute="none")
        store.add_credentials("ada", cert_fingerprints=[fingerprint(bare.certificate)])
        auth = w.service.context.auth
        challenge = auth.challenge(b64(bare.der()))
        issued = auth.complete(challenge.nonce, signature(bare, challenge.nonce, auth.audience), b64(bare.der()))
        assert issued.user.id == "ada" and issued.identity is not None
        assert issued.identity.audit_details() == {  # what the login's audit record says (the HTTP route writes it)
            "matched_by": "fingerprint", "identity_attribute": "serialNumber",
            "cert_issuer": bare.certificate.issuer.rfc4514_string(), "cert_serial": format(bare.serial, "x")}


def test_the_uuid_is_looked_at_only_after_validity_and_key_usage_hold(store, tmp_path):
    with world(store, tmp_path) as w:
        no_client_auth = w.pki.issue_card(name="Ada", uuid=ADA, now=T0, alg="p256", client_auth=False)
        assert w.refusal(no_client_auth).__cause__.reason == "certificate-wrong-usage"
        no_signature = w.pki.issue_card(name="Ada", uuid=ADA, now=T0, alg="p256", digital_signature=False)
        assert w.refusal(no_signature).__cause__.reason == "certificate-wrong-usage"
        short = w.pki.issue_card(name="Ada", uuid=ADA, now=T0, alg="p256", lifetime=timedelta(days=1))
        w.clock.advance(days=2)
        w.pki.publish_crls(w.clock())
        assert w.refusal(short).__cause__.reason == "certificate-expired"
        store.deactivate_user("ada")
        current = w.pki.issue_card(name="Ada", uuid=ADA, now=w.clock(), alg="p256")
        assert w.refusal(current).__cause__.reason == "user-inactive"
