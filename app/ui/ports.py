"""What the desktop client is given by ``main()`` (the composition root): nothing here constructs I/O.

The UI never imports pyscard, httpx, ``app.card.pcsc`` or ``app.service``: cards come through :class:`CardAccess`
(built over ``app.card``), HTTP through an ``app.client.api.SpineApi``, the WES checker through ``wes_gate``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from app.client.api import SpineApi

if TYPE_CHECKING:  # the card modules (and cryptography) load on the card worker, off the way to the first window
    from app.card.backend import LoginToken

# card monitor event kinds (the values of app.card.pcsc.EventKind, translated by the composition root)
SERVICE_UP, SERVICE_DOWN = "service_up", "service_down"
READER_ADDED, READER_REMOVED = "reader_added", "reader_removed"
CARD_INSERTED, CARD_REMOVED = "card_inserted", "card_removed"


@dataclass(frozen=True, slots=True)
class ReaderEvent:
    kind: str
    reader: str | None = None


class CardAccess(Protocol):
    def open(self, reader: str | None) -> LoginToken:
        """The card in ``reader`` (None: the first card found), opened by the first configured back-end that
        recognises it (PIV, a PKCS#11 module); closing the token makes the card forget a verified PIN."""
        ...

    def start_monitor(self, callback: Callable[[ReaderEvent], None]) -> Callable[[], None]:
        """Start watching readers (``callback`` runs on the monitor's thread); returns a function that stops it."""
        ...

    def check_certificate(self, certificate_der: bytes) -> int | None:
        """Days until the card certificate expires; raises ``CertificateRejected`` when it is not trusted."""
        ...


class TrainingCard(Protocol):
    """Training mode's virtual card, which the client inserts into pcscd's virtual reader itself."""

    pin: str

    def insert(self) -> None: ...

    def remove(self) -> None: ...


WesGate = Callable[[Callable[[Any], None]], Any]  # (on_progress(CheckResult)) -> wes.Report
WesHtml = Callable[[Any], str]  # (wes.Report) -> the printable HTML report (wes.report.html.render_html)


@dataclass(frozen=True)
class Started:
    """What the background start-up hands the window once the service and the card side are ready."""

    spine: SpineApi
    cards: CardAccess
    service_label: str = ""
    training_card: TrainingCard | None = None


StartUp = Callable[[Callable[[str], None]], Started]  # (on_step(text)) -> Started; runs off the GUI thread


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ClientDeps:
    """``spine`` and ``cards`` may be left ``None`` when ``startup`` is given: the window is shown first and
    ``startup`` (service start, training card, HTTP client, trust store) runs in the background with visible steps;
    clinical use stays closed until it has finished and the WES gate has passed."""

    spine: SpineApi
    cards: CardAccess
    wes_gate: WesGate | None
    training: bool
    removal: str = "lock"  # or "logout"
    service_label: str = ""
    training_card: TrainingCard | None = None
    export_dir: Path = field(default_factory=Path.home)
    write_pdf: Callable[[str, Path], None] | None = None  # (html, path): the WES report as PDF
    wes_html: WesHtml | None = None  # without it the exported report holds what the screen shows
    today: Callable[[], date] = date.today
    now: Callable[[], datetime] = _utcnow
    startup: StartUp | None = None
    training_pin: str | None = None  # shown on the login page in training mode before the card is in
    # (login token) -> the same card as one whose key and certificate this client may replace (PIV with its card
    # management key: app.client.selfservice.RenewableCard); runs on the card worker. None: the client cannot
    # renew certificates here (production cards' management keys are their registration authority's)
    renewable: Callable[[Any], Any] | None = None

    def apply(self, started: Started) -> None:
        self.spine, self.cards = started.spine, started.cards
        self.service_label, self.training_card = started.service_label, started.training_card
