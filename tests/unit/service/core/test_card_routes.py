"""Card self-service on a live service (both stores), through the real HTTP client: certificate renewal (check,
issue, confirm; the old certificate revoked in the CRL; the renewed card logs in as the same person) with every
refusal, and the service-authorised unblock for a Local Smartcard Unlocker only. All of it audited."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.client.client import SpineClient
from app.client.selfservice import renew_certificate, unblock_via_service
from app.errors import ServiceRejected
from app.pki import TrainingCA
from app.pki.card_records import CardRecords
from app.pki.csr import build_csr
from app.protocol import login_message, renewal_message
from app.service.core.auth import token_hash
from app.service.store import RoleProfile
from tests.support.service.live import serve

UNLOCKER = "unlock-1"


class SoftCard:
    """A card whose key is a software key (the service cannot tell): what the client's use cases need of one."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert_der: bytes) -> None:
        self.key, self.cert_der = key, cert_der
        self.pin_ok = False
        self.unblocked_with: list[str] = []

    def certificate_der(self) -> bytes:
        return self.cert_der

    def verify_pin(self, pin: str) -> None:
        self.pin_ok = True

    def forget_pin(self) -> None:
        self.pin_ok = False

    def sign(self, message: bytes) -> bytes:
        assert self.pin_ok
        return self.key.sign(message, ec.ECDSA(hashes.SHA256()))

    def change_pin(self, old_pin: str, new_pin: str) -> None:
        raise AssertionError("not used")

    def unblock_pin(self, puk: str, new_pin: str) -> None:
        self.unblocked_with.append(puk)

    def generate_key(self) -> bytes:
        self.key = ec.generate_private_key(ec.SECP256R1())
        return self.key.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)

    def store_certificate(self, certificate_der: bytes) -> None:
        self.cert_der = certificate_der

    def discard_new_key(self, pin: str) -> bool:
        return False


@pytest.fixture
def live(store, tmp_path):
    ca = TrainingCA.load_or_create(tmp_path / "pki")
    with serve(store, ca, patients=1) as running:
        yield running


def _client(live) -> SpineClient:
    return SpineClient(live.url, httpx.Client(timeout=10))


def _revoked(ca: TrainingCA) -> set[int]:
    return {entry.serial_number for entry in ca.crl()}


def _login(live, card: SoftCard) -> str:
    cert = base64.b64encode(card.cert_der).decode()
    with httpx.Client(base_url=live.url) as c:
        answer = c.post("/auth/challenge", json={"certificate": cert}).json()
        sig = card.key.sign(login_message(answer["nonce"], answer["audience"]), ec.ECDSA(hashes.SHA256()))
        r = c.post("/auth/session", json={"nonce": answer["nonce"], "signature": base64.b64encode(sig).decode(),
                                          "certificate": cert})
        r.raise_for_status()
        return r.json()["token"]


def _post(live, path: str, token: str, body: dict, urid: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "X-Request-ID": str(uuid.uuid4())}
    if urid:
        headers["NHSD-Session-URID"] = urid
    return httpx.post(live.url + path, json=body, headers=headers)


def _b64(der: bytes) -> str:
    return base64.b64encode(der).decode()


def _proof(live, token: str, card: SoftCard) -> dict[str, str]:
    """The renewal nonce from the check, signed by the card's current key (as the client does before the card
    replaces it)."""
    answer = _post(live, "/card/renewal/check", token, {"certificate": _b64(card.cert_der)}).json()
    signature = card.key.sign(renewal_message(answer["nonce"], answer["audience"]), ec.ECDSA(hashes.SHA256()))
    return {"nonce": answer["nonce"], "signature": _b64(signature)}


# --- renewal -------------------------------------------------------------------------------------------------


def test_renewal_end_to_end_keeps_the_person_and_revokes_the_old_certificate(live):
    card = SoftCard(live.keys["alice"], live.certs["alice"])
    old = x509.load_der_x509_certificate(card.cert_der)
    result = renew_certificate(card, _client(live), "240719")
    new = x509.load_der_x509_certificate(card.cert_der)
    assert result.old_revoked and new.serial_number == result.serial
    assert new.subject == old.subject and new.public_key() == card.key.public_key()
    assert old.serial_number in _revoked(live.ca) and new.serial_number not in _revoked(live.ca)
    token = _login(live, card)  # the renewed card logs in as the same person
    found = live.store.session_principal(token_hash(token), "", now=datetime.now(UTC))
    assert found is not None and found.user.id == "alice"
    actions = [(r.action, r.outcome) for r in reversed(live.store.query_audit(user_id="alice", limit=10))]
    assert [a for a in actions if a[0].startswith("card.")] == [
        ("card.renewal.check", "200"), ("card.renewal.issue", "201"), ("card.renewal.confirm", "200")]


def test_an_unconfirmed_renewal_revokes_the_old_certificate_at_the_first_login_with_the_new_one(live):
    card = SoftCard(live.keys["alice"], live.certs["alice"])
    old = x509.load_der_x509_certificate(card.cert_der)
    token = _login(live, card)
    csr_card = SoftCard(ec.generate_private_key(ec.SECP256R1()), card.cert_der)
    csr_card.pin_ok = True
    csr = build_csr(old.subject, csr_card.generate_key(), csr_card.sign)
    answer = _post(live, "/card/renewal", token, {"certificate": _b64(card.cert_der), "csr": _b64(csr),
                                                  "proof": _proof(live, token, card)})
    assert answer.status_code == 201, answer.text
    assert old.serial_number not in _revoked(live.ca)
    renewed = SoftCard(csr_card.key, base64.b64decode(answer.json()["certificate"]))
    _login(live, renewed)
    assert old.serial_number in _revoked(live.ca)


def test_renewal_is_refused_outside_the_window(live):
    key = ec.generate_private_key(ec.SECP256R1())
    card_uuid = uuid.uuid4()
    cert = live.ca.issue_card_certificate(key.public_key(), name="Dave", card_uuid=card_uuid, days=365)
    live.store.add_user("dave", "Dave", card_uuids=[str(card_uuid)])
    card = SoftCard(key, cert.public_bytes(serialization.Encoding.DER))
    with pytest.raises(ServiceRejected) as caught:
        renew_certificate(card, _client(live), "240719")
    assert caught.value.status == 409 and "can be renewed from" in caught.value.message
    assert card.key is key  # the check came before the card's key was touched
    assert live.store.query_audit(user_id="dave", limit=5)[0].action == "card.renewal.check"


def test_production_refuses_renewal_naming_the_registration_authority(live, monkeypatch):
    monkeypatch.setattr(live.service.context, "card_admin", None)
    card = SoftCard(live.keys["alice"], live.certs["alice"])
    with pytest.raises(ServiceRejected) as caught:
        renew_certificate(card, _client(live), "240719")
    assert caught.value.status == 403 and "registration authority" in caught.value.message


@pytest.mark.parametrize("problem", ["subject", "signature", "certificate", "same-key"])
def test_bad_renewal_requests_are_refused(live, problem):
    card = SoftCard(live.keys["alice"], live.certs["alice"])
    old = x509.load_der_x509_certificate(card.cert_der)
    token = _login(live, card)
    new_key = ec.generate_private_key(ec.SECP256R1())
    subject = old.subject
    signer = new_key
    if problem == "subject":
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Somebody Else")])
    elif problem == "signature":
        signer = ec.generate_private_key(ec.SECP256R1())
    elif problem == "same-key":
        new_key = signer = card.key
    spki = new_key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    csr = build_csr(subject, spki, lambda tbs: signer.sign(tbs, ec.ECDSA(hashes.SHA256())))
    sent_cert = live.certs["bob"] if problem == "certificate" else card.cert_der
    answer = _post(live, "/card/renewal", token, {"certificate": _b64(sent_cert), "csr": _b64(csr),
                                                  "proof": _proof(live, token, card)})
    assert answer.status_code == (403 if problem == "certificate" else 400), answer.text
    assert _revoked(live.ca) == set()
    assert live.store.query_audit(user_id="alice", limit=1)[0].outcome == str(answer.status_code)


def test_renewal_needs_a_session(live):
    answer = _post(live, "/card/renewal/check", "no-such-token", {"certificate": _b64(live.certs["alice"])})
    assert answer.status_code == 401


def test_confirm_only_for_this_sessions_renewal(live):
    token = _login(live, SoftCard(live.keys["alice"], live.certs["alice"]))
    answer = _post(live, "/card/renewal/confirm", token, {"certificate": _b64(live.certs["bob"])})
    assert answer.status_code == 400
    assert _revoked(live.ca) == set()


# --- unblock -------------------------------------------------------------------------------------------------


def _unlocker(live) -> str:
    live.store.add_role_profile(RoleProfile(UNLOCKER, "bob", "A81001", "Training Surgery", "S8000:G8000:R8000",
                                            "Local Smartcard Unlocker", ("B1300",)))
    return live.login("bob", UNLOCKER)


def test_an_unlocker_gets_the_unblock_code_and_the_audit_says_whose_card(live):
    target = x509.load_der_x509_certificate(live.certs["alice"])
    alice_uuid = uuid.UUID(target.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                           .get_values_for_type(x509.UniformResourceIdentifier)[0].removeprefix("urn:uuid:"))
    CardRecords(live.ca.directory).record_unblock_code(alice_uuid, "24681357")
    token = _unlocker(live)
    card = SoftCard(live.keys["alice"], live.certs["alice"])
    unblock_via_service(card, _client(live), live.certs["alice"], "50829173", "50829173", token=token, urid=UNLOCKER)
    assert card.unblocked_with == ["24681357"]
    record = live.store.query_audit(user_id="bob", limit=1)[0]
    assert (record.action, record.outcome, record.details["card_user"]) == ("card.unblock", "200", "alice")
    assert "24681357" not in str(record.details)


def test_other_roles_are_refused_and_audited(live):
    token = live.token_for("clin-1")
    card = SoftCard(live.keys["bob"], live.certs["bob"])
    with pytest.raises(ServiceRejected) as caught:
        unblock_via_service(card, _client(live), live.certs["bob"], "50829173", "50829173", token=token,
                            urid="clin-1")
    assert caught.value.status == 403 and card.unblocked_with == []
    record = live.store.query_audit(user_id="alice", limit=1)[0]
    assert (record.action, record.outcome) == ("card.unblock", "403")


def test_nobody_unblocks_their_own_card(live):
    token = _unlocker(live)
    answer = _post(live, "/card/unblock", token, {"certificate": _b64(live.certs["bob"])}, urid=UNLOCKER)
    assert answer.status_code == 403 and "own" in answer.text


def test_a_card_with_no_recorded_code(live):
    token = _unlocker(live)
    answer = _post(live, "/card/unblock", token, {"certificate": _b64(live.certs["carol"])}, urid=UNLOCKER)
    assert answer.status_code == 404
