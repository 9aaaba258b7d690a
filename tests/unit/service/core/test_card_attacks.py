"""Card self-service as its enemies would use it: an unlocker unblocking their own card when it is known to the
service by fingerprint, a renewal certificate left valid beside the one the card stores, a stolen session token
asking for a certificate without the card, and hostile bodies on the new routes (4xx with an OperationOutcome,
never 500, always audited)."""

from __future__ import annotations

import base64
import logging
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from app.pki import TrainingCA
from app.pki.card_records import CardRecords
from app.pki.csr import build_csr
from app.protocol import login_message
from app.service.core.auth import fingerprint
from app.service.store import RoleProfile
from tests.support.service.live import serve
from tests.unit.service.core.test_card_routes import UNLOCKER, SoftCard, _b64, _login, _post, _proof, _revoked


@pytest.fixture
def live(store, tmp_path):
    with serve(store, TrainingCA.load_or_create(tmp_path / "pki"), patients=1) as running:
        yield running


PATHS = ("/card/renewal/check", "/card/renewal", "/card/renewal/confirm", "/card/unblock")


def _issue(live, name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, uuid.UUID]:
    key = ec.generate_private_key(ec.SECP256R1())
    card = uuid.uuid4()
    cert = live.ca.issue_card_certificate(key.public_key(), name=name.title(), card_uuid=card, days=30)
    return key, cert, card


def _token(live, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, urid: str | None = None) -> str:
    der = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    with httpx.Client(base_url=live.url) as c:
        answer = c.post("/auth/challenge", json={"certificate": der}).json()
        sig = key.sign(login_message(answer["nonce"], answer["audience"]), ec.ECDSA(hashes.SHA256()))
        body = {"nonce": answer["nonce"], "signature": base64.b64encode(sig).decode(), "certificate": der}
        if urid:
            body["urid"] = urid
        r = c.post("/auth/session", json=body)
        r.raise_for_status()
        return r.json()["token"]


# --- unblock: one's own card, whichever way the service knows it --------------------------------------------


def test_an_unlocker_known_by_fingerprint_cannot_unblock_their_own_card(live):
    key, cert, card = _issue(live, "erin")
    live.store.add_user("erin", "Erin", cert_fingerprints=[fingerprint(cert)])  # not by the card UUID
    live.store.add_role_profile(RoleProfile("unlock-e", "erin", "A81001", "Training Surgery", "S8000:G8000:R8000",
                                            "Local Smartcard Unlocker", ("B1300",)))
    CardRecords(live.ca.directory).record_unblock_code(card, "24681357")
    token = _token(live, key, cert, "unlock-e")
    der = cert.public_bytes(serialization.Encoding.DER)
    answer = _post(live, "/card/unblock", token, {"certificate": _b64(der)}, urid="unlock-e")
    assert answer.status_code == 403 and "own" in answer.text, answer.text
    assert "24681357" not in answer.text
    record = live.store.query_audit(user_id="erin", limit=1)[0]
    assert (record.action, record.outcome, record.details.get("reason")) == ("card.unblock", "403", "own card")


def test_an_unlocker_cannot_unblock_another_card_of_their_own(live):
    """Bob's second card, registered by fingerprint, is still Bob's."""
    _, cert, card = _issue(live, "bob")
    live.store.add_credentials("bob", cert_fingerprints=[fingerprint(cert)])
    live.store.add_role_profile(RoleProfile(UNLOCKER, "bob", "A81001", "Training Surgery", "S8000:G8000:R8000",
                                            "Local Smartcard Unlocker", ("B1300",)))
    CardRecords(live.ca.directory).record_unblock_code(card, "24681357")
    token = live.login("bob", UNLOCKER)
    answer = _post(live, "/card/unblock", token, {"certificate": _b64(cert.public_bytes(serialization.Encoding.DER))},
                   urid=UNLOCKER)
    assert answer.status_code == 403 and "24681357" not in answer.text, answer.text


# --- renewal: one certificate per renewal left standing -----------------------------------------------------


def _csr(old: x509.Certificate) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, build_csr(old.subject, spki, lambda tbs: key.sign(tbs, ec.ECDSA(hashes.SHA256())))


def test_a_certificate_from_an_earlier_renewal_does_not_outlive_the_one_the_card_stores(live):
    """A renewal was issued but never reached the card (the client stopped, or retried with a new key); the card
    then renews again and confirms. The first certificate must not stay valid beside the card's."""
    card = SoftCard(live.keys["alice"], live.certs["alice"])
    old = x509.load_der_x509_certificate(card.cert_der)
    token = _login(live, card)
    _, first_csr = _csr(old)
    first = _post(live, "/card/renewal", token, {"certificate": _b64(card.cert_der), "csr": _b64(first_csr),
                                                 "proof": _proof(live, token, card)})
    assert first.status_code == 201, first.text
    first_serial = x509.load_der_x509_certificate(base64.b64decode(first.json()["certificate"])).serial_number
    _, csr = _csr(old)
    mine = _post(live, "/card/renewal", token, {"certificate": _b64(card.cert_der), "csr": _b64(csr),
                                                "proof": _proof(live, token, card)})
    assert mine.status_code == 201, mine.text
    new = base64.b64decode(mine.json()["certificate"])
    done = _post(live, "/card/renewal/confirm", token, {"certificate": _b64(new)})
    assert done.status_code == 200, done.text
    revoked = _revoked(live.ca)
    assert old.serial_number in revoked
    assert first_serial in revoked
    assert x509.load_der_x509_certificate(new).serial_number not in revoked


def test_a_later_renewal_supersedes_an_earlier_one_and_a_confirmation_is_used_once(live):
    """Two renewals of one certificate: the later supersedes the earlier, whose confirmation then finds nothing."""
    card = SoftCard(live.keys["alice"], live.certs["alice"])
    old = x509.load_der_x509_certificate(card.cert_der)
    token = _login(live, card)
    _, csr = _csr(old)
    mine = _post(live, "/card/renewal", token, {"certificate": _b64(card.cert_der), "csr": _b64(csr),
                                                "proof": _proof(live, token, card)})
    _, other_csr = _csr(old)
    other = _post(live, "/card/renewal", token, {"certificate": _b64(card.cert_der), "csr": _b64(other_csr),
                                                 "proof": _proof(live, token, card)})
    assert mine.status_code == other.status_code == 201
    other_serial = x509.load_der_x509_certificate(base64.b64decode(other.json()["certificate"])).serial_number
    mine_der = base64.b64decode(mine.json()["certificate"])
    done = _post(live, "/card/renewal/confirm", token, {"certificate": _b64(mine_der)})
    # the earlier renewal was superseded when the later one was issued: its confirmation is refused
    assert done.status_code == 400, done.text
    assert other_serial not in _revoked(live.ca)
    replay = _post(live, "/card/renewal/confirm", token,
                   {"certificate": other.json()["certificate"]})
    assert replay.status_code == 200, replay.text
    again = _post(live, "/card/renewal/confirm", token, {"certificate": other.json()["certificate"]})
    assert again.status_code in (400, 401), again.text  # a replayed confirmation finds nothing to confirm


# --- hostile bodies ------------------------------------------------------------------------------------------

HOSTILE = [
    b"[]", b'"text"', b"null", b"{}", b"not json", b"\xff\xfe", b"[" * 5000 + b"]" * 5000,
    b'{"certificate": 5}', b'{"certificate": {"a": 1}}', b'{"certificate": ["AA"]}', b'{"certificate": ""}',
    b'{"certificate": "%s"}' % (b"A" * 20000), b'{"certificate": "!!!!"}', b'{"certificate": "AAAA"}',
    b'{"certificate": "AAAA", "csr": 7}',
]


@pytest.mark.parametrize("path", PATHS)
def test_hostile_bodies_are_4xx_with_an_operation_outcome_and_audited(live, path):
    if path == "/card/unblock":
        live.store.add_role_profile(RoleProfile(UNLOCKER, "bob", "A81001", "Training Surgery", "S8000:G8000:R8000",
                                                "Local Smartcard Unlocker", ("B1300",)))
        token, urid, user = live.login("bob", UNLOCKER), UNLOCKER, "bob"
    else:
        token, urid, user = _login(live, SoftCard(live.keys["alice"], live.certs["alice"])), None, "alice"
    valid = _b64(live.certs["alice"])
    bodies = list(HOSTILE)
    if path == "/card/renewal":
        bodies += [b'{"certificate": "%s", "csr": 7}' % valid.encode(),
                   b'{"certificate": "%s", "csr": "%s"}' % (valid.encode(), b"A" * 40000),
                   b'{"certificate": "%s", "csr": "AAAA"}' % valid.encode(),
                   *(b'{"certificate": "%s", "csr": "AAAA", "proof": %s}' % (valid.encode(), proof) for proof in (
                       b"[]", b'"x"', b"{}", b'{"nonce": 5, "signature": "AAAA"}', b'{"nonce": "%s", "signature": 1}'
                       % (b"n" * 40), b'{"nonce": "%s", "signature": "AAAA"}' % (b"n" * 5000),
                       b'{"nonce": "%s", "signature": "%s"}' % (b"n" * 40, b"A" * 30000),
                       b'{"nonce": "\\u0000%s", "signature": "AAAA"}' % (b"n" * 40)))]
    for body in bodies:
        before = len(live.store.query_audit(user_id=user, limit=1000))
        headers = {"Authorization": f"Bearer {token}", "X-Request-ID": str(uuid.uuid4()),
                   "Content-Type": "application/json"}
        if urid:
            headers["NHSD-Session-URID"] = urid
        r = httpx.post(live.url + path, content=body, headers=headers)
        assert 400 <= r.status_code < 500, (path, body[:40], r.status_code, r.text)
        assert r.json()["resourceType"] == "OperationOutcome", (path, body[:40], r.text)
        assert len(live.store.query_audit(user_id=user, limit=1000)) == before + 1, (path, body[:40])


# --- renewal: the bearer token alone is not the card ---------------------------------------------------------


def test_a_stolen_session_token_alone_gets_no_certificate(live):
    """Whoever holds alice's bearer token (not her card) and her public certificate asks for a certificate for a
    key of their own: without a signature by the card's current key over the service's renewal nonce, refused."""
    card = SoftCard(live.keys["alice"], live.certs["alice"])
    old = x509.load_der_x509_certificate(card.cert_der)
    token = _login(live, card)
    check = _post(live, "/card/renewal/check", token, {"certificate": _b64(card.cert_der)})
    assert check.status_code == 200, check.text
    thief_key, csr = _csr(old)
    for proof in (None, {"nonce": check.json().get("nonce", "x" * 43), "signature": _b64(thief_key.sign(
            b"anything", ec.ECDSA(hashes.SHA256())))}):
        body: dict[str, object] = {"certificate": _b64(card.cert_der), "csr": _b64(csr)}
        if proof is not None:
            body["proof"] = proof
        stolen = _post(live, "/card/renewal", token, body)
        assert stolen.status_code == 403, stolen.text
        assert "certificate" not in stolen.json()
    assert live.store.query_audit(user_id="alice", limit=1)[0].outcome == "403"


def test_a_renewal_proof_is_used_once_and_a_login_signature_is_not_one(live):
    card = SoftCard(live.keys["alice"], live.certs["alice"])
    old = x509.load_der_x509_certificate(card.cert_der)
    token = _login(live, card)
    proof = _proof(live, token, card)
    _, csr = _csr(old)
    first = _post(live, "/card/renewal", token, {"certificate": _b64(card.cert_der), "csr": _b64(csr), "proof": proof})
    assert first.status_code == 201, first.text
    _, csr = _csr(old)
    again = _post(live, "/card/renewal", token, {"certificate": _b64(card.cert_der), "csr": _b64(csr), "proof": proof})
    assert again.status_code == 403, again.text
    check = _post(live, "/card/renewal/check", token, {"certificate": _b64(card.cert_der)}).json()
    login_sig = card.key.sign(login_message(check["nonce"], check["audience"]), ec.ECDSA(hashes.SHA256()))
    relabelled = _post(live, "/card/renewal", token, {"certificate": _b64(card.cert_der), "csr": _b64(csr),
                                                      "proof": {"nonce": check["nonce"], "signature": _b64(login_sig)}})
    assert relabelled.status_code == 403, relabelled.text


# --- unblock: the code leaves only in the answer --------------------------------------------------------------


def test_the_unblock_code_is_not_cached_logged_or_audited(live, caplog):
    caplog.set_level(logging.DEBUG)
    target = x509.load_der_x509_certificate(live.certs["alice"])
    alice_card = uuid.UUID(target.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                           .get_values_for_type(x509.UniformResourceIdentifier)[0].removeprefix("urn:uuid:"))
    CardRecords(live.ca.directory).record_unblock_code(alice_card, "73510486")
    live.store.add_role_profile(RoleProfile(UNLOCKER, "bob", "A81001", "Training Surgery", "S8000:G8000:R8000",
                                            "Local Smartcard Unlocker", ("B1300",)))
    token = live.login("bob", UNLOCKER)
    answer = _post(live, "/card/unblock", token, {"certificate": _b64(live.certs["alice"])}, urid=UNLOCKER)
    assert answer.status_code == 200 and answer.json() == {"unblock_code": "73510486"}
    assert "no-store" in answer.headers.get("cache-control", "")
    assert not [r for r in caplog.records if "73510486" in r.getMessage()]
    assert all("73510486" not in str(r.details) for r in live.store.query_audit(limit=1000))


def test_the_renewal_nonce_outlasts_a_slow_key_generation(live):
    """Signed before the card generates its new key, spent after: a real card may take minutes for an RSA key, and a
    nonce expired by then would leave the card with a new key and no certificate."""
    card = SoftCard(live.keys["alice"], live.certs["alice"])
    token = _login(live, card)
    nonce = _post(live, "/card/renewal/check", token, {"certificate": _b64(card.cert_der)}).json()["nonce"]
    assert live.store.consume_challenge(nonce, now=datetime.now(UTC) + timedelta(minutes=5)) is not None


def test_a_revoked_certificate_is_not_renewed_and_the_refusal_is_audited(live):
    card = SoftCard(live.keys["alice"], live.certs["alice"])
    old = x509.load_der_x509_certificate(card.cert_der)
    token = _login(live, card)
    proof = _proof(live, token, card)
    live.ca.revoke(old.serial_number, x509.ReasonFlags.key_compromise)
    _, csr = _csr(old)
    answer = _post(live, "/card/renewal", token, {"certificate": _b64(card.cert_der), "csr": _b64(csr),
                                                  "proof": proof})
    assert answer.status_code in (401, 403) and "certificate" not in answer.json(), answer.text
    record = live.store.query_audit(user_id="alice", limit=1)[0]
    assert (record.action, record.outcome) == ("card.renewal.issue", str(answer.status_code))


@pytest.mark.parametrize("weak", ["rsa1024", "p384", "huge"])
def test_weak_odd_or_huge_requests_are_refused_before_anything_is_issued(live, weak):
    card = SoftCard(live.keys["alice"], live.certs["alice"])
    old = x509.load_der_x509_certificate(card.cert_der)
    token = _login(live, card)
    if weak == "rsa1024":
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        sign = lambda tbs: key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())  # noqa: E731
    else:
        key = ec.generate_private_key(ec.SECP384R1())
        sign = lambda tbs: key.sign(tbs, ec.ECDSA(hashes.SHA384()))  # noqa: E731
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    csr = build_csr(old.subject, spki, sign)
    if weak == "huge":
        csr = csr + b"\x00" * 9000
    answer = _post(live, "/card/renewal", token, {"certificate": _b64(card.cert_der), "csr": _b64(csr),
                                                  "proof": _proof(live, token, card)})
    assert answer.status_code == 400 and answer.json()["resourceType"] == "OperationOutcome", answer.text
    assert live.store.query_audit(user_id="alice", action="card.renewal.issue", limit=1)[0].outcome == "400"
    assert CardRecords(live.ca.directory).renewals_replacing(old.serial_number) == []


# --- unblock: only a live card of someone in the unlocker's own organisation ---------------------------------


def _unlocker_at(live, org: str) -> str:
    live.store.add_role_profile(RoleProfile(f"unlock-{org}", "bob", org, f"Practice {org}", "S8000:G8000:R8000",
                                            "Local Smartcard Unlocker", ("B1300",)))
    return live.login("bob", f"unlock-{org}")


def _with_code(live, cert: x509.Certificate, code: str) -> None:
    card = uuid.UUID(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                     .get_values_for_type(x509.UniformResourceIdentifier)[0].removeprefix("urn:uuid:"))
    CardRecords(live.ca.directory).record_unblock_code(card, code)


def test_an_unlocker_unblocks_only_cards_of_people_in_their_own_organisation(live):
    """Alice works at A81001 only: an unlocker at another practice gets no code for her card."""
    alice = x509.load_der_x509_certificate(live.certs["alice"])
    _with_code(live, alice, "73510486")
    token = _unlocker_at(live, "B82002")
    answer = _post(live, "/card/unblock", token, {"certificate": _b64(live.certs["alice"])}, urid="unlock-B82002")
    assert answer.status_code == 403 and "73510486" not in answer.text, answer.text
    record = live.store.query_audit(user_id="bob", action="card.unblock", limit=1)[0]
    assert (record.outcome, record.details.get("reason")) == ("403", "another organisation's user")


def test_no_code_for_a_card_that_belongs_to_nobody(live):
    _, cert, card = _issue(live, "nobody")
    CardRecords(live.ca.directory).record_unblock_code(card, "64209753")
    token = _unlocker_at(live, "A81001")
    answer = _post(live, "/card/unblock", token, {"certificate": _b64(cert.public_bytes(serialization.Encoding.DER))},
                   urid="unlock-A81001")
    assert answer.status_code == 404 and "64209753" not in answer.text, answer.text
    assert live.store.query_audit(user_id="bob", action="card.unblock", limit=1)[0].details.get("reason") == \
        "card not registered"


def test_no_code_for_a_revoked_card(live):
    alice = x509.load_der_x509_certificate(live.certs["alice"])
    _with_code(live, alice, "73510486")
    live.ca.revoke(alice.serial_number, x509.ReasonFlags.key_compromise)
    token = _unlocker_at(live, "A81001")
    answer = _post(live, "/card/unblock", token, {"certificate": _b64(live.certs["alice"])}, urid="unlock-A81001")
    assert answer.status_code == 403 and "73510486" not in answer.text and "revoked" in answer.text, answer.text


def test_a_renewal_key_with_an_unusual_rsa_exponent_is_refused(live):
    card = SoftCard(live.keys["alice"], live.certs["alice"])
    old = x509.load_der_x509_certificate(card.cert_der)
    token = _login(live, card)
    key = rsa.generate_private_key(public_exponent=3, key_size=2048)
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    csr = build_csr(old.subject, spki, lambda tbs: key.sign(tbs, padding.PKCS1v15(), hashes.SHA256()))
    answer = _post(live, "/card/renewal", token, {"certificate": _b64(card.cert_der), "csr": _b64(csr),
                                                  "proof": _proof(live, token, card)})
    assert answer.status_code == 400 and "exponent" in answer.text, answer.text
