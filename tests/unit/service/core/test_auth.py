"""Card login on the service side, over both stores, with real keys, real certificates and the real CA."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from app.pki import TrainingCA
from app.service.core.auth import AuthError, AuthService, fingerprint, login_message
from app.service.store import RoleProfile

URID = "555254241107"
AUDIENCE = "https://spine.example.nhs.uk"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return TrainingCA.load_or_create(tmp_path_factory.mktemp("pki"))


class Card:
    def __init__(self, ca, alg="p256", days=365, name="Dr Auth"):
        import uuid

        self.key = ec.generate_private_key(ec.SECP256R1()) if alg == "p256" else rsa.generate_private_key(65537, 2048)
        self.uuid = uuid.uuid4()
        self.cert = ca.issue_card_certificate(self.key.public_key(), name=name, card_uuid=self.uuid, days=days)
        self.cert_b64 = b64(self.cert.public_bytes(serialization.Encoding.DER))

    def sign(self, nonce: str) -> str:
        msg = login_message(nonce, AUDIENCE)
        if isinstance(self.key, rsa.RSAPrivateKey):
            return b64(self.key.sign(msg, padding.PKCS1v15(), hashes.SHA256()))
        return b64(self.key.sign(msg, ec.ECDSA(hashes.SHA256())))


@pytest.fixture
def setup(store, ca):
    card = Card(ca)
    store.add_user("u1", "Dr Auth", card_uuids=[str(card.uuid)])
    store.add_role_profile(RoleProfile(URID, "u1", "A81001", "Test Surgery", "S8000:G8000:R8000",
                                       "Clinical Practitioner Access Role", ("B0264",)))
    return AuthService(store, ca.trust_store(), audience=AUDIENCE), card


def login(auth, card, urid=URID):
    ch = auth.challenge(card.cert_b64)
    return auth.complete(ch.nonce, card.sign(ch.nonce), card.cert_b64, urid)


@pytest.mark.parametrize("alg", ["p256", "rsa2048"])
def test_login_and_authenticate(store, ca, alg):
    card = Card(ca, alg)
    store.add_user("u2", "Dr RSA", cert_fingerprints=[fingerprint(card.cert)])
    store.add_role_profile(RoleProfile("r2", "u2", "A81001", "S", "S8000:G8000:R8001", "Nurse", ("B0264",)))
    auth = AuthService(store, ca.trust_store(), audience=AUDIENCE)
    session = login(auth, card, "r2")
    principal = auth.authenticate(f"Bearer {session.token}", "r2")
    assert principal.user.id == "u2" and principal.role.id == "r2"
    assert session.token not in repr(store.get_session(principal.token_hash))  # stored hashed


def test_nonce_is_single_use(setup):
    auth, card = setup
    ch = auth.challenge(card.cert_b64)
    sig = card.sign(ch.nonce)
    auth.complete(ch.nonce, sig, card.cert_b64)
    with pytest.raises(AuthError) as err:
        auth.complete(ch.nonce, sig, card.cert_b64)
    assert (err.value.status, err.value.reason) == (401, "nonce-not-valid")


def test_expired_nonce(store, ca, setup):
    _, card = setup
    now = [datetime.now(UTC)]
    auth = AuthService(store, ca.trust_store(), audience=AUDIENCE, clock=lambda: now[0])
    ch = auth.challenge(card.cert_b64)
    now[0] += timedelta(minutes=5)
    with pytest.raises(AuthError, match="expired"):
        auth.complete(ch.nonce, card.sign(ch.nonce), card.cert_b64)


def test_bad_signature_and_other_cards_signature(setup, ca):
    auth, card = setup
    ch = auth.challenge(card.cert_b64)
    with pytest.raises(AuthError) as err:
        auth.complete(ch.nonce, Card(ca).sign(ch.nonce), card.cert_b64)
    assert err.value.reason == "bad-signature"


def test_signature_over_the_bare_nonce_is_refused(setup):
    auth, card = setup
    ch = auth.challenge(card.cert_b64)
    bare = b64(card.key.sign(ch.nonce.encode(), ec.ECDSA(hashes.SHA256())))
    with pytest.raises(AuthError, match="does not verify"):
        auth.complete(ch.nonce, bare, card.cert_b64)


def test_signature_in_the_previous_protocol_version_is_refused(setup):
    """v1 signed the context and the nonce, naming no service: such a signature is refused."""
    auth, card = setup
    ch = auth.challenge(card.cert_b64)
    v1 = b64(card.key.sign(b"SpineDesk-Login-v1\x00" + ch.nonce.encode(), ec.ECDSA(hashes.SHA256())))
    with pytest.raises(AuthError, match="does not verify"):
        auth.complete(ch.nonce, v1, card.cert_b64)


def test_certificate_swapped_between_steps(setup, store, ca):
    auth, card = setup
    other = Card(ca)
    store.add_credentials("u1", card_uuids=[str(other.uuid)])
    ch = auth.challenge(card.cert_b64)
    with pytest.raises(AuthError) as err:
        auth.complete(ch.nonce, other.sign(ch.nonce), other.cert_b64)
    assert err.value.reason == "certificate-mismatch"


def refusal(auth, card):
    """The challenge is granted whatever the card; the refusal comes after the signature, in one message."""
    ch = auth.challenge(card.cert_b64)
    with pytest.raises(AuthError) as err:
        auth.complete(ch.nonce, card.sign(ch.nonce), card.cert_b64)
    assert (err.value.status, err.value.reason) == (403, "login-refused")
    return err.value.__cause__.reason  # the detailed reason, which goes to the log


def test_unknown_foreign_expired_and_revoked_cards(setup, store, ca, tmp_path):
    auth, _ = setup
    assert refusal(auth, Card(ca)) == "unknown-card"
    foreign = Card(TrainingCA.load_or_create(tmp_path / "foreign"))
    assert refusal(auth, foreign) == "certificate-untrusted-issuer"
    no_crl = dataclasses.replace(ca.trust_store(), crls=())  # at +400 days the CRL itself would be stale
    later = AuthService(store, no_crl, audience=AUDIENCE, clock=lambda: datetime.now(UTC) + timedelta(days=400))
    assert refusal(later, Card(ca)) == "certificate-expired"
    revoked = Card(ca)
    store.add_credentials("u1", card_uuids=[str(revoked.uuid)])
    ca.revoke(revoked.cert.serial_number)
    assert refusal(AuthService(store, ca.trust_store(), audience=AUDIENCE), revoked) == "certificate-revoked"


@pytest.mark.parametrize("junk", ["", "!!!!", "A" * 20000, b64(b"not a certificate")])
def test_malformed_certificates(setup, junk):
    auth, _ = setup
    with pytest.raises(AuthError) as err:
        auth.challenge(junk)
    assert err.value.status == 401


@pytest.mark.parametrize(("header", "urid", "status", "reason"), [
    (None, URID, 401, "missing-token"),
    ("Basic abc", URID, 401, "missing-token"),
    ("Bearer forged-token", URID, 401, "session-not-valid"),
    ("VALID", None, 403, "missing-urid"),
    ("VALID", "someone-elses-urid", 403, "urid-not-session-role"),
])
def test_authenticate_denies(setup, header, urid, status, reason):
    auth, card = setup
    token = login(auth, card).token
    with pytest.raises(AuthError) as err:
        auth.authenticate(f"Bearer {token}" if header == "VALID" else header, urid)
    assert (err.value.status, err.value.reason) == (status, reason)


def test_logout_and_deactivation_end_sessions(setup, store):
    auth, card = setup
    token = login(auth, card).token
    assert auth.logout(f"Bearer {token}")
    with pytest.raises(AuthError, match="log in again"):
        auth.authenticate(f"Bearer {token}", URID)
    token = login(auth, card).token
    store.deactivate_user("u1")
    with pytest.raises(AuthError):
        auth.authenticate(f"Bearer {token}", URID)
    assert refusal(auth, card) == "user-inactive"


def test_a_login_naming_anothers_role_opens_no_session(setup, store):
    auth, card = setup
    store.add_user("u9", "Dr Other")
    store.add_role_profile(RoleProfile("other-r", "u9", "A81001", "S", "S8000:G8000:R8000", "C", ("B0264",)))
    with pytest.raises(AuthError) as err:
        login(auth, card, "other-r")
    assert (err.value.status, err.value.reason) == (403, "urid-not-yours")


def test_a_session_bound_to_a_withdrawn_role_serves_nothing(setup, store):
    auth, card = setup
    token = login(auth, card).token
    store.remove_role_profile(URID)
    with pytest.raises(AuthError) as err:
        auth.authenticate(f"Bearer {token}", URID)
    assert (err.value.status, err.value.reason) == (403, "urid-not-yours")


def test_a_service_without_a_public_url_takes_no_logins(store, ca):
    with pytest.raises(AuthError) as err:
        AuthService(store, ca.trust_store(), audience="").challenge(Card(ca).cert_b64)
    assert err.value.status == 503
