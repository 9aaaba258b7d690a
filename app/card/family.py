"""Which family a card belongs to, from its ATR and (for PKCS#11 tokens) its manufacturer and model.

Sources (read on 2026-12-03; the WES spec's ``card_families`` lists the same ATRs with the same sources):

* NHS England, "Deprecation notice: smartcard series 4, 5 and 6 (Gemplus, JCOP41 & JCOP 41)", Care Identity
  Service, https://digital.nhs.uk/services/care-identity-service/releases-and-planned-maintenance/
  service-deprecation-and-retirement/deprecation-notice-smartcard-series-4-5-and-6 : series 4 cards are Gemplus,
  series 5 and 6 JCOP41; authentication with series 4 was permanently blocked on 1 April 2026, with series 5 and 6
  on 7 May 2026; organisations must deploy the Oberthur middleware (series 8 and later).
* pcsc-tools' smartcard list (``smartcard_list.txt``, Ludovic Rousseau, as shipped in Debian's pcsc-tools 1.6.2):
  two JCOP41 V2.2.1 ATRs described as "NHS hospital smartcard login key" and "NHS Care Identity Service (CIS)
  smartcard" — JCOP41, so series 5 or 6 by the notice above.

No public source gives the ATR of an NHS series 8, 9 or 10 card (NHS publishes none; the smartcard list has none
marked NHS). Those are recognised from what their PKCS#11 token says of itself: the manufacturer (Oberthur for
series 8, IDEMIA — Oberthur's name since 2017 — for the PIV-based series 9 and 10), or a model or label that
names the series. An IDEMIA token whose model names no series counts as series 9, the IDEMIA card NHS England
lists as tested with CIS2 Authentication (digital.nhs.uk, "Smartcards that need an HSCN connection").
"""

from __future__ import annotations

import re
from datetime import date

from app.card.backend import CardFamily

TRAINING_HISTORICAL = bytes([0x80, 0x5A]) + b"SPINE-DESK"

# (ATR, family, source) — exact ATRs only, each from a public source named above
NHS_ATRS: tuple[tuple[bytes, CardFamily, str], ...] = (
    (bytes.fromhex("3B 6A 00 FF 4A 43 4F 50 34 31 56 32 32 31"), CardFamily.SERIES_4_6,
     "pcsc-tools smartcard_list.txt: 'NHS hospital smartcard login key' (JCOP41 V2.2.1)"),
    (bytes.fromhex("3B F9 18 00 00 81 31 FE 45 4A 43 4F 50 34 31 56 32 32 AF"), CardFamily.SERIES_4_6,
     "pcsc-tools smartcard_list.txt: 'NHS Care Identity Service (CIS) smartcard' (JCOP41 V2.2.1)"),
)

_SERIES = re.compile(r"\bseries\s*(4|5|6|8|9|10)\b", re.IGNORECASE)
_BY_SERIES = {"4": CardFamily.SERIES_4_6, "5": CardFamily.SERIES_4_6, "6": CardFamily.SERIES_4_6,
              "8": CardFamily.SERIES_8, "9": CardFamily.SERIES_9, "10": CardFamily.SERIES_10}


def recognise(atr: bytes, *, piv: bool = False, manufacturer: str | None = None,
              model: str | None = None) -> CardFamily:
    """The card's family; ``piv`` says the card answered the PIV application. The ATR decides where a public
    source gives it; otherwise the token's model (naming a series) and then its manufacturer."""
    if TRAINING_HISTORICAL in atr:
        return CardFamily.TRAINING
    for known, family, _source in NHS_ATRS:
        if atr == known:
            return family
    named = _SERIES.search(model or "")
    if named:
        return _BY_SERIES[named.group(1)]
    maker = (manufacturer or "").casefold()
    if "oberthur" in maker:
        return CardFamily.SERIES_8
    if "idemia" in maker:
        return CardFamily.SERIES_9
    return CardFamily.PIV if piv else CardFamily.UNKNOWN


# NHS England blocked authentication with series 4 cards on 1 April 2026 and with series 5 and 6 on 7 May 2026 (the
# deprecation notice above); one family covers all three, so it counts as blocked from the later day.
NHS_BLOCKED_FROM: dict[CardFamily, date] = {CardFamily.SERIES_4_6: date(2026, 5, 7)}


def blocked_by_nhs(family: CardFamily, today: date) -> date | None:
    """The day NHS England blocked logins with this family of cards, when ``today`` is on or after it; else None."""
    since = NHS_BLOCKED_FROM.get(family)
    return since if since is not None and today >= since else None
