"""Certificate validation: path building to a trust anchor, RFC 5280 path checks, validity, revocation (CRLs,
see :mod:`app.pki.revocation`) and key usage."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from app.errors import CertificateRejected, PkiError
from app.pki.revocation import PARSE_ERRORS as _PARSE_ERRORS
from app.pki.revocation import check_revocation
from app.pki.revocation import ext as _ext
from app.pki.revocation import label as _label
from app.pki.revocation import weak_hash as _weak_hash
from app.pki.revocation import when as _when

RENEWAL_WINDOW_DAYS = 90
_T = TypeVar("_T")
_MAX_PATH = 8  # certificates above the leaf; far more than any real hierarchy needs
# Extensions whose meaning validate() applies (certificatePolicies: any policy is acceptable and none is
# required, so RFC 5280 policy processing can never reject a path that has no policyConstraints). A critical
# extension outside this set (policyConstraints, policyMappings, inhibitAnyPolicy, anything unknown) makes the
# certificate unacceptable, as RFC 5280 requires.
_PROCESSED_EXTENSIONS = frozenset({
    ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE, ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME, ExtensionOID.NAME_CONSTRAINTS, ExtensionOID.CERTIFICATE_POLICIES,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER, ExtensionOID.AUTHORITY_KEY_IDENTIFIER})
_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)


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
    # the trust anchor the path was built to (whatever the status, once a path was found; None when none was).
    # Its identity attribute says where the certificate names its holder (app.pki.identity).
    anchor: x509.Certificate | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.status is Status.TRUSTED


@dataclass(frozen=True)
class TrustStore:
    """Trust anchors (roots), intermediates that may complete a path, and CRLs from any of them.

    ``require_revocation``: when True, every certificate on a path below its anchor (the leaf and each
    intermediate) must be cleared by a *usable* CRL from its issuer (authentic, in scope, not a delta CRL, with
    a next update that has not passed and a last update no more than five minutes ahead); if its issuer has
    none the verdict is UNTRUSTED_ISSUER, "revocation cannot be checked: no current CRL from <issuer>". When
    False (the default, for training) such a certificate can still be TRUSTED and the verdict's detail says
    revocation was not checked; a stale, never-expiring or future-dated CRL is UNTRUSTED_ISSUER either way.
    """

    anchors: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    require_revocation: bool = False

    def __post_init__(self) -> None:
        for name in ("anchors", "intermediates", "crls"):  # accept lists, store tuples (hashable, immutable)
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "require_revocation", bool(self.require_revocation))

    @classmethod
    def from_pem_files(cls, anchors: Iterable[Path], intermediates: Iterable[Path] = (),
                       crls: Iterable[Path] = (), *, require_revocation: bool = False) -> TrustStore:
        """Load PEM files (several certificates per file allowed); PkiError names any unusable file."""
        roots = _load_all(anchors, x509.load_pem_x509_certificates, "PEM certificates")
        if not roots:
            raise PkiError("no trust anchor files were given, so no certificate could ever be trusted")
        return cls(tuple(roots), tuple(_load_all(intermediates, x509.load_pem_x509_certificates,
                                                 "PEM certificates")),
                   tuple(_load_all(crls, lambda data: [_load_crl(data)], "a PEM or DER CRL")),
                   require_revocation=require_revocation)


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

    A path is built from the leaf through ``store.intermediates`` to one of ``store.anchors``; a certificate
    that is itself an anchor needs no path. Each issuer on it (anchors included) must match the name, verify
    the signature, be a CA within its path length that may sign certificates, have an acceptable key (RSA of
    2048 bits or more, EC P-256 / P-384 / P-521), carry no critical extension we do not process, and its name
    constraints must permit every name below it (subject DN, e-mail addresses in it, and subject alternative
    names; a constrained name type we cannot evaluate fails closed). No signature below the anchor may use
    SHA-1 or MD5. All of these give UNTRUSTED_ISSUER, as does a critical extension we do not process on the
    leaf itself. Every certificate on the path must be within its validity window.

    Revocation follows :mod:`app.pki.revocation`: REVOKED if any authentic, in-scope CRL from the issuer lists
    a certificate on the path; UNTRUSTED_ISSUER if a CRL claiming to be from the issuer is not authentic, or
    the only ones are stale, never expire or are dated in the future, or (``store.require_revocation``) none
    can clear the certificate. Otherwise, with no usable CRL, ``detail`` says revocation was not checked.

    The leaf needs key usage digitalSignature, when ``require_client_auth`` extended key usage clientAuth, and
    an acceptable key (as above); else WRONG_USAGE. When several checks fail the status follows MALFORMED,
    UNTRUSTED_ISSUER, REVOKED, EXPIRED / NOT_YET_VALID, WRONG_USAGE, and ``detail`` leads with the deciding
    problem. ``anchor`` is the trust anchor the path ended in (None when no path was found).
    """
    now = _aware_now(now)
    try:
        subject, issuer = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
        serial, not_after = cert.serial_number, cert.not_valid_after_utc
    except _PARSE_ERRORS as e:  # not even the names: report what we can (epoch as a harmless not_after)
        return Verdict(Status.MALFORMED, "", "", 0, datetime.fromtimestamp(0, UTC), 0, False,
                       f"the certificate cannot be read ({e})")
    days = (not_after - now) // timedelta(days=1)

    anchor: x509.Certificate | None = None

    def verdict(status: Status, detail: str) -> Verdict:
        return Verdict(status, subject, issuer, serial, not_after, days, 0 <= days <= renewal_days, detail, anchor)

    try:
        _ = cert.not_valid_before_utc, cert.extensions, cert.public_key()
    except _PARSE_ERRORS as e:
        return verdict(Status.MALFORMED, f"the certificate cannot be read ({e})")
    path, why_not = _build_path(cert, store)
    if path is None:
        return verdict(Status.UNTRUSTED_ISSUER, why_not)
    anchor = path[-1]
    problems = [(Status.UNTRUSTED_ISSUER, f"the certificate {why}") for why in _critical_problems(cert)]
    revocation = check_revocation(path, store.crls, now, require=store.require_revocation)
    problems += [(Status.UNTRUSTED_ISSUER, why) for why in revocation.undecided]
    problems += [(Status.REVOKED, why) for why in revocation.revoked]
    for i, c in enumerate(path):
        what = "the certificate" if i == 0 else f"the issuing certificate {_label(c)}"
        if now < c.not_valid_before_utc:
            problems.append((Status.NOT_YET_VALID, f"{what} is valid from {_when(c.not_valid_before_utc)}"))
        elif now > c.not_valid_after_utc:
            problems.append((Status.EXPIRED, f"{what} expired on {_when(c.not_valid_after_utc)}"))
    problems += [(Status.WRONG_USAGE, why) for why in _usage_problems(cert, require_client_auth)]
    if weak := _key_problem(cert.public_key()):
        problems.append((Status.WRONG_USAGE, f"the certificate's key is not acceptable: {weak}"))
    if problems:
        problems.sort(key=lambda p: _RANK[p[0]])  # stable: path order within a rank
        (status, lead), rest = problems[0], [d for _, d in problems[1:]]
        return verdict(status, lead + (f"; also: {'; '.join(rest)}" if rest else ""))
    chain = " <- ".join(_label(c) for c in path)
    return verdict(Status.TRUSTED, "; ".join([f"trusted via {chain}", *revocation.notes]))


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
            why = _issuer_problem(candidate, path)
            if why:
                problems.append(why)
            elif found := extend((*path, candidate)):
                return found
        return None

    path = extend((leaf,))
    if path is None and not problems:
        problems.append(f"no trusted authority named '{leaf.issuer.rfc4514_string()}' is known")
    return path, "; ".join(dict.fromkeys(problems))  # de-duplicated, in order


def _issuer_problem(issuer: x509.Certificate, below: tuple[x509.Certificate, ...]) -> str | None:
    """Why ``issuer`` cannot have issued ``below[-1]`` on a path ``below`` (leaf first)."""
    child, cas_below = below[-1], len(below) - 1
    try:
        weak = _weak_hash(child)
    except _PARSE_ERRORS:
        weak = None  # an algorithm cryptography does not know: the signature check below fails
    if weak:
        return f"the signature on {_label(child)} uses {weak}, which is no longer accepted"
    try:
        child.verify_directly_issued_by(issuer)
    except (InvalidSignature, *_PARSE_ERRORS):
        return f"the signature on {_label(child)} does not verify with the key of {_label(issuer)}"
    try:
        constraints = _ext(issuer, x509.BasicConstraints)
        usage = _ext(issuer, x509.KeyUsage)
        critical = _critical_problems(issuer)
        named = _name_constraint_problem(issuer, below)
    except _PARSE_ERRORS:
        return f"{_label(issuer)} has unreadable extensions"
    if constraints is None or not constraints.ca:
        return f"{_label(issuer)} is not a certificate authority"
    if constraints.path_length is not None and cas_below > constraints.path_length:
        return f"{_label(issuer)} allows only {constraints.path_length} CA(s) below it, not {cas_below}"
    if usage is not None and not usage.key_cert_sign:
        return f"{_label(issuer)} may not sign certificates (key usage)"
    if weak_key := _key_problem(issuer.public_key()):
        return f"{_label(issuer)} has a key that is not acceptable: {weak_key}"
    if critical:
        return f"{_label(issuer)} {critical[0]}"
    return named


def _critical_problems(cert: x509.Certificate) -> list[str]:
    """RFC 5280: a certificate with a critical extension the relying party does not process is not accepted."""
    return [f"has a critical extension this program does not process ({_ext_name(e)}), so it cannot be trusted"
            for e in cert.extensions if e.critical and e.oid not in _PROCESSED_EXTENSIONS]


def _ext_name(extension: x509.Extension) -> str:
    if isinstance(extension.value, x509.UnrecognizedExtension):
        return extension.oid.dotted_string
    return f"{type(extension.value).__name__} {extension.oid.dotted_string}"


def _key_problem(key: object) -> str | None:
    if isinstance(key, rsa.RSAPublicKey):
        return None if key.key_size >= 2048 else f"an RSA key of {key.key_size} bits (at least 2048 needed)"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return None if isinstance(key.curve, _CURVES) else (
            f"an EC key on curve {key.curve.name} (only P-256, P-384 and P-521 are accepted)")
    return f"a {type(key).__name__.lstrip('_')} (only RSA and EC keys are accepted)"


# --- name constraints (RFC 5280 4.2.1.10) -------------------------------------------------------------------


def _name_constraint_problem(ca: x509.Certificate, below: tuple[x509.Certificate, ...]) -> str | None:
    """Why the name constraints of ``ca`` forbid a name in ``below`` (leaf first), or None."""
    constraints = _ext(ca, x509.NameConstraints)
    if constraints is None:
        return None
    for i, cert in enumerate(below):
        if i and cert.issuer == cert.subject:
            continue  # a self-issued CA certificate (re-key, name change) is exempt; the leaf never is
        for kind, value in _names(cert):
            if _forbidden(kind, value, constraints):
                shown = value.rfc4514_string() if isinstance(value, x509.Name) else value
                return (f"{_label(ca)} does not permit the name '{shown}' in {_label(cert)} "
                        f"(name constraints on {kind.__name__})")
    return None


def _names(cert: x509.Certificate) -> list[tuple[type, object]]:
    names: list[tuple[type, object]] = [(x509.RFC822Name, str(a.value))
                                        for a in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)]
    if cert.subject.rdns:
        names.append((x509.DirectoryName, cert.subject))
    if (san := _ext(cert, x509.SubjectAlternativeName)) is not None:
        names += [(type(name), getattr(name, "value", name)) for name in san]
    return names


def _forbidden(kind: type, value: object, constraints: x509.NameConstraints) -> bool:
    permitted = [s.value for s in constraints.permitted_subtrees or () if type(s) is kind]
    excluded = [s.value for s in constraints.excluded_subtrees or () if type(s) is kind]
    if not permitted and not excluded:
        return False  # no constraint on names of this type
    within = _WITHIN.get(kind)
    if within is None:
        return True  # constrained, but a type we cannot evaluate: fail closed

    def matches(base: object) -> bool | None:
        try:
            return within(value, base)
        except (ValueError, TypeError, AttributeError):
            return None

    results = [matches(base) for base in permitted], [matches(base) for base in excluded]
    if None in results[0] or None in results[1]:
        return True  # e.g. a URI without a host name when URIs are constrained: RFC 5280 says reject
    return (bool(permitted) and not any(results[0])) or any(results[1])


def _dn_key(name: x509.Name) -> list[list[tuple[str, str]]]:
    """A comparable form of ``name``: case folded, inner spaces collapsed (close to RFC 4518 caseIgnoreMatch)."""
    return [sorted((a.oid.dotted_string, " ".join(str(a.value).casefold().split())) for a in rdn)
            for rdn in name.rdns]


def _dn_within(name: x509.Name, base: x509.Name) -> bool:
    prefix = _dn_key(base)
    return _dn_key(name)[:len(prefix)] == prefix


def _dns_within(host: str, base: str) -> bool:
    host, base = host.casefold().rstrip("."), base.casefold().rstrip(".")
    if base.startswith("."):
        return host.endswith(base)
    return not base or host == base or host.endswith("." + base)


def _uri_within(uri: str, base: str) -> bool | None:
    host = urlsplit(uri).hostname
    if not host or _is_ip(host):
        return None
    host, base = host.rstrip("."), base.casefold()
    return host.endswith(base) if base.startswith(".") else host == base


def _email_within(address: str, base: str) -> bool | None:
    address, base = address.casefold(), base.casefold()
    if "@" not in address:
        return None
    if "@" in base:
        return address == base
    domain = address.rpartition("@")[2]
    return domain.endswith(base) if base.startswith(".") else domain == base


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _ip_within(address: object, base: object) -> bool:
    if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address) or not isinstance(
            base, ipaddress.IPv4Network | ipaddress.IPv6Network):
        raise TypeError("not an address and a network")
    return address.version == base.version and address in base


_WITHIN: dict[type, Callable[..., bool | None]] = {
    x509.DirectoryName: _dn_within, x509.DNSName: _dns_within, x509.UniformResourceIdentifier: _uri_within,
    x509.RFC822Name: _email_within, x509.IPAddress: _ip_within}


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
