"""The training certificate authority: a root, an issuing CA, card certificates and a CRL, kept in one folder.

Files: root.pem, root.key, issuing.pem, issuing.key (PKCS#8 PEM, unencrypted, mode 0600), crl.pem and
revoked.json. Every write is atomic (temporary file, fsync, rename); a lock file serialises processes.
root.pem is written last when creating, so a folder without it is an unfinished creation and is redone.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.errors import PkiError
from app.pki.revocation import crl_signed_by
from app.pki.validation import TrustStore

if sys.platform == "win32":
    import msvcrt
else:
    import fcntl

ORGANISATION = "Spine Desk Training"
ORGANISATIONAL_UNIT = "Training only - not for live use"
ROOT_NAME = "Spine Desk Training Root CA"
ISSUING_NAME = "Spine Desk Training Issuing CA 1"
ROOT_PEM, ROOT_KEY, ISSUING_PEM, ISSUING_KEY = "root.pem", "root.key", "issuing.pem", "issuing.key"
CRL_PEM, REVOKED_JSON, LOCK = "crl.pem", "revoked.json", ".lock"

# CA keys are P-384, not RSA-3072: equivalent strength (~192 bits), key generation in milliseconds rather
# than seconds on first run and in tests, and smaller signatures. SHA-384 is P-384's matching hash (RFC 5480).
_CA_CURVE = ec.SECP384R1()
_HASH = hashes.SHA384()
_SKEW = timedelta(minutes=5)  # back-date validity so a slightly slow clock elsewhere still accepts it
_ROOT_LIFETIME = timedelta(days=20 * 365 + 5)
_ISSUING_LIFETIME = timedelta(days=10 * 365 + 2)
_CRL_LIFETIME = timedelta(days=7)
_CRL_REFRESH = timedelta(days=1)  # republish when less than this is left before next_update
_CARD_CURVES = (ec.SECP256R1, ec.SECP384R1)

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The real time, timezone-aware (UTC). The default clock; tests that fix a date pass their own."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class TrainingCA:
    """A loaded training CA. Build with :meth:`load_or_create`.

    Every time-based decision (the CA's validity when created, a card certificate's default start, revocation
    times, the CRL's thisUpdate/nextUpdate and when to republish it) reads ``clock``, never the system clock
    directly, so a caller or test that fixes "now" gets certificates and CRLs consistent with it."""

    directory: Path
    root: x509.Certificate
    issuing: x509.Certificate
    _issuing_key: ec.EllipticCurvePrivateKey = field(repr=False, compare=False)
    clock: Clock = field(default=system_clock, repr=False, compare=False)

    @classmethod
    def load_or_create(cls, directory: Path, *, clock: Clock = system_clock) -> TrainingCA:
        """Load the CA in ``directory``, creating it (and the folder, mode 0700) on first use, valid from
        ``clock()`` (less five minutes of skew). ``clock`` returns an aware datetime."""
        directory = Path(directory)
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if os.name == "posix":
                os.chmod(directory, 0o700)
        except OSError as e:
            raise PkiError(f"cannot create the training CA folder {directory}: {e.strerror or e}") from e
        with _locked(directory):
            if not (directory / ROOT_PEM).exists():
                _create(directory, _aware(clock()))
            root, issuing = _read_cert(directory / ROOT_PEM), _read_cert(directory / ISSUING_PEM)
            _check_pair(directory / ROOT_KEY, root)
            issuing_key = _check_pair(directory / ISSUING_KEY, issuing)
            try:
                issuing.verify_directly_issued_by(root)
            except (InvalidSignature, ValueError, TypeError) as e:
                raise _damaged(directory / ISSUING_PEM, "it was not issued by root.pem") from e
            ca = cls(directory, root, issuing, issuing_key, clock)
            ca._read_state()  # find a damaged revoked.json now, not at the next revocation
            ca._current_crl()
            return ca

    def issue_card_certificate(self, public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey, *, name: str,
                               card_uuid: uuid.UUID, days: int = 365,
                               not_before: datetime | None = None) -> x509.Certificate:
        """A login certificate for a card's key (RSA ≥ 2048 or EC P-256/P-384), valid ``days`` from
        ``not_before`` (aware; default: five minutes before the CA's clock)."""
        if isinstance(public_key, rsa.RSAPublicKey):
            if public_key.key_size < 2048:
                raise PkiError(f"an RSA card key must have at least 2048 bits, not {public_key.key_size}")
        elif not (isinstance(public_key, ec.EllipticCurvePublicKey)
                  and isinstance(public_key.curve, _CARD_CURVES)):
            raise PkiError("a card key must be RSA (2048 bits or more) or EC P-256 / P-384")
        name = name.strip()
        if not 1 <= len(name) <= 64:
            raise PkiError("the card holder's name must be 1 to 64 characters long")
        if days < 1:
            raise PkiError(f"a card certificate must be valid for at least one day, not {days}")
        if not_before is not None and not_before.utcoffset() is None:
            raise ValueError("not_before must be timezone-aware")
        start = not_before or self._now() - _SKEW
        end = start + timedelta(days=days)
        if end > self.issuing.not_valid_after_utc:
            raise PkiError(f"a certificate ending {end:%Y-%m-%d} would outlive the training issuing CA "
                           f"(ends {self.issuing.not_valid_after_utc:%Y-%m-%d}); choose fewer days")
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name, with_ou=False))
            .issuer_name(self.issuing.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(card_uuid.urn)]),
                           critical=False)
            .add_extension(_aki(self.issuing), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )
        return builder.sign(self._issuing_key, _HASH)

    def renew_card_certificate(self, old: x509.Certificate,
                               public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey, *,
                               days: int = 365) -> x509.Certificate:
        """A certificate for a card's new key naming the same person as ``old`` (issued by this CA): the same
        subject and subject alternative names, everything else as :meth:`issue_card_certificate` makes it."""
        if old.issuer != self.issuing.subject:
            raise PkiError("the certificate to renew was not issued by this training CA")
        template = self.issue_card_certificate(public_key, name="renewal", card_uuid=uuid.UUID(int=0), days=days)
        builder = (x509.CertificateBuilder().subject_name(old.subject).issuer_name(template.issuer)
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(template.not_valid_before_utc).not_valid_after(template.not_valid_after_utc))
        for extension in template.extensions:
            if extension.oid == x509.SubjectAlternativeName.oid:
                continue
            builder = builder.add_extension(extension.value, extension.critical)
        with contextlib.suppress(x509.ExtensionNotFound):
            san = old.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            builder = builder.add_extension(san.value, san.critical)
        return builder.sign(self._issuing_key, _HASH)

    def revoke(self, serial: int, reason: x509.ReasonFlags = x509.ReasonFlags.unspecified) -> None:
        """Add ``serial`` to revoked.json and republish crl.pem. Revoking twice keeps the first entry."""
        if serial <= 0:
            raise PkiError(f"{serial} is not a certificate serial number")
        if reason is x509.ReasonFlags.remove_from_crl:
            raise PkiError("removeFromCRL is only for delta CRLs, which the training CA does not publish")
        with _locked(self.directory):
            number, revoked = self._read_state()
            revoked.setdefault(serial, (reason, self._now().replace(microsecond=0)))
            self._publish(number, revoked)

    def crl(self) -> x509.CertificateRevocationList:
        """The current CRL (crl.pem), republished first when it is within a day of its next update."""
        with _locked(self.directory):
            return self._current_crl()

    def trust_store(self) -> TrustStore:
        """Root as anchor, issuing CA as intermediate, and the current CRL."""
        return TrustStore(anchors=(self.root,), intermediates=(self.issuing,), crls=(self.crl(),))

    def _now(self) -> datetime:
        return _aware(self.clock())

    # --- inside the lock ----------------------------------------------------------------------------------

    def _current_crl(self) -> x509.CertificateRevocationList:
        path = self.directory / CRL_PEM
        if path.exists():
            try:
                crl = x509.load_pem_x509_crl(path.read_bytes())
                authentic = crl.issuer == self.issuing.subject and crl_signed_by(crl, self.issuing)
            except (OSError, ValueError, TypeError) as e:
                raise _damaged(path, str(e), fix=_CRL_FIX) from e
            if not authentic:
                raise _damaged(path, "it is not signed by issuing.pem", fix=_CRL_FIX)
            if crl.next_update_utc and crl.next_update_utc - self._now() > _CRL_REFRESH:
                return crl
        return self._publish(*self._read_state())

    def _read_state(self) -> tuple[int, dict[int, tuple[x509.ReasonFlags, datetime]]]:
        path = self.directory / REVOKED_JSON
        try:
            raw = json.loads(path.read_text("utf-8"))
            revoked = {int(s): (x509.ReasonFlags(e["reason"]), datetime.fromisoformat(e["time"]))
                       for s, e in raw["revoked"].items()}
            if any(when.utcoffset() is None for _, when in revoked.values()):
                raise ValueError("a revocation time has no time zone")
            return int(raw["crl_number"]), revoked
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise _damaged(path, str(e)) from e

    def _publish(self, number: int, revoked: dict[int, tuple[x509.ReasonFlags, datetime]]
                 ) -> x509.CertificateRevocationList:
        """Bump the CRL number (saved first, so a number is never reused), sign and write crl.pem."""
        number += 1
        _write_state(self.directory, number, revoked)
        crl = _build_crl(self.issuing, self._issuing_key, number, revoked, self._now())
        _write_atomic(self.directory / CRL_PEM, crl.public_bytes(serialization.Encoding.PEM))
        return crl


_CRL_FIX = "Delete crl.pem; it is republished from revoked.json the next time the training CA is used."


def _aware(when: datetime) -> datetime:
    if when.utcoffset() is None:
        raise ValueError("the training CA's clock must return a timezone-aware datetime")
    return when


def _create(directory: Path, now: datetime) -> None:
    now = now.replace(microsecond=0) - _SKEW
    root_key, issuing_key = ec.generate_private_key(_CA_CURVE), ec.generate_private_key(_CA_CURVE)
    root = _ca_certificate(_name(ROOT_NAME), root_key.public_key(), root_key, None, now, _ROOT_LIFETIME, 1)
    issuing = _ca_certificate(_name(ISSUING_NAME), issuing_key.public_key(), root_key, root, now,
                              _ISSUING_LIFETIME, 0)
    _write_atomic(directory / ROOT_KEY, _private_pem(root_key), mode=0o600)
    _write_atomic(directory / ISSUING_KEY, _private_pem(issuing_key), mode=0o600)
    _write_atomic(directory / ISSUING_PEM, issuing.public_bytes(serialization.Encoding.PEM))
    _write_state(directory, 0, {})
    (directory / CRL_PEM).unlink(missing_ok=True)  # any left from an unfinished creation belongs to no CA
    _write_atomic(directory / ROOT_PEM, root.public_bytes(serialization.Encoding.PEM))  # last: marks done


def _ca_certificate(subject: x509.Name, public_key: ec.EllipticCurvePublicKey,
                    signer: ec.EllipticCurvePrivateKey, parent: x509.Certificate | None, start: datetime,
                    lifetime: timedelta, path_length: int) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(parent.subject if parent else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if parent is not None:
        builder = builder.add_extension(_aki(parent), critical=False)
    return builder.sign(signer, _HASH)


def _build_crl(issuing: x509.Certificate, key: ec.EllipticCurvePrivateKey, number: int,
               revoked: dict[int, tuple[x509.ReasonFlags, datetime]], now: datetime
               ) -> x509.CertificateRevocationList:
    now = now.replace(microsecond=0)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuing.subject)
        .last_update(now)
        .next_update(now + _CRL_LIFETIME)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(_aki(issuing), critical=False)
    )
    for serial, (reason, when) in sorted(revoked.items()):
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
        if reason is not x509.ReasonFlags.unspecified:  # RFC 5280: omit reasonCode rather than "unspecified"
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(key, _HASH)


def _name(common_name: str, *, with_ou: bool = True) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION)]
    if with_ou:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ORGANISATIONAL_UNIT))
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False,
               crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=key_cert_sign, crl_sign=crl_sign, encipher_only=False,
                         decipher_only=False)


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _damaged(path: Path, why: str, fix: str | None = None) -> PkiError:
    fix = fix or (f"Restore it from a backup, or move the folder {path.parent} aside so a new training CA is "
                  "created (training cards from the old one must then be issued again).")
    return PkiError(f"training CA file {path} is missing or damaged ({why}). {fix}")


def _read_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as e:
        raise _damaged(path, str(e)) from e


def _check_pair(path: Path, cert: x509.Certificate) -> ec.EllipticCurvePrivateKey:
    """Load the private key at ``path``, tighten its mode if loose, and check it belongs to ``cert``."""
    try:
        if os.name == "posix" and path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise _damaged(path, str(e)) from e
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if not isinstance(key, ec.EllipticCurvePrivateKey) or (
            key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki)):
        raise _damaged(path, f"it is not the key of {path.with_suffix('.pem').name}")
    return key


def _write_state(directory: Path, number: int, revoked: dict[int, tuple[x509.ReasonFlags, datetime]]) -> None:
    state = {"crl_number": number,
             "revoked": {str(s): {"reason": r.value, "time": t.isoformat()} for s, (r, t) in revoked.items()}}
    _write_atomic(directory / REVOKED_JSON, json.dumps(state, indent=2).encode() + b"\n")


def _write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write to a new temporary file created with ``mode``, fsync it, rename it over ``path``."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        if os.name == "posix":
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as e:
        raise PkiError(f"cannot write training CA file {path}: {e.strerror or e}") from e


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Exclusive lock on ``directory/.lock``, between processes and between threads (one open file each)."""
    try:
        fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise PkiError(f"cannot use the training CA folder {directory}: {e.strerror or e}") from e
    try:
        if sys.platform == "win32":
            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
        else:
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if sys.platform == "win32":
                os.lseek(fd, 0, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
