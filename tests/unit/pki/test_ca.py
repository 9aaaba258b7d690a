"""The training CA: creation, reuse, files and permissions, card certificates, revocation and damage."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.errors import PkiError
from app.pki import TrainingCA, card_uuid
from tests.clock import Clock

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


@pytest.fixture
def ca(tmp_path: Path) -> TrainingCA:
    return TrainingCA.load_or_create(tmp_path / "ca")


def _ext(cert: x509.Certificate | x509.CertificateRevocationList, kind: type) -> x509.Extension:
    return cert.extensions.get_extension_for_class(kind)


def _names(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() + cert.issuer.rfc4514_string()


def test_creates_the_ca_files(ca: TrainingCA) -> None:
    names = {p.name for p in ca.directory.iterdir() if not p.name.startswith(".")}
    assert names == {"root.pem", "root.key", "issuing.pem", "issuing.key", "crl.pem", "revoked.json"}


def test_second_load_reuses_the_same_ca(ca: TrainingCA) -> None:
    again = TrainingCA.load_or_create(ca.directory)
    assert again.root == ca.root
    assert again.issuing == ca.issuing


def test_concurrent_first_use_creates_one_ca(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        roots = list(pool.map(lambda _: TrainingCA.load_or_create(tmp_path / "ca").root, range(8)))
    assert all(root == roots[0] for root in roots)


def _root_pem_in_child(directory: str) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return TrainingCA.load_or_create(Path(directory)).root.public_bytes(serialization.Encoding.PEM)


def test_concurrent_first_use_across_processes(tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        pems = pool.map(_root_pem_in_child, [str(tmp_path / "ca")] * 3)
    assert len(set(pems)) == 1


@posix_only
def test_private_keys_and_folder_are_private(ca: TrainingCA) -> None:
    assert stat.S_IMODE(ca.directory.stat().st_mode) == 0o700
    for name in ("root.key", "issuing.key"):
        assert stat.S_IMODE((ca.directory / name).stat().st_mode) == 0o600


@posix_only
def test_loose_key_mode_is_tightened_on_load(ca: TrainingCA) -> None:
    os.chmod(ca.directory / "issuing.key", 0o644)
    TrainingCA.load_or_create(ca.directory)
    assert stat.S_IMODE((ca.directory / "issuing.key").stat().st_mode) == 0o600


def test_names_say_training_and_never_nhs(ca: TrainingCA) -> None:
    card = ca.issue_card_certificate(ec.generate_private_key(ec.SECP256R1()).public_key(),
                                     name="Dr Ada Test", card_uuid=uuid.uuid4())
    for cert in (ca.root, ca.issuing, card):
        assert "Spine Desk Training" in _names(cert)
        assert "nhs" not in _names(cert).lower()
    cn = ca.root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "Spine Desk Training Root CA"
    ou = ca.root.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value
    assert ou == "Training only - not for live use"


def test_ca_certificate_profile(ca: TrainingCA) -> None:
    root_bc, issuing_bc = _ext(ca.root, x509.BasicConstraints), _ext(ca.issuing, x509.BasicConstraints)
    assert root_bc.critical and root_bc.value.ca and root_bc.value.path_length == 1
    assert issuing_bc.critical and issuing_bc.value.ca and issuing_bc.value.path_length == 0
    for cert in (ca.root, ca.issuing):
        ku = _ext(cert, x509.KeyUsage)
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
        assert not ku.value.digital_signature
    ca.root.verify_directly_issued_by(ca.root)
    ca.issuing.verify_directly_issued_by(ca.root)
    root_ski = _ext(ca.root, x509.SubjectKeyIdentifier).value.digest
    assert _ext(ca.issuing, x509.AuthorityKeyIdentifier).value.key_identifier == root_ski
    root_years = (ca.root.not_valid_after_utc - ca.root.not_valid_before_utc).days / 365.25
    issuing_years = (ca.issuing.not_valid_after_utc - ca.issuing.not_valid_before_utc).days / 365.25
    assert 19.9 < root_years < 20.1
    assert 9.9 < issuing_years < 10.1


CardKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
CARD_KEYS = [rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP256R1())]


@pytest.mark.parametrize("key", CARD_KEYS, ids=["rsa2048", "p256"])
def test_card_certificate_profile(ca: TrainingCA, key: CardKey) -> None:
    card = uuid.uuid4()
    start = ca.issuing.not_valid_before_utc + timedelta(days=1, hours=3, seconds=5)  # inside the CA's own validity
    cert = ca.issue_card_certificate(key.public_key(), name="Dr Ada Test", card_uuid=card, days=42,
                                     not_before=start)
    assert card_uuid(cert) == card
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Dr Ada Test"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Spine Desk Training"
    assert cert.issuer == ca.issuing.subject
    assert cert.not_valid_before_utc == start
    assert cert.not_valid_after_utc == start + timedelta(days=42)
    ku = _ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert _ext(cert, x509.BasicConstraints).value.ca is False
    issuing_ski = _ext(ca.issuing, x509.SubjectKeyIdentifier).value.digest
    assert _ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == issuing_ski
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    assert _ext(cert, x509.SubjectKeyIdentifier).value == ski
    assert 0 < cert.serial_number < 2**159
    cert.verify_directly_issued_by(ca.issuing)


def test_default_validity_starts_a_little_in_the_past(ca: TrainingCA) -> None:
    before = datetime.now(UTC)
    cert = ca.issue_card_certificate(ec.generate_private_key(ec.SECP256R1()).public_key(), name="A",
                                     card_uuid=uuid.uuid4())
    assert before - timedelta(minutes=6) < cert.not_valid_before_utc < before
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=365)


@pytest.mark.parametrize(("key", "kwargs"), [
    (rsa.generate_private_key(65537, 1024).public_key(), {}),
    (ed25519.Ed25519PrivateKey.generate().public_key(), {}),
    (ec.generate_private_key(ec.SECP256R1()).public_key(), {"name": "  "}),
    (ec.generate_private_key(ec.SECP256R1()).public_key(), {"name": "x" * 65}),
    (ec.generate_private_key(ec.SECP256R1()).public_key(), {"days": 0}),
    (ec.generate_private_key(ec.SECP256R1()).public_key(), {"days": 11 * 365}),
], ids=["rsa1024", "ed25519", "blank-name", "long-name", "zero-days", "outlives-ca"])
def test_refuses_bad_requests(ca: TrainingCA, key: object, kwargs: dict) -> None:
    with pytest.raises(PkiError):
        ca.issue_card_certificate(key, card_uuid=uuid.uuid4(), **{"name": "Dr A", **kwargs})


def test_crl_profile(ca: TrainingCA) -> None:
    crl = ca.crl()
    assert crl.issuer == ca.issuing.subject
    assert crl.is_signature_valid(ca.issuing.public_key())
    assert crl.next_update_utc - crl.last_update_utc == timedelta(days=7)
    assert abs(crl.last_update_utc - datetime.now(UTC)) < timedelta(minutes=1)
    issuing_ski = _ext(ca.issuing, x509.SubjectKeyIdentifier).value.digest
    assert _ext(crl, x509.AuthorityKeyIdentifier).value.key_identifier == issuing_ski
    assert x509.load_pem_x509_crl((ca.directory / "crl.pem").read_bytes()) == crl
    assert len(crl) == 0


def test_revoke_persists_and_republishes(ca: TrainingCA) -> None:
    number = _ext(ca.crl(), x509.CRLNumber).value.crl_number
    ca.revoke(1234, x509.ReasonFlags.key_compromise)
    ca.revoke(1234, x509.ReasonFlags.superseded)  # already revoked: the first entry stays
    ca.revoke(99)
    crl = TrainingCA.load_or_create(ca.directory).crl()
    assert _ext(crl, x509.CRLNumber).value.crl_number == number + 3
    entry = crl.get_revoked_certificate_by_serial_number(1234)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise
    unspecified = crl.get_revoked_certificate_by_serial_number(99)
    assert unspecified is not None and len(unspecified.extensions) == 0  # RFC 5280: no "unspecified" code
    state = json.loads((ca.directory / "revoked.json").read_text())
    assert state["revoked"]["1234"]["reason"] == "keyCompromise"


def test_concurrent_revocations_are_all_kept(ca: TrainingCA) -> None:
    serials = range(1000, 1016)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda s: TrainingCA.load_or_create(ca.directory).revoke(s), serials))
    crl = ca.crl()
    assert all(crl.get_revoked_certificate_by_serial_number(s) is not None for s in serials)


def test_refuses_silly_revocations(ca: TrainingCA) -> None:
    with pytest.raises(PkiError):
        ca.revoke(0)
    with pytest.raises(PkiError):
        ca.revoke(5, x509.ReasonFlags.remove_from_crl)


def test_missing_crl_is_republished(ca: TrainingCA) -> None:
    (ca.directory / "crl.pem").unlink()
    assert ca.crl().is_signature_valid(ca.issuing.public_key())
    assert (ca.directory / "crl.pem").exists()


def test_unfinished_creation_is_redone(ca: TrainingCA) -> None:
    (ca.directory / "root.pem").unlink()  # root.pem is written last; without it nothing was finished
    again = TrainingCA.load_or_create(ca.directory)
    assert again.root != ca.root
    again.issuing.verify_directly_issued_by(again.root)


@pytest.mark.parametrize(("name", "damage"), [
    ("issuing.key", b"not a key"),
    ("root.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
    ("revoked.json", b"{\"crl_number\": "),
    ("crl.pem", b"garbage"),
], ids=["key", "cert", "state", "crl"])
def test_damaged_file_names_itself(ca: TrainingCA, name: str, damage: bytes) -> None:
    (ca.directory / name).write_bytes(damage)
    with pytest.raises(PkiError, match=name) as caught:
        TrainingCA.load_or_create(ca.directory)
    assert str(ca.directory) in str(caught.value)


def test_swapped_key_is_detected(ca: TrainingCA) -> None:
    (ca.directory / "root.key").write_bytes((ca.directory / "issuing.key").read_bytes())
    with pytest.raises(PkiError, match=r"root\.key.*not the key of root\.pem"):
        TrainingCA.load_or_create(ca.directory)


def test_issuing_certificate_from_another_root_is_detected(ca: TrainingCA, tmp_path: Path) -> None:
    other = TrainingCA.load_or_create(tmp_path / "other")
    for name in ("issuing.pem", "issuing.key"):
        (ca.directory / name).write_bytes((other.directory / name).read_bytes())
    with pytest.raises(PkiError, match=r"issuing\.pem.*not issued by root\.pem"):
        TrainingCA.load_or_create(ca.directory)




def test_every_date_comes_from_the_ca_clock(tmp_path: Path) -> None:
    """A CA built on a fixed date is valid at that date, and so are its card certificates, revocations and CRLs:
    nothing reads the system clock behind the caller's back."""
    from app.pki import validate

    clock = Clock(datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC))
    ca = TrainingCA.load_or_create(tmp_path / "ca", clock=clock)
    assert ca.root.not_valid_before_utc == clock.at - timedelta(minutes=5)
    assert ca.issuing.not_valid_before_utc == clock.at - timedelta(minutes=5)
    crl = ca.crl()
    assert crl.last_update_utc == clock.at and crl.next_update_utc == clock.at + timedelta(days=7)
    cert = ca.issue_card_certificate(ec.generate_private_key(ec.SECP256R1()).public_key(), name="Dr A",
                                     card_uuid=uuid.uuid4(), days=30)
    assert cert.not_valid_before_utc == clock.at - timedelta(minutes=5)
    assert validate(cert, ca.trust_store(), now=clock.at).ok

    clock.at += timedelta(days=6, hours=1)  # within a day of nextUpdate: republished from the clock
    assert ca.crl().last_update_utc == clock.at
    ca.revoke(cert.serial_number)
    entry = ca.crl().get_revoked_certificate_by_serial_number(cert.serial_number)
    assert entry is not None and entry.revocation_date_utc == clock.at
    assert not validate(cert, ca.trust_store(), now=clock.at).ok

    # Loading the same folder with another clock keeps the CA and refreshes the CRL from that clock.
    later = Clock(clock.at + timedelta(days=30))
    again = TrainingCA.load_or_create(tmp_path / "ca", clock=later)
    assert again.root == ca.root and again.crl().last_update_utc == later.at


def test_a_naive_clock_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        TrainingCA.load_or_create(tmp_path / "ca", clock=lambda: datetime(2030, 1, 1))
