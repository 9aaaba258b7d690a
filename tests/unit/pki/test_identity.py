"""Who a certificate names: the NHS user UUID in its subject (serialNumber or UID) or a training card's SAN UUID,
and which of them applies per trust anchor. Certificates from the NHS-shaped test PKI and the real training CA."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.error_text import user_text
from app.errors import CertificateIdentityMissing, PkiError
from app.pki import (
    IdentityAttribute,
    IdentityPolicy,
    Status,
    TrainingCA,
    nhs_uuid,
    require_identity,
    subject_identity,
    validate,
)
from tests.support.nhs_pki import NhsTestPki, make_foreign_pki

NOW = datetime(2026, 5, 4, 8, 30, tzinfo=UTC)
SERIAL, UID, SAN = IdentityAttribute.SERIAL_NUMBER, IdentityAttribute.UID, IdentityAttribute.SAN_UUID


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> NhsTestPki:
    return NhsTestPki.create(tmp_path_factory.mktemp("nhs"), now=NOW)


@pytest.fixture(scope="module")
def training(tmp_path_factory: pytest.TempPathFactory) -> TrainingCA:
    return TrainingCA.load_or_create(tmp_path_factory.mktemp("training"), clock=lambda: NOW)


def test_the_uuid_is_read_from_the_configured_subject_attribute(pki: NhsTestPki) -> None:
    serial = pki.issue_card(name="Ada", uuid="555000111222", now=NOW, alg="p256").certificate
    uid = pki.issue_card(name="Bo", uuid="555000333444", now=NOW, alg="p256", attribute="UID").certificate
    assert subject_identity(serial, SERIAL) == "555000111222" and subject_identity(serial, "serialnumber")
    assert subject_identity(serial, UID) is None and subject_identity(serial, SAN) is None
    assert subject_identity(uid, UID) == "555000333444" and subject_identity(uid, SERIAL) is None
    assert require_identity(uid, "UID") == "555000333444"


def test_a_training_card_is_named_by_its_san_uuid(training: TrainingCA) -> None:
    card = uuid.uuid4()
    cert = training.issue_card_certificate(ec.generate_private_key(ec.SECP256R1()).public_key(), name="Trainee",
                                           card_uuid=card)
    assert subject_identity(cert, SAN) == str(card)
    assert subject_identity(cert, SERIAL) is None


def test_a_certificate_without_the_uuid_is_said_plainly(pki: NhsTestPki) -> None:
    bare = pki.issue_card(name="No Number", uuid=None, now=NOW, alg="p256", attribute="none").certificate
    assert subject_identity(bare, SERIAL) is None
    with pytest.raises(CertificateIdentityMissing) as err:
        require_identity(bare, SERIAL)
    assert str(err.value) == "the certificate has no NHS user UUID in the subject's serialNumber"
    assert user_text(err.value).startswith("Your smartcard's certificate has no NHS user UUID in the subject's "
                                           "serialNumber, so the service cannot tell who you are.")


@pytest.mark.parametrize(("value", "attribute"), [
    ("55500011122", SERIAL), ("5550001112223", SERIAL), ("ABC000111222", SERIAL), ("555 000 111 222", SERIAL),
    ("\uff15" * 12, UID)])  # the last: fullwidth digits (UID is UTF-8; serialNumber, PrintableString, cannot hold them)
def test_a_uuid_that_is_not_12_digits_is_refused(pki: NhsTestPki, value: str, attribute: IdentityAttribute) -> None:
    cert = pki.issue_card(name="Bad", uuid=value, now=NOW, alg="p256", attribute=attribute.value).certificate
    with pytest.raises(CertificateIdentityMissing, match="is not an NHS user UUID"):
        subject_identity(cert, attribute)


def test_two_different_uuids_in_one_subject_name_nobody(pki: NhsTestPki) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Two People"),
                         x509.NameAttribute(NameOID.SERIAL_NUMBER, "555000111222"),
                         x509.NameAttribute(NameOID.SERIAL_NUMBER, "555000999999")])
    card = pki.issue_card(name="x", uuid="555000111222", now=NOW, key=key)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(card.certificate.issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(card.certificate.not_valid_before_utc)
            .not_valid_after(card.certificate.not_valid_after_utc).sign(key, card.certificate.signature_hash_algorithm))
    with pytest.raises(CertificateIdentityMissing, match="2 different serialNumber values"):
        subject_identity(cert, SERIAL)


@pytest.mark.parametrize("text", ["55500011122", "5550001112223", "55500011122x", "", "  ", "555-000-111-222"])
def test_nhs_uuid_says_what_one_looks_like(text: str) -> None:
    with pytest.raises(PkiError, match="must be exactly 12 digits, as printed on the smartcard"):
        nhs_uuid(text)
    assert nhs_uuid(" 555000111222\n") == "555000111222"


def test_unknown_attribute_names_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match="'serialNumber', 'UID', 'san-uuid'"):
        IdentityAttribute.parse("CN")


def test_validation_names_the_anchor_and_the_policy_picks_its_attribute(pki: NhsTestPki, training: TrainingCA,
                                                                       tmp_path) -> None:
    card = pki.issue_card(name="Ada", uuid="555000111222", now=NOW, alg="p256")
    verdict = validate(card.certificate, pki.trust_store(), now=NOW)
    assert verdict.ok and verdict.anchor == pki.root.certificate
    foreign = make_foreign_pki(tmp_path / "foreign", now=NOW).issue_card(name="M", uuid="555000111222", now=NOW)
    untrusted = validate(foreign.certificate, pki.trust_store(), now=NOW)
    assert untrusted.status is Status.UNTRUSTED_ISSUER and untrusted.anchor is None

    by_file = IdentityPolicy.from_files([(pki.root_path, "UID"), (training.directory / "root.pem", "san-uuid")])
    assert by_file.attribute_for(pki.root.certificate) is UID
    assert by_file.attribute_for(training.root) is SAN
    assert by_file.attribute_for(foreign.certificate) is SERIAL  # any other anchor: the default
    assert IdentityPolicy().attribute_for(None) is SERIAL
    with pytest.raises(PkiError, match="'serialNumber', 'UID', 'san-uuid'"):
        IdentityPolicy.from_files([(pki.root_path, "email")])
    with pytest.raises(PkiError, match="cannot read trust store file"):
        IdentityPolicy.from_files([(tmp_path / "missing.pem", "UID")])
