"""Validation with real certificates from the training CA: every Status, precedence, renewal, trust stores."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from app.error_text import user_text
from app.errors import CertificateRejected, PkiError
from app.pki import (
    RENEWAL_WINDOW_DAYS,
    Status,
    TrainingCA,
    TrustStore,
    Verdict,
    card_uuid,
    load_certificate,
    require_trusted,
    validate,
)

PEM = serialization.Encoding.PEM


@pytest.fixture
def ca(tmp_path: Path) -> TrainingCA:
    return TrainingCA.load_or_create(tmp_path / "ca")


def _p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _card(ca: TrainingCA, **kwargs: object) -> x509.Certificate:
    return ca.issue_card_certificate(_p256().public_key(), name="Dr Ada Test", card_uuid=uuid.uuid4(),
                                     **kwargs)


def _key(ca: TrainingCA, name: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key((ca.directory / name).read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _usage(**flags: bool) -> x509.KeyUsage:
    names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    return x509.KeyUsage(**{n: flags.get(n, False) for n in names})


def _make(public_key: object, signer: object, issuer: x509.Certificate | None, *, cn: str = "Dr Made Up",
          start: datetime | None = None, days: int = 30, ca: bool = False, path_length: int | None = None,
          usage: x509.KeyUsage | None = None, eku: list | None = None,
          extra: tuple[x509.ExtensionType, ...] = ()) -> x509.Certificate:
    """A certificate built by hand (issuer None: self-signed), for profiles the training CA never issues."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    start = start or datetime.now(UTC) - timedelta(minutes=5)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer.subject if issuer else subject).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    for extension in extra:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(signer, hashes.SHA256())


def _by_issuing(ca: TrainingCA, **kwargs: object) -> x509.Certificate:
    key = _p256()
    return _make(key.public_key(), _key(ca, "issuing.key"), ca.issuing, **kwargs)


LOGIN = {"usage": _usage(digital_signature=True), "eku": [ExtendedKeyUsageOID.CLIENT_AUTH]}


# --- trusted ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [rsa.generate_private_key(65537, 2048), _p256()], ids=["rsa2048", "p256"])
def test_trusted(ca: TrainingCA, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
    cert = ca.issue_card_certificate(key.public_key(), name="Dr Ada Test", card_uuid=uuid.uuid4())
    verdict = validate(cert, ca.trust_store())
    assert verdict.status is Status.TRUSTED and verdict.ok
    assert verdict.subject == cert.subject.rfc4514_string() and "Dr Ada Test" in verdict.subject
    assert verdict.issuer == ca.issuing.subject.rfc4514_string()
    assert verdict.serial == cert.serial_number
    assert verdict.not_after == cert.not_valid_after_utc
    assert verdict.days_until_expiry == 364 and not verdict.renewal_due
    assert "not on the CRL" in verdict.detail


def test_trusted_without_a_crl_says_revocation_was_not_checked(ca: TrainingCA) -> None:
    verdict = validate(_card(ca), TrustStore(anchors=(ca.root,), intermediates=(ca.issuing,)))
    assert verdict.ok
    assert "revocation of 'Dr Ada Test' not checked" in verdict.detail


def test_hand_built_login_certificate_is_trusted(ca: TrainingCA) -> None:
    assert validate(_by_issuing(ca, **LOGIN), ca.trust_store()).ok


# --- validity -----------------------------------------------------------------------------------------------


def test_expired(ca: TrainingCA) -> None:
    cert = _card(ca, not_before=datetime.now(UTC) - timedelta(days=400), days=365)
    verdict = validate(cert, ca.trust_store())
    assert verdict.status is Status.EXPIRED
    assert verdict.days_until_expiry in (-35, -36)
    assert not verdict.renewal_due
    assert "the certificate expired on" in verdict.detail


def test_not_yet_valid(ca: TrainingCA) -> None:
    cert = _card(ca, not_before=datetime.now(UTC) + timedelta(days=2))
    verdict = validate(cert, ca.trust_store())
    assert verdict.status is Status.NOT_YET_VALID
    assert "is valid from" in verdict.detail


def test_expired_intermediate_is_named(ca: TrainingCA) -> None:
    sub_key = _p256()
    old_sub = _make(sub_key.public_key(), _key(ca, "root.key"), ca.root, cn="Old Sub CA", ca=True,
                    path_length=0, usage=_usage(key_cert_sign=True, crl_sign=True),
                    start=datetime.now(UTC) - timedelta(days=100), days=50)
    leaf_key = _p256()
    leaf = _make(leaf_key.public_key(), sub_key, old_sub, **LOGIN)
    verdict = validate(leaf, TrustStore(anchors=(ca.root,), intermediates=(old_sub,)))
    assert verdict.status is Status.EXPIRED
    assert "'Old Sub CA' expired" in verdict.detail


# --- revocation ---------------------------------------------------------------------------------------------


def test_revoked(ca: TrainingCA) -> None:
    cert = _card(ca)
    before = ca.trust_store()
    ca.revoke(cert.serial_number, x509.ReasonFlags.key_compromise)
    assert validate(cert, before).ok  # a trust store is a snapshot
    verdict = validate(cert, ca.trust_store())
    assert verdict.status is Status.REVOKED
    assert "keyCompromise" in verdict.detail


def test_revoked_outranks_expired(ca: TrainingCA) -> None:
    cert = _card(ca, not_before=datetime.now(UTC) - timedelta(days=400), days=365)
    ca.revoke(cert.serial_number)
    verdict = validate(cert, ca.trust_store())
    assert verdict.status is Status.REVOKED
    assert "also: the certificate expired" in verdict.detail


def test_revoked_issuing_ca(ca: TrainingCA) -> None:
    now = datetime.now(UTC)
    entry = (x509.RevokedCertificateBuilder().serial_number(ca.issuing.serial_number)
             .revocation_date(now).build())
    root_crl = (x509.CertificateRevocationListBuilder().issuer_name(ca.root.subject).last_update(now)
                .next_update(now + timedelta(days=7)).add_revoked_certificate(entry)
                .sign(_key(ca, "root.key"), hashes.SHA384()))
    store = TrustStore(anchors=(ca.root,), intermediates=(ca.issuing,), crls=(ca.crl(), root_crl))
    verdict = validate(_card(ca), store)
    assert verdict.status is Status.REVOKED
    assert "the issuing certificate 'Spine Desk Training Issuing CA 1' was revoked" in verdict.detail


def test_same_named_cas_share_a_store(ca: TrainingCA, tmp_path: Path) -> None:
    other = TrainingCA.load_or_create(tmp_path / "other")  # identical names; told apart by key identifiers
    store = TrustStore(anchors=(ca.root, other.root), intermediates=(ca.issuing, other.issuing),
                       crls=(ca.crl(), other.crl()))
    assert validate(_card(ca), store).ok
    assert validate(_card(other), store).ok


def _flip_signature(crl: x509.CertificateRevocationList) -> x509.CertificateRevocationList:
    der = bytearray(crl.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # last byte of the signature's s value: still well-formed, no longer valid
    return x509.load_der_x509_crl(bytes(der))


def test_tampered_crl_signature(ca: TrainingCA) -> None:
    store = TrustStore(anchors=(ca.root,), intermediates=(ca.issuing,), crls=(_flip_signature(ca.crl()),))
    verdict = validate(_card(ca), store)
    assert verdict.status is Status.UNTRUSTED_ISSUER
    assert "bad signature" in verdict.detail


def test_forged_crl_cannot_unrevoke_or_hide(ca: TrainingCA) -> None:
    aki = ca.crl().extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    now = datetime.now(UTC)
    forged = (x509.CertificateRevocationListBuilder().issuer_name(ca.issuing.subject).last_update(now)
              .next_update(now + timedelta(days=7)).add_extension(aki, critical=False)
              .sign(ec.generate_private_key(ec.SECP384R1()), hashes.SHA384()))
    store = TrustStore(anchors=(ca.root,), intermediates=(ca.issuing,), crls=(forged,))
    assert validate(_card(ca), store).status is Status.UNTRUSTED_ISSUER


def test_stale_crl(ca: TrainingCA) -> None:
    verdict = validate(_card(ca), ca.trust_store(), now=datetime.now(UTC) + timedelta(days=8))
    assert verdict.status is Status.UNTRUSTED_ISSUER
    assert "CRL out of date" in verdict.detail


# --- untrusted issuer ---------------------------------------------------------------------------------------


def test_card_from_a_foreign_training_ca(ca: TrainingCA, tmp_path: Path) -> None:
    foreign = TrainingCA.load_or_create(tmp_path / "foreign")
    verdict = validate(_card(foreign), ca.trust_store())  # same names, different keys
    assert verdict.status is Status.UNTRUSTED_ISSUER
    assert "does not verify" in verdict.detail


def test_self_signed_leaf(ca: TrainingCA) -> None:
    key = _p256()
    verdict = validate(_make(key.public_key(), key, None, **LOGIN), ca.trust_store())
    assert verdict.status is Status.UNTRUSTED_ISSUER
    assert "no trusted authority named 'CN=Dr Made Up'" in verdict.detail


def test_issuer_that_is_not_a_ca(ca: TrainingCA) -> None:
    middle_key = _p256()
    middle = _make(middle_key.public_key(), _key(ca, "issuing.key"), ca.issuing, cn="Not A CA", **LOGIN)
    leaf = _make(_p256().public_key(), middle_key, middle, **LOGIN)
    store = TrustStore(anchors=(ca.root,), intermediates=(ca.issuing, middle), crls=(ca.crl(),))
    verdict = validate(leaf, store)
    assert verdict.status is Status.UNTRUSTED_ISSUER
    assert "'Not A CA' is not a certificate authority" in verdict.detail


def test_path_length_is_enforced(ca: TrainingCA) -> None:
    sub_key = _p256()
    sub = _make(sub_key.public_key(), _key(ca, "issuing.key"), ca.issuing, cn="Too Deep CA", ca=True,
                usage=_usage(key_cert_sign=True))
    leaf = _make(_p256().public_key(), sub_key, sub, **LOGIN)
    store = TrustStore(anchors=(ca.root,), intermediates=(ca.issuing, sub), crls=(ca.crl(),))
    verdict = validate(leaf, store)
    assert verdict.status is Status.UNTRUSTED_ISSUER
    assert "allows only 0 CA(s) below it" in verdict.detail


# --- usage and malformed ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    {"usage": _usage(key_encipherment=True), "eku": [ExtendedKeyUsageOID.CLIENT_AUTH]},
    {"eku": [ExtendedKeyUsageOID.CLIENT_AUTH]},
    {"usage": _usage(digital_signature=True), "eku": [ExtendedKeyUsageOID.SERVER_AUTH]},
    {"usage": _usage(digital_signature=True)},
], ids=["no-digital-signature", "no-key-usage", "server-auth-only", "no-eku"])
def test_wrong_usage(ca: TrainingCA, kwargs: dict) -> None:
    verdict = validate(_by_issuing(ca, **kwargs), ca.trust_store())
    assert verdict.status is Status.WRONG_USAGE


def test_client_auth_can_be_waived(ca: TrainingCA) -> None:
    cert = _by_issuing(ca, usage=_usage(digital_signature=True))
    assert validate(cert, ca.trust_store(), require_client_auth=False).ok


BAD_PEM = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
JUNK = [b"", b"junk", BAD_PEM, b"\x30\x03\x02\x01\x01"]


@pytest.mark.parametrize("junk", JUNK)
def test_load_certificate_rejects_junk(junk: bytes) -> None:
    with pytest.raises(CertificateRejected) as caught:
        load_certificate(junk)
    assert caught.value.status == Status.MALFORMED.value == "malformed"


def test_load_certificate_reads_pem_and_der(ca: TrainingCA) -> None:
    cert = _card(ca)
    assert load_certificate(cert.public_bytes(PEM)) == cert
    assert load_certificate(cert.public_bytes(serialization.Encoding.DER)) == cert


def test_garbled_extension_is_malformed(ca: TrainingCA) -> None:
    bad_usage = x509.UnrecognizedExtension(ExtensionOID.KEY_USAGE, b"\x01\x02")
    cert = _by_issuing(ca, eku=[ExtendedKeyUsageOID.CLIENT_AUTH], extra=(bad_usage,))
    verdict = validate(cert, ca.trust_store())
    assert verdict.status is Status.MALFORMED and not verdict.ok
    assert verdict.serial == cert.serial_number and "cannot be read" in verdict.detail
    with pytest.raises(CertificateRejected, match="malformed"):
        load_certificate(cert.public_bytes(serialization.Encoding.DER))


# --- renewal, require_trusted, helpers ----------------------------------------------------------------------


@pytest.mark.parametrize(("days", "due"), [(30, True), (RENEWAL_WINDOW_DAYS, True), (200, False)])
def test_renewal_due(ca: TrainingCA, days: int, due: bool) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    verdict = validate(_card(ca, not_before=now, days=days), ca.trust_store(), now=now)
    assert verdict.ok
    assert verdict.days_until_expiry == days
    assert verdict.renewal_due is due


def test_custom_renewal_window(ca: TrainingCA) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    verdict = validate(_card(ca, not_before=now, days=200), ca.trust_store(), now=now, renewal_days=365)
    assert verdict.renewal_due


def test_naive_now_is_refused(ca: TrainingCA) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        validate(_card(ca), ca.trust_store(), now=datetime.now())  # naive on purpose


def test_require_trusted(ca: TrainingCA, tmp_path: Path) -> None:
    good = _card(ca)
    assert isinstance(require_trusted(good, ca.trust_store()), Verdict)
    ca.revoke(good.serial_number)
    with pytest.raises(CertificateRejected) as caught:
        require_trusted(good, ca.trust_store())
    assert caught.value.status == "revoked"
    assert "revoked" in user_text(caught.value)
    foreign = _card(TrainingCA.load_or_create(tmp_path / "foreign"))
    with pytest.raises(CertificateRejected) as caught:
        require_trusted(foreign, ca.trust_store())
    assert caught.value.status == "untrusted_issuer" and caught.value.detail


def test_every_failure_status_has_user_text() -> None:
    for status in Status:
        if status is not Status.TRUSTED:
            assert "was rejected (" not in user_text(CertificateRejected(status.value))


def test_card_uuid_absent(ca: TrainingCA) -> None:
    assert card_uuid(ca.root) is None
    assert card_uuid(_by_issuing(ca, **LOGIN)) is None


# --- trust store files --------------------------------------------------------------------------------------


def test_trust_store_from_pem_files(ca: TrainingCA, tmp_path: Path) -> None:
    chain = tmp_path / "chain.pem"
    chain.write_bytes(ca.issuing.public_bytes(PEM) + ca.root.public_bytes(PEM))
    der_crl = tmp_path / "crl.der"
    der_crl.write_bytes(ca.crl().public_bytes(serialization.Encoding.DER))
    root, crl = ca.directory / "root.pem", ca.directory / "crl.pem"
    store = TrustStore.from_pem_files([root], [chain], [crl, der_crl])
    assert store.anchors == (ca.root,) and store.intermediates == (ca.issuing, ca.root)
    assert len(store.crls) == 2
    cert = _card(ca)
    assert validate(cert, store).ok
    ca.revoke(cert.serial_number)
    again = TrustStore.from_pem_files([ca.directory / "root.pem"], [chain], [ca.directory / "crl.pem"])
    assert validate(cert, again).status is Status.REVOKED


@pytest.mark.parametrize("content", [b"not a certificate", None], ids=["junk", "missing"])
def test_trust_store_bad_file_names_the_path(tmp_path: Path, content: bytes | None) -> None:
    bad = tmp_path / "anchors" / "bad.pem"
    bad.parent.mkdir()
    if content is not None:
        bad.write_bytes(content)
    with pytest.raises(PkiError, match=r"bad\.pem") as caught:
        TrustStore.from_pem_files([bad])
    assert str(bad) in str(caught.value)


def test_trust_store_bad_crl_names_the_path(ca: TrainingCA, tmp_path: Path) -> None:
    bad = tmp_path / "bad-crl.pem"
    bad.write_bytes(b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")
    with pytest.raises(PkiError, match=r"bad-crl\.pem"):
        TrustStore.from_pem_files([ca.directory / "root.pem"], crls=[bad])


def test_trust_store_needs_an_anchor() -> None:
    with pytest.raises(PkiError, match="no trust anchor"):
        TrustStore.from_pem_files([])
