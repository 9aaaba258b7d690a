"""Certificate validation: path building to a trust anchor, validity, revocation (CRLs) and key usage."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.errors import CertificateRejected, PkiError

RENEWAL_WINDOW_DAYS = 90
_T = TypeVar("_T")
_E = TypeVar("_E", bound=x509.ExtensionType)
_MAX_PATH = 8  # certificates above the leaf; far more than any real hierarchy needs
# What a broken certificate or extension raises when cryptography parses it lazily.
_PARSE_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm, x509.DuplicateExtension,
                 x509.UnsupportedGeneralNameType)


class Status(StrEnum):
    """Outcome of :func:`validate`; the values double as ``CertificateRejected.status``."""

    TRUSTED = "trusted"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    REVOKED = "revoked"
    UNTRUSTED_ISSUER = "untrusted_issuer"
    WRONG_USAGE = "wrong_usage"
    MALFORMED = "malformed"


# Lower wins when a certificate fails several checks.
_RANK = {Status.MALFORMED: 0, Status.UNTRUSTED_ISSUER: 1, Status.REVOKED: 2, Status.EXPIRED: 3,
         Status.NOT_YET_VALID: 3, Status.WRONG_USAGE: 4}


@dataclass(frozen=True)
class Verdict:
    """What :func:`validate` found; ``detail`` says in words which check decided it."""

    status: Status
    subject: str
    issuer: str
    serial: int
    not_after: datetime
    days_until_expiry: int
    renewal_due: bool
    detail: str

    @property
    def ok(self) -> bool:
        return self.status is Status.TRUSTED


@dataclass(frozen=True)
class TrustStore:
    """Trust anchors (roots), intermediates that may complete a path, and CRLs from any of them."""

    anchors: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()
    crls: tuple[x509.CertificateRevocationList, ...] = ()

    def __post_init__(self) -> None:
        for name in ("anchors", "intermediates", "crls"):  # accept lists, store tuples (hashable, immutable)
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @classmethod
    def from_pem_files(cls, anchors: Iterable[Path], intermediates: Iterable[Path] = (),
                       crls: Iterable[Path] = ()) -> TrustStore:
        """Load PEM files (several certificates per file allowed); PkiError names any unusable file."""
        roots = _load_all(anchors, x509.load_pem_x509_certificates, "PEM certificates")
        if not roots:
            raise PkiError("no trust anchor files were given, so no certificate could ever be trusted")
        return cls(tuple(roots), tuple(_load_all(intermediates, x509.load_pem_x509_certificates,
                                                 "PEM certificates")),
                   tuple(_load_all(crls, lambda data: [_load_crl(data)], "a PEM or DER CRL")))


def _load_crl(data: bytes) -> x509.CertificateRevocationList:
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def _load_all(paths: Iterable[Path], parse: Callable[[bytes], list[_T]], what: str) -> list[_T]:
    items: list[_T] = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise PkiError(f"cannot read trust store file {path}: {e.strerror or e}") from e
        try:
            items.extend(parse(data))
        except _PARSE_ERRORS as e:
            raise PkiError(f"trust store file {path} does not hold {what} ({e}); replace it with a "
                           "correct copy") from e
    return items


def load_certificate(data: bytes) -> x509.Certificate:
    """Parse a DER or PEM certificate; ``CertificateRejected("malformed")`` for anything unusable."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            cert = x509.load_pem_x509_certificate(data)
        else:
            cert = x509.load_der_x509_certificate(data)
        _ = cert.extensions, cert.public_key()  # both are parsed lazily; fail here, not later
    except _PARSE_ERRORS as e:
        raise CertificateRejected(Status.MALFORMED.value, f"not a readable X.509 certificate ({e})") from e
    return cert


def card_uuid(cert: x509.Certificate) -> uuid.UUID | None:
    """The card UUID from a subject alternative name URI ``urn:uuid:…``; None when absent or unreadable."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, *_PARSE_ERRORS):
        return None
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.lower().startswith("urn:uuid:"):
            try:
                return uuid.UUID(uri[len("urn:uuid:"):])
            except ValueError:
                continue
    return None


def require_trusted(cert: x509.Certificate, store: TrustStore, *, now: datetime | None = None) -> Verdict:
    """:func:`validate`, raising ``CertificateRejected(status, detail)`` unless the verdict is TRUSTED."""
    verdict = validate(cert, store, now=now)
    if not verdict.ok:
        raise CertificateRejected(verdict.status.value, verdict.detail)
    return verdict


def validate(cert: x509.Certificate, store: TrustStore, *, now: datetime | None = None,
             renewal_days: int = RENEWAL_WINDOW_DAYS, require_client_auth: bool = True) -> Verdict:
    """Check ``cert`` as a login certificate against ``store`` at ``now`` (aware, else ValueError; default:
    the current time).

    A path is built from the leaf through ``store.intermediates`` to one of ``store.anchors`` (issuer name and
    signature must match; every issuer must be a CA within its path length and may sign certificates); a
    certificate that is itself an anchor needs no path. Every certificate on the path must be within its
    validity window. For each non-anchor certificate the CRL from its issuer (same name and key identifier)
    is consulted: a CRL whose signature does not verify, or whose next update has passed ("CRL out of
    date"), makes the verdict UNTRUSTED_ISSUER, because revocation can then not be decided; a listed serial
    gives REVOKED. With no CRL for an issuer the certificate can still be TRUSTED, and ``detail`` says
    revocation was not checked. The leaf needs key usage digitalSignature and, when
    ``require_client_auth``, extended key usage clientAuth (else WRONG_USAGE). When several checks fail the
    status follows MALFORMED, UNTRUSTED_ISSUER, REVOKED, EXPIRED / NOT_YET_VALID, WRONG_USAGE, and
    ``detail`` leads with the deciding problem.
    """
    now = _aware_now(now)
    try:
        subject, issuer = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
        serial, not_after = cert.serial_number, cert.not_valid_after_utc
    except _PARSE_ERRORS as e:  # not even the names: report what we can (epoch as a harmless not_after)
        return Verdict(Status.MALFORMED, "", "", 0, datetime.fromtimestamp(0, UTC), 0, False,
                       f"the certificate cannot be read ({e})")
    days = (not_after - now) // timedelta(days=1)

    def verdict(status: Status, detail: str) -> Verdict:
        return Verdict(status, subject, issuer, serial, not_after, days, 0 <= days <= renewal_days, detail)

    try:
        _ = cert.not_valid_before_utc, cert.extensions, cert.public_key()
    except _PARSE_ERRORS as e:
        return verdict(Status.MALFORMED, f"the certificate cannot be read ({e})")
    path, why_not = _build_path(cert, store)
    if path is None:
        return verdict(Status.UNTRUSTED_ISSUER, why_not)
    problems: list[tuple[Status, str]] = []
    notes: list[str] = []
    _check_revocation(path, store, now, problems, notes)
    for i, c in enumerate(path):
        what = "the certificate" if i == 0 else f"the issuing certificate {_label(c)}"
        if now < c.not_valid_before_utc:
            problems.append((Status.NOT_YET_VALID, f"{what} is valid from {_when(c.not_valid_before_utc)}"))
        elif now > c.not_valid_after_utc:
            problems.append((Status.EXPIRED, f"{what} expired on {_when(c.not_valid_after_utc)}"))
    problems += [(Status.WRONG_USAGE, why) for why in _usage_problems(cert, require_client_auth)]
    if problems:
        problems.sort(key=lambda p: _RANK[p[0]])  # stable: path order within a rank
        (status, lead), rest = problems[0], [d for _, d in problems[1:]]
        return verdict(status, lead + (f"; also: {'; '.join(rest)}" if rest else ""))
    chain = " <- ".join(_label(c) for c in path)
    return verdict(Status.TRUSTED, "; ".join([f"trusted via {chain}", *notes]))


def _aware_now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("validate() needs a timezone-aware 'now' (e.g. datetime.now(UTC))")
    return now


def _build_path(leaf: x509.Certificate, store: TrustStore) -> tuple[tuple[x509.Certificate, ...] | None, str]:
    """A path ``(leaf, …, anchor)``, or None and the reason none was found."""
    problems: list[str] = []

    def extend(path: tuple[x509.Certificate, ...]) -> tuple[x509.Certificate, ...] | None:
        child = path[-1]
        if child in store.anchors:
            return path
        if len(path) > _MAX_PATH:
            problems.append("the certificate path is too long")
            return None
        for candidate in (*store.anchors, *store.intermediates):
            if candidate.subject != child.issuer or candidate in path:
                continue
            why = _issuer_problem(candidate, child, len(path) - 1)
            if why:
                problems.append(why)
            elif found := extend((*path, candidate)):
                return found
        return None

    path = extend((leaf,))
    if path is None and not problems:
        problems.append(f"no trusted authority named '{leaf.issuer.rfc4514_string()}' is known")
    return path, "; ".join(dict.fromkeys(problems))  # de-duplicated, in order


def _issuer_problem(issuer: x509.Certificate, child: x509.Certificate, cas_below: int) -> str | None:
    """Why ``issuer`` cannot have issued ``child`` (``cas_below``: CA certificates between it and leaf)."""
    try:
        child.verify_directly_issued_by(issuer)
    except (InvalidSignature, *_PARSE_ERRORS):
        return f"the signature on {_label(child)} does not verify with the key of {_label(issuer)}"
    try:
        constraints = _ext(issuer, x509.BasicConstraints)
        usage = _ext(issuer, x509.KeyUsage)
    except _PARSE_ERRORS:
        return f"{_label(issuer)} has unreadable extensions"
    if constraints is None or not constraints.ca:
        return f"{_label(issuer)} is not a certificate authority"
    if constraints.path_length is not None and cas_below > constraints.path_length:
        return f"{_label(issuer)} allows only {constraints.path_length} CA(s) below it, not {cas_below}"
    if usage is not None and not usage.key_cert_sign:
        return f"{_label(issuer)} may not sign certificates (key usage)"
    return None


def _check_revocation(path: tuple[x509.Certificate, ...], store: TrustStore, now: datetime,
                      problems: list[tuple[Status, str]], notes: list[str]) -> None:
    """Check each non-anchor certificate on ``path`` against its issuer's CRL, if the store has one."""
    for child, issuer in itertools.pairwise(path):
        crls = [crl for crl in store.crls if _crl_is_from(crl, issuer)]
        if not crls:
            notes.append(f"revocation of {_label(child)} not checked (no CRL from {_label(issuer)})")
            continue
        good = []
        for crl in crls:
            try:
                valid = crl.is_signature_valid(issuer.public_key())
            except _PARSE_ERRORS:
                valid = False
            if valid:
                good.append(crl)
            else:
                problems.append((Status.UNTRUSTED_ISSUER, f"a CRL from {_label(issuer)} has a bad signature"))
        if not good:
            continue
        crl = max(good, key=lambda c: c.last_update_utc)  # the newest authentic one decides
        if crl.next_update_utc is not None and now > crl.next_update_utc:
            problems.append((Status.UNTRUSTED_ISSUER, f"CRL out of date: the CRL from {_label(issuer)} "
                             f"was due to be replaced on {_when(crl.next_update_utc)}"))
        entry = crl.get_revoked_certificate_by_serial_number(child.serial_number)
        if entry is not None:
            what = "the certificate" if child is path[0] else f"the issuing certificate {_label(child)}"
            problems.append((Status.REVOKED, f"{what} was revoked on {_when(entry.revocation_date_utc)} "
                             f"(reason: {_reason(entry)})"))
        else:
            notes.append(f"{_label(child)} not on the CRL from {_label(issuer)} "
                         f"issued {_when(crl.last_update_utc)}")


def _crl_is_from(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    """Same issuer name and, when both carry one, the same key identifier (a re-keyed CA keeps its name)."""
    if crl.issuer != issuer.subject:
        return False
    try:
        aki = _ext(crl, x509.AuthorityKeyIdentifier)
        ski = _ext(issuer, x509.SubjectKeyIdentifier)
    except _PARSE_ERRORS:
        return True  # claims to be from this issuer; the signature check decides
    return aki is None or aki.key_identifier is None or ski is None or aki.key_identifier == ski.digest


def _usage_problems(cert: x509.Certificate, require_client_auth: bool) -> list[str]:
    problems = []
    constraints = _ext(cert, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        problems.append("the certificate belongs to a certificate authority, not a person")
    usage = _ext(cert, x509.KeyUsage)
    if usage is None or not usage.digital_signature:
        problems.append("the certificate's key usage does not allow digital signatures")
    if require_client_auth:
        eku = _ext(cert, x509.ExtendedKeyUsage)
        if eku is None or ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
            problems.append("the certificate is not allowed for client authentication (extended key usage)")
    return problems


def _ext(holder: x509.Certificate | x509.CertificateRevocationList, kind: type[_E]) -> _E | None:
    try:
        return holder.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _reason(entry: x509.RevokedCertificate) -> str:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
    except (x509.ExtensionNotFound, *_PARSE_ERRORS):
        return "unspecified"


def _label(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return f"'{names[0].value if names else cert.subject.rfc4514_string()}'"


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"
