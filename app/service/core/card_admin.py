"""The training registration authority behind card self-service: the training CA that issues renewed certificates
and the records of the cards it issued (unblock codes, pending renewals). Production services have none: NHS cards
are renewed and unlocked by registration authorities in Care Identity Management."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from cryptography import x509

from app.pki import RENEWAL_WINDOW_DAYS, TrainingCA
from app.pki.card_records import CardRecords, PendingRenewal

log = logging.getLogger(__name__)

RENEWED_DAYS = 365  # a renewed training certificate's lifetime
RENEWAL_WINDOW = timedelta(days=RENEWAL_WINDOW_DAYS)
PRODUCTION_REFUSAL = ("this service does not issue or unlock smartcards: NHS smartcards are renewed and unlocked by "
                      "your registration authority (or a Local Smartcard Unlocker) in Care Identity Management, "
                      "and a locked card can also be unlocked with NHS's self-service smartcard unlock")


@dataclass(frozen=True)
class CardAdmin:
    ca: TrainingCA
    records: CardRecords

    def on_login(self, cert: x509.Certificate) -> None:
        """A renewed card's first login: its card holds the new certificate, so revoke the one it replaced (when
        the client's confirmation did not arrive)."""
        pending = self.records.pending_renewal(cert.serial_number)
        if pending is None or cert.issuer != self.ca.issuing.subject:
            return
        self.settle(pending)
        log.info("revoked certificate %x: its card logged in with the renewed certificate %x", pending.old_serial,
                 pending.new_serial)

    def supersede(self, old_serial: int) -> list[int]:
        """A new renewal of ``old_serial`` is being issued: revoke the certificates earlier renewals of it issued
        (the card asked for a new key since, so none of them can be on it); returns their serials. Whoever held
        the session (a stolen token too) is left with one renewed certificate at most, the latest."""
        earlier = self.records.renewals_replacing(old_serial)
        for pending in earlier:
            self.ca.revoke(pending.new_serial, x509.ReasonFlags.superseded)
            self.records.finish_renewal(pending.new_serial)
        return [pending.new_serial for pending in earlier]

    def settle(self, pending: PendingRenewal) -> None:
        """The card stores ``pending``'s new certificate: revoke the old one and any other certificate issued to
        replace it (two renewals that raced), so only the card's certificate stands."""
        self.ca.revoke(pending.old_serial, x509.ReasonFlags.superseded)
        for other in self.records.renewals_replacing(pending.old_serial):
            if other.new_serial != pending.new_serial:
                self.ca.revoke(other.new_serial, x509.ReasonFlags.superseded)
                self.records.finish_renewal(other.new_serial)
        self.records.finish_renewal(pending.new_serial)
