"""card.cert and pki.roots: trust anchors identified by SHA-256 fingerprint from the spec, and CRLs that are
current (a configured CRL past its next update fails both, saying where IT must publish a fresh one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from cryptography import x509

from app.error_text import user_text
from app.errors import NotPiv, RevocationInfoStale
from app.pki import Status as Verdict
from app.pki import TrustStore, validate
from app.pki.revocation_view import CertRef, RevocationView, build_view
from wes.checks.base import Context, Outcome, check
from wes.checks.smartcard import card_reader, no_card
from wes.model import Status
from wes.probes.facts import AppTrust
from wes.probes.trust import colon_hex, sha256_hex
from wes.spec import Anchor

_T = TypeVar("_T")


def _short(fingerprint: str) -> str:
    return colon_hex(fingerprint[:16]) + "…"


def accepted_anchors(ctx: Context, trust: AppTrust) -> tuple[list[bytes], list[str]]:
    """The application's anchors that the spec accepts for this mode, and what was set aside (and why)."""
    wanted = [a for a in ctx.spec.anchors if ctx.mode in a.modes and a.status == "current"]
    runtime = any(a.from_training_ca for a in wanted)
    prints = {a.fingerprint for a in wanted if a.fingerprint}
    keep, dropped = [], []
    for der in trust.anchors:
        fp = sha256_hex(der)
        if fp in prints or (runtime and not ctx.production):
            keep.append(der)
        else:
            dropped.append(f"anchor {_short(fp)} is not listed in the spec for {ctx.mode}")
    return keep, dropped


def revocation_view(ctx: Context, trust: AppTrust) -> RevocationView:
    """What the application's CRLs say, with the file each came from (anchors and intermediates only decide
    which CRLs are authentic here; which anchors are accepted is the other checks' business)."""
    store = TrustStore(tuple(_readable(trust.anchors, x509.load_der_x509_certificate)),
                       tuple(_readable(trust.intermediates, x509.load_der_x509_certificate)),
                       require_revocation=ctx.production)
    paths = trust.crl_paths if len(trust.crl_paths) == len(trust.crls) else ("",) * len(trust.crls)
    crls = [(crl, path) for der, path in zip(trust.crls, paths, strict=True)
            for crl in _readable((der,), x509.load_der_x509_crl)]
    return build_view(store, crls, generation=0, crl_paths=tuple(p for p in paths if p))


def _readable(ders: tuple[bytes, ...], load: Callable[[bytes], _T]) -> list[_T]:
    """What parses (an unreadable file is the probes' and the other checks' finding, not this one's)."""
    out = []
    for der in ders:
        try:
            out.append(load(der))
        except ValueError:
            continue
    return out


def _stale(problems: list[RevocationInfoStale], found: str = "", notes: tuple[str, ...] = ()) -> Outcome:
    return Outcome(Status.FAIL, " ".join([*filter(None, [found]), *(user_text(p) for p in problems)]),
                   remediation="Publish a current CRL from the authority named to the file named, before each "
                   "CRL's next update (for example a scheduled download from its CRL distribution point).",
                   notes=notes)


@check("card.cert")
def card_cert(ctx: Context) -> Outcome:
    reader = card_reader(ctx)
    if reader is None:
        return no_card(ctx)
    try:
        card = ctx.probes.card_certificate(reader.name)
    except NotPiv as exc:
        return Outcome(Status.FAIL, f"The card in {reader.name} is not a PIV (NHS-style) smartcard: {exc}.")
    if card.der is None:
        return Outcome(Status.FAIL, f"The card in {reader.name} holds no PIV Authentication certificate.")
    cert = x509.load_der_x509_certificate(card.der)
    trust = ctx.probes.app_trust()
    anchors, dropped = accepted_anchors(ctx, trust)
    notes = tuple(dropped) + ((f"Trust store problem: {trust.error}.",) if trust.error else ())
    if not anchors:
        return Outcome(Status.FAIL, f"Certificate {cert.subject.rfc4514_string()}: no trust anchor is both "
                       f"configured ({trust.source}) and listed by SHA-256 in WES spec {ctx.spec.version}, so it "
                       "cannot be trusted.", notes=notes)
    store = TrustStore(tuple(x509.load_der_x509_certificate(d) for d in anchors),
                       tuple(x509.load_der_x509_certificate(d) for d in trust.intermediates),
                       tuple(x509.load_der_x509_crl(d) for d in trust.crls), require_revocation=ctx.production)
    verdict = validate(cert, store, now=ctx.now, renewal_days=ctx.spec.thresholds.certificate_renewal_days)
    found = (f"Certificate {verdict.subject} (serial {verdict.serial:X}) expires "
             f"{verdict.not_after:%Y-%m-%d} ({verdict.days_until_expiry} days)")
    if verdict.status is Verdict.UNTRUSTED_ISSUER and (
            stale := revocation_view(ctx, trust).stale(CertRef.of(cert).issuer, ctx.now)):
        return _stale([stale], f"{found}: {verdict.detail}.", notes)
    if verdict.status is Verdict.TRUSTED and verdict.renewal_due:
        return Outcome(Status.WARN, f"{found}: within the {ctx.spec.thresholds.certificate_renewal_days}-day "
                       f"renewal window; {verdict.detail}.", notes=notes)
    if verdict.status is Verdict.TRUSTED:
        return Outcome(Status.PASS, f"{found}: {verdict.detail}.", notes=notes)
    return Outcome(Status.FAIL, f"{found}: {verdict.status.value.replace('_', ' ')}: {verdict.detail}.",
                   notes=notes)


def _found_in(anchor: Anchor, where: dict[str, str]) -> str | None:
    return where.get(anchor.fingerprint) if anchor.fingerprint else None


@check("pki.roots")
def pki_roots(ctx: Context) -> Outcome:
    trust = ctx.probes.app_trust()
    if trust.anchors and (stale := revocation_view(ctx, trust).stale_authorities(ctx.now)):
        return _stale(stale)
    if not ctx.production:
        if not trust.anchors:
            return Outcome(Status.WARN, f"No training root yet: {trust.error or 'none found'}.",
                           remediation="Start Spine Desk once in training mode: it creates the training CA.")
        prints = ", ".join(colon_hex(sha256_hex(d)) for d in trust.anchors)
        return Outcome(Status.PASS, f"Training root (generated on this machine) in {trust.source}, SHA-256 {prints}. "
                       "NHS roots are not needed in training mode.")
    system = ctx.probes.system_roots()
    where: dict[str, str] = {}
    for source, ders in ((system.source or "system store", system.certificates), (trust.source, trust.anchors),
                         (trust.source, trust.intermediates)):
        for der in ders:
            where.setdefault(sha256_hex(der), source)
    notes = tuple(x for x in (system.error and f"System trust store: {system.error}.",
                              trust.error and f"Site trust files: {trust.error}.") if x)
    mine = [a for a in ctx.spec.anchors if "production" in a.modes]
    current = [a for a in mine if a.status == "current"]
    unfilled = [a.name for a in current if a.placeholder]
    if unfilled:
        return Outcome(Status.ERROR, f"Cannot check: WES spec {ctx.spec.version} has no SHA-256 fingerprint yet for "
                       f"{', '.join(unfilled)} (placeholder in {ctx.spec.file.name}).",
                       remediation="IT must fill in the anchors' sha256 fields from the verified certificates.",
                       notes=notes)
    present = [f"{a.name} ({found})" for a in current if (found := _found_in(a, where))]
    missing = [a.name for a in current if not _found_in(a, where)]
    retired = [a.name for a in mine if a.status == "retired" and _found_in(a, where)]
    searched = f"searched {len(where)} certificate(s) in {system.source or 'no system store'} and {trust.source}"
    if missing:
        only_old = " Only retired (G1) anchors are installed." if retired else ""
        return Outcome(Status.FAIL, f"Missing: {', '.join(missing)}.{only_old} Present: "
                       f"{', '.join(present) or 'none'} ({searched}).", notes=notes)
    if retired:
        return Outcome(Status.WARN, f"Present: {', '.join(present)}; retired anchors still installed: "
                       f"{', '.join(retired)} ({searched}).", remediation="Remove the expired G1 certificates.",
                       notes=notes)
    return Outcome(Status.PASS, f"Present: {', '.join(present)} ({searched}).", notes=notes)
