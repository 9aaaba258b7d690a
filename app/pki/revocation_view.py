"""What the loaded CRLs say, in a form cheap enough to consult on every request.

:func:`app.pki.validate` answers for one certificate and its whole path, at login. A running service must also
answer, on every request, whether the certificate a session was opened with has been revoked since. A session
keeps only that certificate's issuer name and serial (:class:`CertRef`), so this view keeps, from the CRLs that
verify with the key of a configured authority (anchor or intermediate):

* the serials each authority has revoked;
* the authorities whose own certificate is revoked (or one above them is): everything they issued counts as
  revoked;
* for each authority, when its newest CRL is due to be replaced and which files its CRLs came from, so that a
  stale one is reported as :class:`RevocationInfoStale` naming the file IT must replace.

Authorities are told apart by name: a re-keyed CA keeps its name, so revoking the certificate of either key
affects both (this fails closed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from app.errors import CertificateRejected, RevocationInfoStale
from app.pki.revocation import PARSE_ERRORS, crl_is_authentic, ext, label
from app.pki.validation import Status, TrustStore


def name_key(name: x509.Name) -> str:
    """The form in which names are compared and stored (RFC 4514 text)."""
    return name.rfc4514_string()


@dataclass(frozen=True)
class CertRef:
    """A certificate as a session remembers it: its issuer's name (RFC 4514) and serial (lower-case hex)."""

    issuer: str
    serial: str

    @classmethod
    def of(cls, cert: x509.Certificate) -> CertRef:
        return cls(name_key(cert.issuer), format(cert.serial_number, "x"))


@dataclass(frozen=True)
class RevocationView:
    """One consistent reading of the trust store's CRLs; ``generation`` grows with every reload."""

    store: TrustStore
    generation: int
    revoked: Mapping[str, frozenset[int]]  # authority name -> serials it has revoked
    dead: Mapping[str, str]  # authority name -> why everything it issued counts as revoked
    next_update: Mapping[str, datetime | None]  # authority name -> newest CRL's next update (None: undated)
    paths: Mapping[str, tuple[str, ...]]  # authority name -> files its CRLs came from
    parents: Mapping[str, str]  # intermediate's name -> its issuer's name
    anchors: frozenset[str]
    labels: Mapping[str, str]
    crl_paths: tuple[str, ...]  # every configured CRL file

    @property
    def earliest_next_update(self) -> datetime | None:
        dated = [d for d in self.next_update.values() if d is not None]
        return min(dated) if dated else None

    def problem(self, ref: CertRef, now: datetime) -> CertificateRejected | RevocationInfoStale | None:
        """Why a session opened with ``ref`` may not go on: revoked, or revocation cannot be checked now."""
        if why := self.dead.get(ref.issuer):
            return CertificateRejected(Status.REVOKED.value, why)
        try:
            serial = int(ref.serial, 16)
        except ValueError:
            return CertificateRejected(Status.MALFORMED.value, f"the session's certificate serial {ref.serial!r}")
        if serial in self.revoked.get(ref.issuer, ()):
            return CertificateRejected(Status.REVOKED.value, f"serial {ref.serial} is on the CRL from "
                                       f"{self.labels.get(ref.issuer, ref.issuer)}")
        return self.stale(ref.issuer, now)

    def stale(self, issuer: str, now: datetime) -> RevocationInfoStale | None:
        """The first authority, from ``issuer`` up to an anchor, whose revocation information has run out (or,
        when revocation is required, is missing); None if every one is current or ``issuer`` is unknown."""
        key, seen = issuer, set()
        while key not in seen and (key in self.anchors or key in self.parents):
            seen.add(key)
            if found := self._stale_one(key, now):
                return found
            if key in self.anchors:
                return None
            key = self.parents[key]
        return None

    def stale_authorities(self, now: datetime) -> list[RevocationInfoStale]:
        """Every authority whose CRL has run out, and (revocation required) every intermediate, or issuer of
        one, without a CRL. An anchor that issued no configured intermediate and has no CRL is not listed: that
        it issues certificates at all is unknown here."""
        keys = {*self.next_update, *self.parents, *self.parents.values()}
        return [s for key in sorted(keys) if (s := self._stale_one(key, now)) is not None]

    def _stale_one(self, key: str, now: datetime) -> RevocationInfoStale | None:
        if key in self.next_update:
            due = self.next_update[key]
            if due is None or now > due:
                return RevocationInfoStale(self.labels.get(key, key), due, self.paths.get(key) or self.crl_paths)
            return None
        if self.store.require_revocation and (key in self.anchors or key in self.parents):
            return RevocationInfoStale(self.labels.get(key, key), None)  # none of the files holds one from it
        return None


def build_view(store: TrustStore, sources: Iterable[tuple[x509.CertificateRevocationList, str]], *,
               generation: int, crl_paths: tuple[str, ...] = ()) -> RevocationView:
    """The view of ``store`` (anchors, intermediates, require_revocation) with the CRLs in ``sources`` (each
    with the file it came from); CRLs no configured authority signed are left out (validate() refuses them)."""
    cas = (*store.anchors, *store.intermediates)
    anchors = frozenset(name_key(a.subject) for a in store.anchors)
    parents = {name_key(c.subject): name_key(c.issuer) for c in store.intermediates
               if name_key(c.subject) not in anchors}
    labels = {name_key(c.subject): label(c) for c in cas}
    revoked: dict[str, set[int]] = {}
    next_update: dict[str, datetime | None] = {}
    paths: dict[str, list[str]] = {}
    for crl, path in sources:
        issuer = next((ca for ca in cas if crl_is_authentic(crl, ca)), None)
        if issuer is None:
            continue
        key = name_key(issuer.subject)
        revoked.setdefault(key, set()).update(e.serial_number for e in crl if not _removal(e))
        due, known = crl.next_update_utc, next_update.get(key)
        if key not in next_update or (due is not None and (known is None or due > known)):
            next_update[key] = due
        if path and path not in paths.setdefault(key, []):
            paths[key].append(path)
    return RevocationView(store, generation, {k: frozenset(v) for k, v in revoked.items()},
                          _dead(store, revoked, anchors), next_update, {k: tuple(v) for k, v in paths.items()},
                          parents, anchors, labels, crl_paths)


def _dead(store: TrustStore, revoked: Mapping[str, set[int]], anchors: frozenset[str]) -> dict[str, str]:
    dead: dict[str, str] = {}
    changed = True
    while changed:  # to a fixed point: a CA below a revoked one is as good as revoked
        changed = False
        for ca in store.intermediates:
            key, parent = name_key(ca.subject), name_key(ca.issuer)
            if key in dead or key in anchors:
                continue
            if ca.serial_number in revoked.get(parent, ()):
                dead[key] = f"the certificate of its issuing authority {label(ca)} has been revoked"
            elif parent in dead:
                dead[key] = dead[parent]
            else:
                continue
            changed = True
    return dead


def _removal(entry: x509.RevokedCertificate) -> bool:
    try:
        reason = ext(entry, x509.CRLReason)  # type: ignore[arg-type]  # ext() reads any holder with .extensions
    except PARSE_ERRORS:
        return False
    return reason is not None and reason.reason is x509.ReasonFlags.remove_from_crl
