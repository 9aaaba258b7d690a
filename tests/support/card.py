"""A card connection straight to the virtual training applet, for tests that need a real PIV card edge but no
pcscd (the applet answers the APDUs the PIV client sends)."""

from __future__ import annotations

from typing import Any


class AppletLink:
    def __init__(self, applet: Any) -> None:
        self.applet = applet

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        raw = self.applet.process(apdu)
        return raw[:-2], int.from_bytes(raw[-2:], "big")

    def close(self, reset: bool = False) -> None:
        if reset:
            self.applet.reset()
