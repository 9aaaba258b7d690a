"""What every check is built from: its :class:`Context` (the probes and the run's facts), the :class:`Outcome` it
returns, and the registry the ``@check(ID)`` decorator fills. The check modules import this, never the package."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from wes.model import Status
from wes.probes import Probes
from wes.spec import Spec


@dataclass(frozen=True)
class Outcome:
    status: Status
    evidence: str
    remediation: str | None = None  # overrides the spec's text when the fix depends on what was found
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Context:
    spec: Spec
    mode: str  # "training" | "production"
    platform: str  # "linux" | "windows" | "macos" | …
    probes: Probes
    service_url: str | None
    card_removal: str
    now: datetime

    @property
    def production(self) -> bool:
        return self.mode == "production"


Check = Callable[[Context], Outcome]
CHECKS: dict[str, Check] = {}


def check(check_id: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[check_id] = fn
        return fn

    return register


# The report's order: the system, then the smartcard stack, trust, the network, and the client.
ORDER = ("os.supported", "pcsc.service", "pcsc.reader", "pcsc.virtual", "pcsc.apdu_logging",
         "card.present", "card.series", "card.cert",
         "pki.roots", "tls", "net.spine", "time.sync", "client.version", "screen", "removal.mode")


def version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)
