"""Card self-service use cases with the real training card (its PIV applet over an in-memory link, behind the same
PIV client and renewal adapter the desktop uses) and a fake service at the API seam that issues from a real
training CA."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.card.login_card import PivLoginCard
from app.card.management_key import ManagementKey
from app.card.piv import PivSession
from app.card.renewal import PivRenewableCard
from app.card.virtual import PivApplet, issue_card
from app.client.models import Challenge, Login, RenewalWindow
from app.client.selfservice import (
    Outcome,
    change_pin,
    renew_certificate,
    unblock_via_service,
    unblock_with_puk,
)
from app.error_text import user_text
from app.errors import (
    AudienceMismatch,
    CardManagementRefused,
    InvalidPinFormat,
    PinBlocked,
    PinIncorrect,
    PukIncorrect,
    RenewalIncomplete,
    ServiceRejected,
    ServiceUnreachable,
)
from app.pki import TrainingCA
from app.pki.csr import check_csr
from app.protocol import renewal_message
from tests.support.card import AppletLink

PIN, PUK, NEW = "240719", "87654321", "50829173"
URL = "https://spine.example.nhs.uk"




@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return TrainingCA.load_or_create(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def master(ca):
    card, _ = issue_card(ca, name="Dr Ada Training", algorithm="p256", pin=PIN, puk=PUK)
    return card


@pytest.fixture
def applet(master):
    applet = PivApplet(copy.copy(master), lambda card: None)
    applet.power_on()
    return applet


@pytest.fixture
def card(applet):
    return PivRenewableCard(PivLoginCard(PivSession(AppletLink(applet))), ManagementKey.training())


class Service:
    """The service's answers at the client's API seam, from a real training CA; records what it was asked."""

    base_url = URL

    def __init__(self, ca: TrainingCA, *, refuse_renewal: ServiceRejected | None = None,
                 fail_confirm: bool = False, fail_issue: bool = False) -> None:
        self.fail_issue = fail_issue
        self.ca = ca
        self.calls: list[str] = []
        self.sessions: dict[str, bytes] = {}
        self.refuse_renewal = refuse_renewal
        self.fail_confirm = fail_confirm
        self.revoked: list[int] = []
        self.unblock_codes: dict[bytes, str] = {}
        self.renewal_audience = URL

    def challenge(self, certificate_der: bytes) -> Challenge:
        self.calls.append("challenge")
        return Challenge("n" * 43, datetime.now(UTC) + timedelta(minutes=1), URL)

    def complete(self, nonce, signature, certificate_der, urid=None) -> Login:
        self.calls.append("complete")
        token = base64.b64encode(signature[:12]).decode()
        self.sessions[token] = certificate_der
        return Login(token, datetime.now(UTC) + timedelta(hours=1), "u1", "Dr Ada Training", ())

    def logout(self, token: str) -> None:
        self.calls.append("logout")
        self.sessions.pop(token, None)

    def renewal_check(self, token: str, certificate_der: bytes) -> RenewalWindow:
        assert certificate_der == self.sessions[token]
        self.calls.append("renewal_check")
        if self.refuse_renewal:
            raise self.refuse_renewal
        cert = x509.load_der_x509_certificate(self.sessions[token])
        return RenewalWindow(cert.serial_number, cert.not_valid_after_utc,
                             cert.not_valid_after_utc - timedelta(days=90), "renewal-nonce-0123456789",
                             self.renewal_audience)

    def renew_certificate(self, token: str, certificate_der: bytes, csr_der: bytes,
                          proof: tuple[str, bytes] | None = None) -> bytes:
        self.calls.append("renew_certificate")
        if self.fail_issue:
            raise ServiceUnreachable(URL, "connection refused or no route")
        csr = check_csr(csr_der)
        old = x509.load_der_x509_certificate(self.sessions[token])
        assert proof is not None and proof[0] == "renewal-nonce-0123456789"  # the OLD key asked for it
        old.public_key().verify(proof[1], renewal_message(proof[0], URL), ec.ECDSA(hashes.SHA256()))
        assert csr.subject == old.subject
        new = self.ca.renew_card_certificate(old, csr.public_key(), days=30)
        return new.public_bytes(serialization.Encoding.DER)

    def confirm_renewal(self, token: str, certificate_der: bytes) -> None:
        self.calls.append("confirm_renewal")
        if self.fail_confirm:
            raise ServiceRejected(503, "UNAVAILABLE", "try later")
        self.revoked.append(x509.load_der_x509_certificate(self.sessions[token]).serial_number)

    def unblock_code(self, token: str, urid: str, target_certificate_der: bytes) -> str:
        self.calls.append("unblock_code")
        if urid != "unlocker":
            raise ServiceRejected(403, "ACCESS_DENIED", "this role may not unblock smartcards")
        return self.unblock_codes[target_certificate_der]


def _block(applet: PivApplet) -> None:
    applet.card.pin_tries_left = 0


# --- PIN ---------------------------------------------------------------------------------------------------


def test_change_pin(card, applet):
    result = change_pin(card, PIN, NEW, NEW)
    assert result.outcome is Outcome.PIN_CHANGED and "changed" in result.message
    assert applet.card.check_pin(NEW) and not applet.card.check_pin(PIN)


def test_change_pin_refuses_a_weak_pin_before_the_card_sees_it(card, applet):
    with pytest.raises(InvalidPinFormat, match="counting up"):
        change_pin(card, PIN, "123456", "123456")
    with pytest.raises(InvalidPinFormat, match="repeat differ"):
        change_pin(card, PIN, NEW, NEW[::-1])
    assert applet.card.pin_tries_left == applet.card.pin_tries_max  # nothing reached the card


def test_change_pin_with_the_wrong_old_pin_says_the_tries_left(card, applet):
    with pytest.raises(PinIncorrect) as caught:
        change_pin(card, "999888", NEW, NEW)
    assert caught.value.tries_left == applet.card.pin_tries_max - 1
    assert "tries left" in user_text(caught.value)


def test_unblock_with_puk(card, applet):
    _block(applet)
    with pytest.raises(PinBlocked):
        card.verify_pin(PIN)
    assert unblock_with_puk(card, PUK, NEW, NEW).outcome is Outcome.PIN_UNBLOCKED
    card.verify_pin(NEW)


def test_unblock_with_a_wrong_puk(card, applet):
    _block(applet)
    with pytest.raises(PukIncorrect):
        unblock_with_puk(card, "11112222", NEW, NEW)


def test_unblock_via_service(card, applet, ca):
    _block(applet)
    service = Service(ca)
    service.unblock_codes[card.certificate_der()] = PUK
    result = unblock_via_service(card, service, card.certificate_der(), NEW, NEW, token="t", urid="unlocker")
    assert result.outcome is Outcome.PIN_UNBLOCKED
    card.verify_pin(NEW)


def test_unblock_via_service_refused_for_other_roles(card, applet, ca):
    _block(applet)
    service = Service(ca)
    with pytest.raises(ServiceRejected) as caught:
        unblock_via_service(card, service, card.certificate_der(), NEW, NEW, token="t", urid="clinician")
    assert caught.value.status == 403
    assert applet.card.pin_blocked


def test_unblock_via_service_checks_the_new_pin_first(card, ca):
    service = Service(ca)
    with pytest.raises(InvalidPinFormat):
        unblock_via_service(card, service, card.certificate_der(), "111111", "111111", token="t", urid="unlocker")
    assert service.calls == []  # the unblock code was never released


# --- renewal -----------------------------------------------------------------------------------------------


def test_renew_certificate(card, applet, ca):
    service = Service(ca)
    old = x509.load_der_x509_certificate(card.certificate_der())
    steps: list[str] = []
    result = renew_certificate(card, service, PIN, on_step=steps.append)
    new = x509.load_der_x509_certificate(card.certificate_der())
    assert result.outcome is Outcome.CERTIFICATE_RENEWED and result.old_revoked
    assert new.serial_number == result.serial != old.serial_number == result.old_serial
    assert new.subject == old.subject and new.public_key() != old.public_key()
    assert new.public_key() == applet.card.private_key.public_key()  # the key was generated on the card
    assert applet.card.certificate == new and not applet.card.certificate_pending
    assert service.revoked == [old.serial_number]
    assert service.calls == ["challenge", "complete", "renewal_check", "renew_certificate", "confirm_renewal",
                             "logout"]
    assert steps and not any(PIN in step for step in steps)
    assert "new certificate" in result.message


def test_a_refused_renewal_leaves_the_key_alone(card, applet, ca):
    service = Service(ca, refuse_renewal=ServiceRejected(409, "NOT_IN_RENEWAL_WINDOW", "not yet"))
    key = applet.card.private_key
    with pytest.raises(ServiceRejected):
        renew_certificate(card, service, PIN)
    assert applet.card.private_key is key and not applet.card.certificate_pending
    assert service.calls[-1] == "logout"


def test_an_unconfirmed_renewal_still_leaves_the_card_renewed(card, applet, ca):
    service = Service(ca, fail_confirm=True)
    result = renew_certificate(card, service, PIN)
    assert not result.old_revoked and "next time you log in" in result.message
    assert applet.card.certificate.serial_number == result.serial


def test_renewal_with_a_wrong_management_key(applet, ca):
    card = PivRenewableCard(PivLoginCard(PivSession(AppletLink(applet))), ManagementKey.named("aes128", bytes(16)))
    key = applet.card.private_key
    with pytest.raises(CardManagementRefused):
        renew_certificate(card, Service(ca), PIN)
    assert applet.card.private_key is key


def test_renewal_with_a_live_session_does_not_log_in_again(card, ca):
    service = Service(ca)
    token = service.complete("n", b"x" * 12, card.certificate_der()).token
    service.calls.clear()
    renew_certificate(card, service, PIN, token=token)
    assert service.calls == ["renewal_check", "renew_certificate", "confirm_renewal"]


def test_a_renewal_that_stops_after_the_new_key_says_what_to_do(card, applet, ca):
    service = Service(ca, fail_issue=True)
    with pytest.raises(RenewalIncomplete) as caught:
        renew_certificate(card, service, PIN)
    assert applet.card.certificate_pending  # the new key is there, its certificate is not
    assert not caught.value.card_unchanged  # PIV: GENERATE replaced the old key
    text = user_text(caught.value)
    assert "asking the service for the new certificate" in text and "registration authority" in text
    assert "cannot be reached" in text and service.revoked == [] and service.calls[-1] == "logout"


def test_piv_cards_and_real_pkcs11_tokens_only_are_renewed_by_this_client(card):
    from types import SimpleNamespace

    from app.card.backend import BackendKind
    from app.card.renewal import renewable

    pkcs11 = SimpleNamespace(info=SimpleNamespace(backend=BackendKind.PKCS11))
    with pytest.raises(CardManagementRefused, match="PKCS#11"):
        renewable(pkcs11, ManagementKey.training())  # type: ignore[arg-type]  # a stand-in token
    assert isinstance(renewable(card._card, ManagementKey.training()), PivRenewableCard)


def test_a_wrong_pin_with_a_live_session_costs_a_try_never_the_key(card, applet, ca):
    service = Service(ca)
    token = service.complete("n", b"x" * 12, card.certificate_der()).token
    key = applet.card.private_key
    with pytest.raises(PinIncorrect):
        renew_certificate(card, service, "999888", token=token)
    assert applet.card.private_key is key and not applet.card.certificate_pending
    assert applet.card.pin_tries_left == applet.card.pin_tries_max - 1
    assert "renew_certificate" not in service.calls


def test_renewal_signs_only_for_the_service_it_talks_to(card, applet, ca):
    """As at login: a renewal nonce naming another service's audience stops before the PIN reaches the card."""
    service = Service(ca)
    service.renewal_audience = "https://elsewhere.example.nhs.uk"
    before = card.certificate_der()
    with pytest.raises(AudienceMismatch):
        renew_certificate(card, service, PIN)
    assert "renew_certificate" not in service.calls and card.certificate_der() == before
