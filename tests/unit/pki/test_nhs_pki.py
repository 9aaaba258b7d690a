"""The NHS-shaped test PKI (tests/support/nhs_pki.py) is what the identity and PKCS#11 tests build on: check its
shape against the real validator, so a mistake in it cannot make those tests pass for the wrong reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from app.pki import Status, validate
from tests.support.nhs_pki import NhsTestPki, make_foreign_pki

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> NhsTestPki:
    return NhsTestPki.create(tmp_path_factory.mktemp("nhs"), now=NOW)


def test_card_certificate_is_trusted_with_revocation_required(pki: NhsTestPki) -> None:
    card = pki.issue_card(name="Ada Clinician", uuid="555000111222", now=NOW)
    verdict = validate(card.certificate, pki.trust_store(), now=NOW + timedelta(hours=1))
    assert verdict.status is Status.TRUSTED, verdict.detail
    assert "revocation was not checked" not in verdict.detail
    subject = card.certificate.subject
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)] == ["555000111222"]
    assert isinstance(card.key, rsa.RSAPrivateKey) and card.key.key_size == 2048


def test_uid_variant_p256_and_no_uuid(pki: NhsTestPki) -> None:
    uid = pki.issue_card(name="Bo Nurse", uuid="555000333444", now=NOW, alg="p256", attribute="UID")
    assert isinstance(uid.key, ec.EllipticCurvePrivateKey)
    assert [a.value for a in uid.certificate.subject.get_attributes_for_oid(NameOID.USER_ID)] == ["555000333444"]
    assert not uid.certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    bare = pki.issue_card(name="No Number", uuid=None, now=NOW, attribute="none")
    assert not bare.certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    for card in (uid, bare):
        assert validate(card.certificate, pki.trust_store(), now=NOW).ok


def test_renewal_keeps_identity_with_new_key_and_serial(tmp_path: Path) -> None:
    pki = NhsTestPki.create(tmp_path, now=NOW)
    later = NOW + timedelta(days=600)
    old = pki.issue_card(name="Cy Doctor", uuid="555000555666", now=NOW, alg="p256")
    new = pki.renew(old, now=later)
    assert new.certificate.subject == old.certificate.subject
    assert new.serial != old.serial and new.key.public_key() != old.key.public_key()
    assert isinstance(new.key, ec.EllipticCurvePrivateKey)
    assert validate(new.certificate, pki.trust_store(), now=later).status is Status.UNTRUSTED_ISSUER  # old CRLs
    pki.publish_crls(later)
    assert validate(new.certificate, pki.trust_store(), now=later).ok


def test_revoking_a_card_and_the_issuing_ca(tmp_path: Path) -> None:
    pki = NhsTestPki.create(tmp_path, now=NOW)
    card = pki.issue_card(name="Di Porter", uuid="555000777888", now=NOW)
    other = pki.issue_card(name="Ed Porter", uuid="555000777999", now=NOW)
    before = pki.issuing.crl_path.read_bytes()
    pki.revoke(card, now=NOW + timedelta(minutes=1))
    assert pki.issuing.crl_path.read_bytes() != before
    assert validate(card.certificate, pki.trust_store(), now=NOW + timedelta(minutes=2)).status is Status.REVOKED
    assert validate(other.certificate, pki.trust_store(), now=NOW + timedelta(minutes=2)).ok
    pki.revoke_issuing_ca(now=NOW + timedelta(minutes=3))
    assert validate(other.certificate, pki.trust_store(), now=NOW + timedelta(minutes=4)).status is Status.REVOKED
    crl = x509.load_pem_x509_crl(pki.root.crl_path.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(pki.issuing.certificate.serial_number) is not None


@pytest.mark.parametrize("impostor", [False, True])
def test_foreign_pki_is_not_trusted(pki: NhsTestPki, tmp_path: Path, impostor: bool) -> None:
    foreign = make_foreign_pki(tmp_path, now=NOW, impostor=impostor)
    card = foreign.issue_card(name="Mal Actor", uuid="555000111222", now=NOW)
    assert validate(card.certificate, pki.trust_store(), now=NOW).status is Status.UNTRUSTED_ISSUER


def test_only_certificates_and_crls_are_written(pki: NhsTestPki) -> None:
    pki.issue_card(name="Fi Clerk", uuid="555000999000", now=NOW)
    for path in pki.directory.rglob("*"):
        if path.is_file():
            assert b"PRIVATE KEY" not in path.read_bytes(), path


def test_naive_now_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        NhsTestPki.create(tmp_path, now=datetime(2026, 3, 1))
