"""A three-tier test PKI shaped like NHS's smartcard PKI: a root authority, an issuing (authentication) CA below it,
and card (login) certificates below that, with a CRL published by each CA.

Shape (see docs/decisions/nhs-identity.md for what public sources say about the real one):

* root CA (RSA-2048 self-signed, pathLen 1) -> issuing CA (RSA-2048, pathLen 0) -> card certificates, named like
  NHS's G2 hierarchy ("TEST NHS Root Authority G2" -> "TEST NHS Authentication G2");
* the root's CRL covers the issuing CA, the issuing CA's CRL covers card certificates; both written as PEM files;
* a card certificate names its holder in the SUBJECT: ``CN=<name>`` and the 12-digit NHS user UUID in
  ``serialNumber`` (OID 2.5.4.5) by default, or in ``UID`` (0.9.2342.19200300.100.1.1), or not at all; key usage
  digitalSignature (critical), extended key usage clientAuth; RSA-2048 or EC P-256 keys.

Every function takes ``now`` (an aware datetime); nothing here reads the real clock. Private keys stay in memory:
only certificates and CRLs are written, and only into the folder the caller gives (a pytest ``tmp_path``), never
into the repository. :meth:`CardCredential.key_pem` hands a key to a caller that must import it somewhere (e.g. a
SoftHSM token); write it only below a temporary folder.

Every CA name carries "TEST", so a certificate from here can never be mistaken for a live NHS one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.pki.validation import TrustStore

Algorithm = Literal["rsa2048", "p256"]
UuidPlacement = Literal["serialNumber", "UID", "none"]  # where a card certificate carries the UUID
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

# NHS's G2 names (published): root "C=GB, O=NHS, OU=CA, CN=NHS Root Authority G2", authentication issuing CA
# "C=GB, O=nhs, OU=CA, CN=NHS Authentication G2" (G1's was "NHS Level 1C"). People live under "ou=People, o=nhs" in
# NHS's directory. The test names copy that shape with TEST in every common name.
COUNTRY = "GB"
ROOT_ORGANISATION = "NHS"
ORGANISATION = "nhs"
CA_UNIT = "CA"
ROOT_NAME = "TEST NHS Root Authority G2"
ISSUING_NAME = "TEST NHS Authentication G2"
PEOPLE_UNIT = "People"
SKEW = timedelta(minutes=5)
ROOT_LIFETIME = timedelta(days=20 * 365)
ISSUING_LIFETIME = timedelta(days=10 * 365)
CARD_LIFETIME = timedelta(days=2 * 365)  # NHS smartcard certificates are valid for two years
CRL_LIFETIME = timedelta(days=2)
_HASH = hashes.SHA256()


def _aware(now: datetime) -> datetime:
    if now.utcoffset() is None:
        raise ValueError("nhs_pki needs a timezone-aware 'now'")
    return now.replace(microsecond=0)


def _new_key(alg: Algorithm) -> PrivateKey:
    if alg == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key algorithm {alg!r}; use 'rsa2048' or 'p256'")


def _usage(*, signature: bool = False, ca: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=signature, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                         encipher_only=False, decipher_only=False)


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(data)
    temp.replace(path)  # a reader (a live CRL watcher) never sees half a file
    return path


def card_subject(name: str, uuid: str | None, attribute: UuidPlacement = "serialNumber",
                 *, organisation: str = ORGANISATION) -> x509.Name:
    """``C=GB, O=<organisation>, OU=People, CN=<name>[, serialNumber=<uuid> | UID=<uuid>]``."""
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, COUNTRY),
                  x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                  x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, PEOPLE_UNIT),
                  x509.NameAttribute(NameOID.COMMON_NAME, name)]
    if uuid is not None and attribute == "serialNumber":
        attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, uuid))
    elif uuid is not None and attribute == "UID":
        attributes.append(x509.NameAttribute(NameOID.USER_ID, uuid))
    elif attribute not in ("serialNumber", "UID", "none"):
        raise ValueError(f"unknown identity attribute {attribute!r}")
    return x509.Name(attributes)


@dataclass
class Authority:
    """One CA: its certificate, its key (memory only), the serials it has revoked and its CRL file."""

    certificate: x509.Certificate
    key: PrivateKey = field(repr=False)
    certificate_path: Path
    crl_path: Path
    revoked: dict[int, datetime] = field(default_factory=dict)
    crl_number: int = 0

    def publish_crl(self, now: datetime, *, lifetime: timedelta = CRL_LIFETIME) -> x509.CertificateRevocationList:
        """Sign a new CRL (next CRL number) listing every revoked serial, valid ``lifetime`` from ``now``; write it."""
        now = _aware(now)
        self.crl_number += 1
        builder = (x509.CertificateRevocationListBuilder()
                   .issuer_name(self.certificate.subject)
                   .last_update(now)
                   .next_update(now + lifetime)
                   .add_extension(x509.CRLNumber(self.crl_number), critical=False)
                   .add_extension(_aki(self.certificate), critical=False))
        for serial, when in sorted(self.revoked.items()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build())
        crl = builder.sign(self.key, _HASH)
        _write(self.crl_path, crl.public_bytes(serialization.Encoding.PEM))
        return crl

    def crl(self) -> x509.CertificateRevocationList:
        return x509.load_pem_x509_crl(self.crl_path.read_bytes())


@dataclass(frozen=True)
class CardCredential:
    """A card certificate with its key (memory only) and the identity it was issued for."""

    certificate: x509.Certificate
    key: PrivateKey = field(repr=False)
    name: str
    uuid: str | None
    attribute: UuidPlacement
    path: Path  # the certificate as PEM

    @property
    def serial(self) -> int:
        return self.certificate.serial_number

    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM, for importing into a test token. Never write it into the
        repository; a temporary folder only."""
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


@dataclass
class NhsTestPki:
    """A root and an issuing CA in ``directory`` (root.pem, issuing.pem, root.crl.pem, issuing.crl.pem, cards/)."""

    directory: Path
    root: Authority
    issuing: Authority
    organisation: str = ORGANISATION

    @classmethod
    def create(cls, directory: Path, *, now: datetime, root_name: str = ROOT_NAME,
               issuing_name: str = ISSUING_NAME, organisation: str = ORGANISATION) -> NhsTestPki:
        """Make both CAs valid from ``now`` (less five minutes), write their certificates and first CRLs."""
        directory = Path(directory)
        start = _aware(now) - SKEW
        root_key, issuing_key = _new_key("rsa2048"), _new_key("rsa2048")
        root_subject = _ca_name(ROOT_ORGANISATION if organisation == ORGANISATION else organisation, root_name)
        issuing_subject = _ca_name(organisation, issuing_name)
        root_cert = _ca_cert(root_subject, root_key, root_subject, root_key, None, start, ROOT_LIFETIME, 1)
        issuing_cert = _ca_cert(issuing_subject, issuing_key, root_subject, root_key, root_cert, start,
                                ISSUING_LIFETIME, 0)
        root = Authority(root_cert, root_key, _write(directory / "root.pem", _pem(root_cert)),
                         directory / "root.crl.pem")
        issuing = Authority(issuing_cert, issuing_key, _write(directory / "issuing.pem", _pem(issuing_cert)),
                            directory / "issuing.crl.pem")
        pki = cls(directory, root, issuing, organisation)
        pki.publish_crls(now)
        return pki

    # --- files ------------------------------------------------------------------------------------------------

    @property
    def root_path(self) -> Path:
        return self.root.certificate_path

    @property
    def issuing_path(self) -> Path:
        return self.issuing.certificate_path

    @property
    def crl_paths(self) -> tuple[Path, Path]:
        return self.root.crl_path, self.issuing.crl_path

    def trust_store(self, *, require_revocation: bool = True) -> TrustStore:
        """The root as anchor, the issuing CA as intermediate and both current CRLs (as last published)."""
        return TrustStore(anchors=(self.root.certificate,), intermediates=(self.issuing.certificate,),
                          crls=(self.root.crl(), self.issuing.crl()), require_revocation=require_revocation)

    # --- cards ------------------------------------------------------------------------------------------------

    def issue_card(self, *, name: str, uuid: str | None, now: datetime, alg: Algorithm = "rsa2048",
                   attribute: UuidPlacement = "serialNumber", lifetime: timedelta = CARD_LIFETIME,
                   key: PrivateKey | None = None, client_auth: bool = True,
                   digital_signature: bool = True) -> CardCredential:
        """A login certificate for ``name`` with ``uuid`` in the subject ``attribute`` (``"none"``: no UUID),
        valid from ``now`` less five minutes for ``lifetime``; a new key of ``alg`` unless ``key`` is given.
        ``uuid`` is written as given (tests may pass malformed values). Written to cards/<serial>.pem."""
        key = key or _new_key(alg)
        start = _aware(now) - SKEW
        builder = (x509.CertificateBuilder()
                   .subject_name(card_subject(name, uuid, attribute, organisation=self.organisation))
                   .issuer_name(self.issuing.certificate.subject)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(start)
                   .not_valid_after(start + lifetime)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(_usage(signature=digital_signature), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .add_extension(_aki(self.issuing.certificate), critical=False))
        if client_auth:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                                            critical=False)
        cert = builder.sign(self.issuing.key, _HASH)
        path = _write(self.directory / "cards" / f"{cert.serial_number:x}.pem", _pem(cert))
        return CardCredential(cert, key, name, uuid, attribute, path)

    def renew(self, card: CardCredential, *, now: datetime, alg: Algorithm | None = None) -> CardCredential:
        """A new certificate for the same holder (same name, UUID and attribute) with a NEW key and serial, as a
        renewed or replacement card has. ``alg`` defaults to the old key's kind."""
        if alg is None:
            alg = "p256" if isinstance(card.key, ec.EllipticCurvePrivateKey) else "rsa2048"
        return self.issue_card(name=card.name, uuid=card.uuid, now=now, alg=alg, attribute=card.attribute)

    def revoke(self, card: CardCredential | int, *, now: datetime) -> x509.CertificateRevocationList:
        """Add the card's serial to the issuing CA's CRL and publish it again (file rewritten)."""
        serial = card if isinstance(card, int) else card.serial
        self.issuing.revoked.setdefault(serial, _aware(now))
        return self.issuing.publish_crl(now)

    def revoke_issuing_ca(self, *, now: datetime) -> x509.CertificateRevocationList:
        """Revoke the issuing CA on the root's CRL (every card below it then fails)."""
        self.root.revoked.setdefault(self.issuing.certificate.serial_number, _aware(now))
        return self.root.publish_crl(now)

    def publish_crls(self, now: datetime) -> None:
        """Re-issue both CRLs at ``now`` (e.g. after moving a test's clock past the old next update)."""
        self.root.publish_crl(now)
        self.issuing.publish_crl(now)



def make_foreign_pki(directory: Path, *, now: datetime, impostor: bool = False) -> NhsTestPki:
    """A PKI of the same shape that is NOT the trusted one (its own keys). ``impostor``: it copies the trusted test
    PKI's names exactly, so only the signatures tell them apart. A certificate from it must be refused by a
    service that trusts only the test root."""
    if impostor:
        return NhsTestPki.create(directory, now=now)
    return NhsTestPki.create(directory, now=now, root_name="TEST Foreign Root Authority",
                             issuing_name="TEST Foreign Authentication", organisation="foreign")


def _ca_name(organisation: str, common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, COUNTRY),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, CA_UNIT),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _ca_cert(subject: x509.Name, key: PrivateKey, issuer: x509.Name, signer: PrivateKey,
             parent: x509.Certificate | None, start: datetime, lifetime: timedelta, path_length: int
             ) -> x509.Certificate:
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start)
               .not_valid_after(start + lifetime)
               .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
               .add_extension(_usage(ca=True), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if parent is not None:
        builder = builder.add_extension(_aki(parent), critical=False)
    return builder.sign(signer, _HASH)
