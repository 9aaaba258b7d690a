"""The one seam between the PIV protocol and whatever carries APDUs (pcscd, a test fake, the applet itself)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class CardConnection(Protocol):
    """Sends one short command APDU and returns the response data and status word.

    Implementations serialise calls; callers that need several APDUs to run as one unit (chaining,
    GET RESPONSE) may additionally offer ``exclusive()`` returning a context manager, which
    :class:`app.card.piv.PivSession` uses when present.
    """

    def transmit(self, apdu: bytes) -> tuple[bytes, int]: ...
