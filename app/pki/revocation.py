"""Revocation checks against the trust store's CRLs (RFC 5280 section 6.3, complete CRLs only), and the small
certificate helpers that :mod:`app.pki.validation` shares with them.

Rules, per certificate on a path and the CA that issued it:

* Only CRLs from that CA count: same name, the same key identifier when both carry one, a signature that
  verifies with the CA's key, not a SHA-1 / MD5 signature, and (when the CA has key usage) cRLSign. A CRL that
  claims to be from the CA and fails any of these makes revocation undecidable (UNTRUSTED_ISSUER).
* A CRL whose issuing distribution point limits it to CA certificates (or to end-entity or attribute
  certificates) says nothing about certificates outside that scope and is skipped for them.
* Revoked if ANY authentic, in-scope CRL lists the serial, whatever its dates (a hold is treated as a
  revocation; remove an old CRL from the store to lift one). A ``removeFromCRL`` entry on a delta CRL is
  not a revocation.
* Cleared only by a *usable* CRL: a complete CRL (no delta CRL indicator; an issuing distribution point only
  with the scope flags above, not a distribution point name, reason subset or indirect CRL; no other critical
  extension outside CRL number, authority key identifier and issuer alternative name) that is current (has
  a next update that has not passed, and a last update at most five minutes ahead of ``now``).
* No usable CRL: a stale, never-expiring or future-dated one makes the verdict UNTRUSTED_ISSUER; with none at
  all (or only unusable kinds) the certificate is not cleared, which is UNTRUSTED_ISSUER when revocation is
  required and otherwise only noted in the verdict's detail.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import NamedTuple, TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

# What a broken certificate or extension raises when cryptography parses it lazily.
PARSE_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm, x509.DuplicateExtension,
                x509.UnsupportedGeneralNameType)
FUTURE_CRL_GRACE = timedelta(minutes=5)  # a CRL issued by a CA whose clock is a little ahead is still usable
_E = TypeVar("_E", bound=x509.ExtensionType)
_UNDERSTOOD_CRL_EXTENSIONS = frozenset({ExtensionOID.CRL_NUMBER, ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
                                        ExtensionOID.ISSUER_ALTERNATIVE_NAME,
                                        ExtensionOID.ISSUING_DISTRIBUTION_POINT})
_WEAK_HASHES = {"sha1": "SHA-1", "md5": "MD5"}


class Revocation(NamedTuple):
    """What the CRLs say about a path: each list holds sentences for a verdict's detail."""

    revoked: list[str]  # a certificate on the path is listed: REVOKED
    undecided: list[str]  # revocation cannot be decided: UNTRUSTED_ISSUER
    notes: list[str]  # what was (not) checked, for a TRUSTED verdict


def check_revocation(path: tuple[x509.Certificate, ...], crls: tuple[x509.CertificateRevocationList, ...],
                     now: datetime, *, require: bool) -> Revocation:
    """Check each non-anchor certificate on ``path`` (leaf first) against the CRLs from its issuer."""
    result = Revocation([], [], [])
    for child, issuer in itertools.pairwise(path):
        _check_one(child, issuer, child is path[0], crls, now, require, result)
    return result


def _check_one(child: x509.Certificate, issuer: x509.Certificate, is_leaf: bool,
               crls: tuple[x509.CertificateRevocationList, ...], now: datetime, require: bool,
               out: Revocation) -> None:
    listed: x509.RevokedCertificate | None = None
    usable: list[x509.CertificateRevocationList] = []
    unusable: list[tuple[str, bool]] = []  # (why a CRL cannot clear the certificate, whether it is a date problem)
    for crl in (c for c in crls if _crl_is_from(c, issuer)):
        if bad := _authenticity_problem(crl, issuer):
            out.undecided.append(bad)
            continue
        in_scope, limited = _scope(crl, child)
        if not in_scope:
            continue
        entry = crl.get_revoked_certificate_by_serial_number(child.serial_number)
        if listed is None and entry is not None and not (limited and _reason(entry) == "removeFromCRL"):
            listed = entry
        if limited:
            unusable.append((f"a CRL from {label(issuer)} cannot clear it ({limited})", False))
        elif (stale := _date_problem(crl, issuer, now)) is not None:
            unusable.append((stale, True))
        else:
            usable.append(crl)
    if listed is not None:
        what = "the certificate" if is_leaf else f"the issuing certificate {label(child)}"
        out.revoked.append(f"{what} was revoked on {when(listed.revocation_date_utc)} (reason: {_reason(listed)})")
    elif usable:
        newest = max(usable, key=lambda c: c.last_update_utc)
        out.notes.append(f"{label(child)} not on the CRL from {label(issuer)} issued {when(newest.last_update_utc)}"
                         + (f" (nor on {len(usable) - 1} other current CRL(s))" if len(usable) > 1 else ""))
    elif require:
        reasons = "; ".join(why for why, _ in unusable)
        out.undecided.append(f"revocation cannot be checked: no current CRL from {label(issuer)}"
                             + (f" ({reasons})" if reasons else ""))
    elif dated := [why for why, date_problem in unusable if date_problem]:
        out.undecided.extend(dated)
    else:
        reasons = "; ".join(why for why, _ in unusable) or f"no CRL from {label(issuer)}"
        out.notes.append(f"revocation of {label(child)} not checked ({reasons})")


def crl_is_authentic(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    """Whether ``crl`` is the word of ``issuer``: its name and key identifier, a verifying signature that is not
    SHA-1 / MD5, and cRLSign when the issuer has key usage (the rules :func:`check_revocation` applies)."""
    return _crl_is_from(crl, issuer) and _authenticity_problem(crl, issuer) is None


def _authenticity_problem(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> str | None:
    """Why ``crl`` cannot be taken as the word of ``issuer`` (None: it can)."""
    try:
        _ = crl.extensions  # parsed lazily; a broken one must not pass silently
        weak = weak_hash(crl)
        usage = ext(issuer, x509.KeyUsage)
        if weak:
            return f"a CRL from {label(issuer)} is signed with {weak}, which is no longer accepted"
        if usage is not None and not usage.crl_sign:
            return f"{label(issuer)} may not sign CRLs (key usage), yet a CRL from it was given"
        valid = crl_signed_by(crl, issuer)
    except PARSE_ERRORS as e:
        return f"a CRL from {label(issuer)} cannot be read ({e})"
    return None if valid else f"a CRL from {label(issuer)} has a bad signature"


def _scope(crl: x509.CertificateRevocationList, child: x509.Certificate) -> tuple[bool, str | None]:
    """Whether ``crl`` covers ``child`` at all, and why it cannot clear it (None: it can)."""
    limited = None
    for extension in crl.extensions:
        value = extension.value
        if isinstance(value, x509.DeltaCRLIndicator):
            limited = "it is a delta CRL, which this program does not combine with a base CRL"
        elif isinstance(value, x509.IssuingDistributionPoint):
            is_ca = (constraints := ext(child, x509.BasicConstraints)) is not None and constraints.ca
            if (value.only_contains_attribute_certs or (value.only_contains_ca_certs and not is_ca)
                    or (value.only_contains_user_certs and is_ca)):
                return False, None
            if value.full_name or value.relative_name or value.only_some_reasons or value.indirect_crl:
                limited = "its issuing distribution point limits it to part of the issuer's certificates"
        elif extension.critical and extension.oid not in _UNDERSTOOD_CRL_EXTENSIONS:
            limited = f"it has a critical extension this program does not implement ({extension.oid.dotted_string})"
    return True, limited


def _date_problem(crl: x509.CertificateRevocationList, issuer: x509.Certificate, now: datetime) -> str | None:
    if crl.next_update_utc is None:
        return (f"CRL never out of date: the CRL from {label(issuer)} issued {when(crl.last_update_utc)} has no "
                "next update, so it could be replayed for ever")
    if now > crl.next_update_utc:
        return (f"CRL out of date: the CRL from {label(issuer)} was due to be replaced on "
                f"{when(crl.next_update_utc)}")
    if crl.last_update_utc - now > FUTURE_CRL_GRACE:
        return (f"CRL from the future: the CRL from {label(issuer)} says it was issued "
                f"{when(crl.last_update_utc)}; check the clocks")
    return None


def _crl_is_from(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    """Same issuer name and, when both carry one, the same key identifier (a re-keyed CA keeps its name)."""
    if crl.issuer != issuer.subject:
        return False
    try:
        aki = ext(crl, x509.AuthorityKeyIdentifier)
        ski = ext(issuer, x509.SubjectKeyIdentifier)
    except PARSE_ERRORS:
        return True  # claims to be from this issuer; the signature check decides
    return aki is None or aki.key_identifier is None or ski is None or aki.key_identifier == ski.digest


def weak_hash(signed: x509.Certificate | x509.CertificateRevocationList) -> str | None:
    """"SHA-1" or "MD5" when ``signed`` carries a signature made with that broken hash; else None."""
    algorithm = signed.signature_hash_algorithm
    if isinstance(algorithm, hashes.HashAlgorithm):
        return _WEAK_HASHES.get(algorithm.name)
    return None


def ext(holder: x509.Certificate | x509.CertificateRevocationList, kind: type[_E]) -> _E | None:
    try:
        return holder.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _reason(entry: x509.RevokedCertificate) -> str:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
    except (x509.ExtensionNotFound, *PARSE_ERRORS):
        return "unspecified"


def crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    """True when ``issuer``'s key verifies the CRL's signature; False for a wrong signature or a key type (X25519,
    X448) that cannot sign."""
    key = issuer.public_key()
    if not isinstance(key, _SIGNING_KEYS):
        return False
    return crl.is_signature_valid(key)


_SIGNING_KEYS = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, dsa.DSAPublicKey, ed25519.Ed25519PublicKey,
                 ed448.Ed448PublicKey)


def label(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else cert.subject.rfc4514_string()
    return f"'{value.decode(errors='replace') if isinstance(value, bytes) else value}'"


def when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"
