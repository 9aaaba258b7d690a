"""Security review fixes: every CRL counts (delta / scoped / critical extensions), required revocation and CRL
dates (S2), and RFC 5280 path checks: critical extensions, name constraints, weak hashes and keys (S3)."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from app.pki import Status, TrainingCA, TrustStore, validate
from tests.unit.pki.test_validation import _card, _key, _p256, _usage

ISSUING = "'Spine Desk Training Issuing CA 1'"
ROOT = "'Spine Desk Training Root CA'"
UNKNOWN_OID = ObjectIdentifier("1.3.6.1.4.1.55555.1.2")
UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")


@pytest.fixture
def ca(tmp_path: Path) -> TrainingCA:
    return TrainingCA.load_or_create(tmp_path / "ca")


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _crl(issuer: x509.Certificate, key: ec.EllipticCurvePrivateKey, *,
         revoked: dict[int, x509.ReasonFlags] | None = None, last: datetime | None = None,
         lifetime: timedelta = timedelta(days=7),
         extensions: tuple[tuple[x509.ExtensionType, bool], ...] = ()) -> x509.CertificateRevocationList:
    last = last or _now() - timedelta(minutes=1)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject).last_update(last)
               .next_update(last + lifetime).add_extension(x509.CRLNumber(7), critical=False)
               .add_extension(_aki(issuer), critical=False))
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    for serial, reason in (revoked or {}).items():
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(last)
        builder = builder.add_revoked_certificate(
            entry.add_extension(x509.CRLReason(reason), critical=False).build())
    return builder.sign(key, hashes.SHA384())


def _issuing_crl(ca: TrainingCA, **kwargs: object) -> x509.CertificateRevocationList:
    return _crl(ca.issuing, _key(ca, "issuing.key"), **kwargs)


def _root_crl(ca: TrainingCA, **kwargs: object) -> x509.CertificateRevocationList:
    return _crl(ca.root, _key(ca, "root.key"), **kwargs)


def _store(ca: TrainingCA, *crls: x509.CertificateRevocationList, require: bool = False,
           intermediates: tuple[x509.Certificate, ...] | None = None) -> TrustStore:
    return TrustStore(anchors=(ca.root,), intermediates=(ca.issuing,) if intermediates is None else intermediates,
                      crls=crls, require_revocation=require)


def _idp(**flags: bool) -> x509.IssuingDistributionPoint:
    return x509.IssuingDistributionPoint(
        full_name=None, relative_name=None, only_contains_user_certs=flags.get("users", False),
        only_contains_ca_certs=flags.get("cas", False), only_some_reasons=None, indirect_crl=False,
        only_contains_attribute_certs=False)


def _build(public_key: object, signer: object, issuer: x509.Certificate | None, *,
           subject: str | x509.Name = "Dr Made Up", ca: bool = False, path_length: int | None = None,
           san: list[x509.GeneralName] | None = None, usage: x509.KeyUsage | None = None,
           extensions: tuple[tuple[x509.ExtensionType, bool], ...] = ()) -> x509.Certificate:
    """A login certificate (or, with ``ca``, a CA certificate) built by hand; issuer None: self-signed."""
    name = subject if isinstance(subject, x509.Name) else x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    start = _now() - timedelta(minutes=5)
    usage = usage or (_usage(key_cert_sign=True, crl_sign=True) if ca else _usage(digital_signature=True))
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject if issuer else name)
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
               .add_extension(usage, critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
    if issuer is not None:
        builder = builder.add_extension(_aki(issuer), critical=False)
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signer, hashes.SHA256())


def _sub_ca(ca: TrainingCA, *extensions: tuple[x509.ExtensionType, bool], key: object = None,
            name: str = "Sub CA") -> tuple[x509.Certificate, object]:
    """A CA directly below the training root (its path length allows one CA below it)."""
    key = key or _p256()
    return _build(key.public_key(), _key(ca, "root.key"), ca.root, subject=name, ca=True, path_length=0,
                  extensions=extensions), key


def _leaf_under(sub: x509.Certificate, sub_key: object, **kwargs: object) -> x509.Certificate:
    return _build(_p256().public_key(), sub_key, sub, **kwargs)


# --- DER surgery: what cryptography refuses to build (SHA-1 / MD5 signatures, a CRL without nextUpdate) ----


def _tlv(data: bytes, at: int) -> tuple[int, int]:
    """(start of contents, end) of the DER element at ``at``."""
    length, start = data[at + 1], at + 2
    if length & 0x80:
        count = length & 0x7F
        length, start = int.from_bytes(data[start:start + count], "big"), start + count
    return start, start + length


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    size = bytes([n]) if n < 0x80 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes(
        (n.bit_length() + 7) // 8, "big")
    return bytes([tag]) + size + content


def _children(data: bytes) -> list[bytes]:
    start, end = _tlv(data, 0)
    items, at = [], start
    while at < end:
        _, stop = _tlv(data, at)
        items.append(data[at:stop])
        at = stop
    return items


ECDSA_SHA1 = bytes.fromhex("300906072a8648ce3d0401")
RSA_MD5 = bytes.fromhex("300d06092a864886f70d0101040500")


def _resign(signed: x509.Certificate | x509.CertificateRevocationList, key: object, *,
            algorithm: bytes | None = None, digest: hashes.HashAlgorithm | None = None,
            edit: Callable[[list[bytes]], list[bytes]] = lambda parts: parts) -> bytes:
    """Re-sign ``signed`` with ``key``: its TBS edited, and optionally another signature algorithm."""
    tbs_der, old_algorithm, _ = _children(signed.public_bytes(serialization.Encoding.DER))
    algorithm = algorithm or old_algorithm
    digest = digest or signed.signature_hash_algorithm
    parts = [algorithm if part == old_algorithm else part for part in edit(_children(tbs_der))]
    tbs = _der(0x30, b"".join(parts))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(tbs, ec.ECDSA(digest))
    else:
        signature = key.sign(tbs, padding.PKCS1v15(), digest)
    return _der(0x30, tbs + algorithm + _der(0x03, b"\x00" + signature))


# --- S1: every authentic, in-scope, current CRL is consulted ------------------------------------------------


def test_newer_delta_crl_does_not_unrevoke(ca: TrainingCA) -> None:
    cert = _card(ca)
    ca.revoke(cert.serial_number, x509.ReasonFlags.key_compromise)
    delta = _issuing_crl(ca, last=_now() + timedelta(minutes=1),
                         extensions=((x509.DeltaCRLIndicator(1), True),))
    verdict = validate(cert, _store(ca, ca.crl(), delta))
    assert verdict.status is Status.REVOKED
    assert "keyCompromise" in verdict.detail


def test_delta_crl_alone_cannot_clear(ca: TrainingCA) -> None:
    delta = _issuing_crl(ca, extensions=((x509.DeltaCRLIndicator(1), True),))
    verdict = validate(_card(ca), _store(ca, delta))
    assert verdict.ok and "not on the CRL" not in verdict.detail
    assert "revocation of 'Dr Ada Test' not checked" in verdict.detail and "delta CRL" in verdict.detail
    strict = validate(_card(ca), _store(ca, delta, _root_crl(ca), require=True))
    assert strict.status is Status.UNTRUSTED_ISSUER
    assert f"revocation cannot be checked: no current CRL from {ISSUING}" in strict.detail


def test_delta_crl_still_proves_revocation_but_remove_from_crl_does_not(ca: TrainingCA) -> None:
    cert = _card(ca)
    listed = _issuing_crl(ca, revoked={cert.serial_number: x509.ReasonFlags.key_compromise},
                          extensions=((x509.DeltaCRLIndicator(1), True),))
    assert validate(cert, _store(ca, ca.crl(), listed)).status is Status.REVOKED
    removed = _issuing_crl(ca, revoked={cert.serial_number: x509.ReasonFlags.remove_from_crl},
                           extensions=((x509.DeltaCRLIndicator(1), True),))
    assert validate(cert, _store(ca, ca.crl(), removed)).ok


def test_ca_only_crl_does_not_clear_a_revoked_leaf(ca: TrainingCA) -> None:
    cert = _card(ca)
    ca.revoke(cert.serial_number)
    ca_only = _issuing_crl(ca, last=_now() + timedelta(minutes=1), extensions=((_idp(cas=True), True),))
    assert validate(cert, _store(ca, ca.crl(), ca_only)).status is Status.REVOKED
    verdict = validate(_card(ca), _store(ca, ca_only))  # out of scope for a leaf: as if there were no CRL
    assert verdict.ok and f"no CRL from {ISSUING}" in verdict.detail
    assert validate(_card(ca), _store(ca, ca_only, _root_crl(ca), require=True)).status is Status.UNTRUSTED_ISSUER


def test_user_only_crl_is_applied_to_leaves_but_not_to_cas(ca: TrainingCA) -> None:
    cert = _card(ca)
    users_only = _issuing_crl(ca, revoked={cert.serial_number: x509.ReasonFlags.superseded},
                              extensions=((_idp(users=True), True),))
    assert validate(cert, _store(ca, users_only)).status is Status.REVOKED
    assert validate(_card(ca), _store(ca, users_only, _root_crl(ca), require=True)).ok
    root_users_only = _root_crl(ca, extensions=((_idp(users=True), True),))
    verdict = validate(_card(ca), _store(ca, ca.crl(), root_users_only, require=True))
    assert verdict.status is Status.UNTRUSTED_ISSUER
    assert f"no current CRL from {ROOT}" in verdict.detail


def test_unknown_critical_crl_extension_cannot_clear(ca: TrainingCA) -> None:
    odd = _issuing_crl(ca, extensions=((x509.UnrecognizedExtension(UNKNOWN_OID, b"\x05\x00"), True),))
    verdict = validate(_card(ca), _store(ca, odd))
    assert verdict.ok and "not on the CRL" not in verdict.detail
    assert UNKNOWN_OID.dotted_string in verdict.detail
    partitioned = x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier("http://crl.example/part1.crl")], relative_name=None,
        only_contains_user_certs=False, only_contains_ca_certs=False, only_some_reasons=None,
        indirect_crl=False, only_contains_attribute_certs=False)
    part = _issuing_crl(ca, extensions=((partitioned, True),))
    assert validate(_card(ca), _store(ca, part, _root_crl(ca), require=True)).status is Status.UNTRUSTED_ISSUER
    harmless = _issuing_crl(ca, extensions=((x509.UnrecognizedExtension(UNKNOWN_OID, b"\x05\x00"), False),))
    assert "not on the CRL" in validate(_card(ca), _store(ca, harmless)).detail


def test_older_current_crl_listing_the_serial_still_revokes(ca: TrainingCA) -> None:
    cert = _card(ca)
    older = _issuing_crl(ca, revoked={cert.serial_number: x509.ReasonFlags.key_compromise},
                         last=_now() - timedelta(hours=2))
    newer = _issuing_crl(ca)  # authentic, current, complete, and silent about the serial
    assert validate(cert, _store(ca, older, newer)).status is Status.REVOKED


def test_several_current_crls_are_all_named_when_clearing(ca: TrainingCA) -> None:
    verdict = validate(_card(ca), _store(ca, ca.crl(), _issuing_crl(ca, last=_now() - timedelta(hours=1))))
    assert verdict.ok and "nor on 1 other current CRL(s)" in verdict.detail


# --- S2: required revocation, CRL dates ---------------------------------------------------------------------


def test_require_revocation_defaults_off() -> None:
    assert TrustStore(anchors=()).require_revocation is False
    assert TrustStore(anchors=(), require_revocation=1).require_revocation is True  # type: ignore[arg-type]


def test_required_revocation_without_a_crl_is_untrusted(ca: TrainingCA) -> None:
    verdict = validate(_card(ca), _store(ca, require=True))
    assert verdict.status is Status.UNTRUSTED_ISSUER
    assert f"revocation cannot be checked: no current CRL from {ISSUING}" in verdict.detail
    assert validate(_card(ca), _store(ca)).ok  # the training default still fails open, and says so


def test_required_revocation_covers_intermediates(ca: TrainingCA) -> None:
    verdict = validate(_card(ca), _store(ca, ca.crl(), require=True))
    assert verdict.status is Status.UNTRUSTED_ISSUER
    assert f"revocation cannot be checked: no current CRL from {ROOT}" in verdict.detail
    assert validate(_card(ca), _store(ca, ca.crl(), _root_crl(ca), require=True)).ok


def test_required_revocation_with_a_stale_crl_names_both(ca: TrainingCA) -> None:
    verdict = validate(_card(ca), _store(ca, ca.crl(), _root_crl(ca), require=True),
                       now=datetime.now(UTC) + timedelta(days=8))
    assert verdict.status is Status.UNTRUSTED_ISSUER
    assert "revocation cannot be checked: no current CRL from" in verdict.detail
    assert "CRL out of date" in verdict.detail


def test_from_pem_files_passes_require_revocation(ca: TrainingCA) -> None:
    root, issuing = ca.directory / "root.pem", ca.directory / "issuing.pem"
    assert not TrustStore.from_pem_files([root], [issuing]).require_revocation
    store = TrustStore.from_pem_files([root], [issuing], [ca.directory / "crl.pem"], require_revocation=True)
    assert store.require_revocation
    verdict = validate(_card(ca), store)
    assert verdict.status is Status.UNTRUSTED_ISSUER and f"no current CRL from {ROOT}" in verdict.detail


def test_crl_without_next_update_is_unusable(ca: TrainingCA) -> None:
    crl = _issuing_crl(ca)

    def drop_next_update(parts: list[bytes]) -> list[bytes]:
        assert parts[4][0] in (0x17, 0x18)  # version, signature, issuer, thisUpdate, nextUpdate, ...
        return parts[:4] + parts[5:]

    forever = x509.load_der_x509_crl(_resign(crl, _key(ca, "issuing.key"), edit=drop_next_update))
    assert forever.next_update_utc is None and forever.is_signature_valid(ca.issuing.public_key())
    verdict = validate(_card(ca), _store(ca, forever))
    assert verdict.status is Status.UNTRUSTED_ISSUER
    assert "has no next update" in verdict.detail


def test_crl_from_the_future_is_unusable(ca: TrainingCA) -> None:
    future = _issuing_crl(ca, last=_now() + timedelta(hours=1))
    verdict = validate(_card(ca), _store(ca, future))
    assert verdict.status is Status.UNTRUSTED_ISSUER
    assert "CRL from the future" in verdict.detail
    slightly_ahead = _issuing_crl(ca, last=_now() + timedelta(minutes=3))  # clock skew is tolerated
    assert "not on the CRL" in validate(_card(ca), _store(ca, slightly_ahead)).detail


def test_stale_crl_is_ignored_when_a_current_one_clears(ca: TrainingCA) -> None:
    stale = _issuing_crl(ca, last=_now() - timedelta(days=10))
    assert validate(_card(ca), _store(ca, stale, ca.crl())).ok


# --- S3: critical extensions --------------------------------------------------------------------------------


def test_unknown_critical_extension_on_the_leaf(ca: TrainingCA) -> None:
    leaf = _build(_p256().public_key(), _key(ca, "issuing.key"), ca.issuing,
                  extensions=((x509.UnrecognizedExtension(UNKNOWN_OID, b"\x05\x00"), True),))
    verdict = validate(leaf, _store(ca, ca.crl()))
    assert verdict.status is Status.UNTRUSTED_ISSUER
    assert f"the certificate has a critical extension this program does not process ({UNKNOWN_OID.dotted_string})" \
        in verdict.detail


def test_unknown_critical_extension_on_an_intermediate(ca: TrainingCA) -> None:
    sub, sub_key = _sub_ca(ca, (x509.UnrecognizedExtension(UNKNOWN_OID, b"\x05\x00"), True))
    verdict = validate(_leaf_under(sub, sub_key), _store(ca, intermediates=(sub,)))
    assert verdict.status is Status.UNTRUSTED_ISSUER
    assert "'Sub CA' has a critical extension this program does not process" in verdict.detail


def test_critical_policy_constraints_are_refused(ca: TrainingCA) -> None:
    sub, sub_key = _sub_ca(ca, (x509.PolicyConstraints(require_explicit_policy=0, inhibit_policy_mapping=None),
                                True))
    verdict = validate(_leaf_under(sub, sub_key), _store(ca, intermediates=(sub,)))
    assert verdict.status is Status.UNTRUSTED_ISSUER and "PolicyConstraints" in verdict.detail


def test_processed_critical_extensions_are_accepted(ca: TrainingCA) -> None:
    policies = x509.CertificatePolicies([x509.PolicyInformation(ObjectIdentifier("2.5.29.32.0"), None)])
    sub, sub_key = _sub_ca(ca, (policies, True))
    leaf = _leaf_under(sub, sub_key, extensions=((policies, True),))
    assert validate(leaf, _store(ca, intermediates=(sub,))).ok
    unknown_but_not_critical = _build(_p256().public_key(), _key(ca, "issuing.key"), ca.issuing,
                                      extensions=((x509.UnrecognizedExtension(UNKNOWN_OID, b"\x05\x00"), False),))
    assert validate(unknown_but_not_critical, _store(ca, ca.crl())).ok


# --- S3: name constraints -----------------------------------------------------------------------------------


def _constrained(ca: TrainingCA, permitted: list | None = None, excluded: list | None = None
                 ) -> tuple[x509.Certificate, object]:
    return _sub_ca(ca, (x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=excluded), True))


def _dn(*pairs: tuple[ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


HOSPITAL = _dn((NameOID.COUNTRY_NAME, "GB"), (NameOID.ORGANIZATION_NAME, "Hospital A"))


def test_permitted_directory_name(ca: TrainingCA) -> None:
    sub, sub_key = _constrained(ca, permitted=[x509.DirectoryName(HOSPITAL)])
    store = _store(ca, intermediates=(sub,))
    inside = _dn(*[(a.oid, a.value) for a in HOSPITAL], (NameOID.COMMON_NAME, "Dr In"))
    assert validate(_leaf_under(sub, sub_key, subject=inside), store).ok
    outside = _dn((NameOID.COUNTRY_NAME, "GB"), (NameOID.ORGANIZATION_NAME, "Hospital B"),
                  (NameOID.COMMON_NAME, "Dr Out"))
    verdict = validate(_leaf_under(sub, sub_key, subject=outside), store)
    assert verdict.status is Status.UNTRUSTED_ISSUER
    assert "'Sub CA' does not permit the name 'CN=Dr Out,O=Hospital B,C=GB'" in verdict.detail


def test_excluded_directory_name_ignores_case_and_spacing(ca: TrainingCA) -> None:
    sub, sub_key = _constrained(ca, excluded=[x509.DirectoryName(HOSPITAL)])
    sneaky = _dn((NameOID.COUNTRY_NAME, "gb"), (NameOID.ORGANIZATION_NAME, "HOSPITAL  a"),
                 (NameOID.COMMON_NAME, "Dr Sneaky"))
    verdict = validate(_leaf_under(sub, sub_key, subject=sneaky), _store(ca, intermediates=(sub,)))
    assert verdict.status is Status.UNTRUSTED_ISSUER and "name constraints on DirectoryName" in verdict.detail


def test_uri_constraints(ca: TrainingCA) -> None:
    sub, sub_key = _constrained(ca, permitted=[x509.UniformResourceIdentifier(".cards.example")])
    store = _store(ca, intermediates=(sub,))
    good = [x509.UniformResourceIdentifier("https://a.cards.example/card/1")]
    assert validate(_leaf_under(sub, sub_key, san=good), store).ok
    bad = [x509.UniformResourceIdentifier("https://cards.example.evil/card/1")]
    assert validate(_leaf_under(sub, sub_key, san=bad), store).status is Status.UNTRUSTED_ISSUER
    # urn:uuid has no host name, so RFC 5280 says it cannot satisfy (or escape) a URI constraint
    card = [x509.UniformResourceIdentifier(uuid.uuid4().urn)]
    assert validate(_leaf_under(sub, sub_key, san=card), store).status is Status.UNTRUSTED_ISSUER
    excluding, excluding_key = _constrained(ca, excluded=[x509.UniformResourceIdentifier("evil.example")])
    verdict = validate(_leaf_under(excluding, excluding_key, san=card), _store(ca, intermediates=(excluding,)))
    assert verdict.status is Status.UNTRUSTED_ISSUER and "UniformResourceIdentifier" in verdict.detail


def test_dns_email_and_ip_constraints(ca: TrainingCA) -> None:
    sub, sub_key = _constrained(ca, permitted=[x509.DNSName("nhs.example"), x509.RFC822Name("nhs.example"),
                                               x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))])
    store = _store(ca, intermediates=(sub,))
    fine = [x509.DNSName("ward.NHS.example"), x509.RFC822Name("ada@nhs.example"),
            x509.IPAddress(ipaddress.ip_address("10.1.2.3"))]
    assert validate(_leaf_under(sub, sub_key, san=fine), store).ok
    for bad in (x509.DNSName("nhs.example.evil"), x509.RFC822Name("ada@evil.example"),
                x509.IPAddress(ipaddress.ip_address("192.168.0.1"))):
        assert validate(_leaf_under(sub, sub_key, san=[bad]), store).status is Status.UNTRUSTED_ISSUER, bad
    email_in_dn = _dn((NameOID.EMAIL_ADDRESS, "ada@evil.example"), (NameOID.COMMON_NAME, "Dr Ada"))
    assert validate(_leaf_under(sub, sub_key, subject=email_in_dn), store).status is Status.UNTRUSTED_ISSUER


def test_constraint_on_a_name_type_we_cannot_evaluate_fails_closed(ca: TrainingCA) -> None:
    upn = x509.OtherName(UPN_OID, b"\x0c\x0bada@hosp.uk")
    sub, sub_key = _constrained(ca, excluded=[x509.OtherName(UPN_OID, b"\x0c\x08evil.org")])
    store = _store(ca, intermediates=(sub,))
    verdict = validate(_leaf_under(sub, sub_key, san=[upn]), store)
    assert verdict.status is Status.UNTRUSTED_ISSUER and "name constraints on OtherName" in verdict.detail
    assert validate(_leaf_under(sub, sub_key), store).ok  # no name of that type: the constraint says nothing


# --- S3: weak signatures and keys ---------------------------------------------------------------------------


def test_sha1_signed_leaf_is_refused_by_name(ca: TrainingCA) -> None:
    der = _resign(_card(ca), _key(ca, "issuing.key"), algorithm=ECDSA_SHA1, digest=hashes.SHA1())
    verdict = validate(x509.load_der_x509_certificate(der), ca.trust_store())
    assert verdict.status is Status.UNTRUSTED_ISSUER
    assert "the signature on 'Dr Ada Test' uses SHA-1, which is no longer accepted" in verdict.detail


def test_md5_signed_intermediate_is_refused_by_name(ca: TrainingCA) -> None:
    rsa_root_key = rsa.generate_private_key(65537, 2048)
    rsa_root = _build(rsa_root_key.public_key(), rsa_root_key, None, subject="RSA Root", ca=True, path_length=1)
    sub_key = _p256()
    sub = _build(sub_key.public_key(), rsa_root_key, rsa_root, subject="MD5 Sub CA", ca=True, path_length=0)
    sub = x509.load_der_x509_certificate(_resign(sub, rsa_root_key, algorithm=RSA_MD5, digest=hashes.MD5()))
    verdict = validate(_leaf_under(sub, sub_key), TrustStore(anchors=(rsa_root,), intermediates=(sub,)))
    assert verdict.status is Status.UNTRUSTED_ISSUER
    assert "the signature on 'MD5 Sub CA' uses MD5" in verdict.detail


def test_sha1_self_signature_on_an_anchor_does_not_matter(ca: TrainingCA) -> None:
    root_key = _p256()
    root = _build(root_key.public_key(), root_key, None, subject="Old Root", ca=True)
    root = x509.load_der_x509_certificate(_resign(root, root_key, algorithm=ECDSA_SHA1, digest=hashes.SHA1()))
    leaf = _build(_p256().public_key(), root_key, root)
    assert validate(leaf, TrustStore(anchors=(root,))).ok


def test_sha1_crl_is_refused_by_name(ca: TrainingCA) -> None:
    crl = x509.load_der_x509_crl(_resign(ca.crl(), _key(ca, "issuing.key"), algorithm=ECDSA_SHA1,
                                         digest=hashes.SHA1()))
    verdict = validate(_card(ca), _store(ca, crl))
    assert verdict.status is Status.UNTRUSTED_ISSUER
    assert f"a CRL from {ISSUING} is signed with SHA-1" in verdict.detail


@pytest.mark.parametrize(("key", "words"), [
    (rsa.generate_private_key(65537, 1024), "an RSA key of 1024 bits"),
    (ec.generate_private_key(ec.SECP256K1()), "curve secp256k1"),
    (ec.generate_private_key(ec.BrainpoolP256R1()), "curve brainpoolP256r1"),
    (ed25519.Ed25519PrivateKey.generate(), "only RSA and EC keys are accepted"),
], ids=["rsa1024", "secp256k1", "brainpool", "ed25519"])
def test_weak_or_unexpected_leaf_key_is_wrong_usage(ca: TrainingCA, key: object, words: str) -> None:
    leaf = _build(key.public_key(), _key(ca, "issuing.key"), ca.issuing)
    verdict = validate(leaf, _store(ca, ca.crl()))
    assert verdict.status is Status.WRONG_USAGE
    assert "the certificate's key is not acceptable" in verdict.detail and words in verdict.detail


def test_p521_leaf_is_accepted(ca: TrainingCA) -> None:
    leaf = _build(ec.generate_private_key(ec.SECP521R1()).public_key(), _key(ca, "issuing.key"), ca.issuing)
    assert validate(leaf, _store(ca, ca.crl())).ok


def test_weak_intermediate_key_is_untrusted(ca: TrainingCA) -> None:
    sub, sub_key = _sub_ca(ca, key=rsa.generate_private_key(65537, 1024), name="Weak Sub CA")
    verdict = validate(_leaf_under(sub, sub_key), _store(ca, intermediates=(sub,)))
    assert verdict.status is Status.UNTRUSTED_ISSUER
    assert "'Weak Sub CA' has a key that is not acceptable: an RSA key of 1024 bits" in verdict.detail


def test_crl_from_an_issuer_without_crl_sign(ca: TrainingCA) -> None:
    sub_key = _p256()
    sub = _build(sub_key.public_key(), _key(ca, "root.key"), ca.root, subject="No CRL Sign CA", ca=True,
                 path_length=0, usage=_usage(key_cert_sign=True))
    verdict = validate(_leaf_under(sub, sub_key), _store(ca, _crl(sub, sub_key), intermediates=(sub,)))
    assert verdict.status is Status.UNTRUSTED_ISSUER
    assert "'No CRL Sign CA' may not sign CRLs (key usage)" in verdict.detail
    assert validate(_leaf_under(sub, sub_key), _store(ca, intermediates=(sub,))).ok  # no CRL: nothing to doubt
