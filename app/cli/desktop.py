"""``spinedesk`` with no command: the desktop client. Every I/O object the UI uses is built here.

Training mode (no site configuration): the bundled service in-process on loopback with its own SQLite file in the
user data dir (seeded on first run), the training card issued once and inserted into pcscd's virtual reader by this
process, the training CA as trust store. Production: the configured service over HTTPS (its CA), the site's trust
anchors with revocation required. The UI gets the results through :class:`app.ui.ports.ClientDeps`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from app.cli import wiring
from app.config import DEFAULT_VPCD_PORT, Settings
from app.errors import CertificateRejected

log = logging.getLogger(__name__)
NO_DISPLAY = ("No display found (DISPLAY and WAYLAND_DISPLAY are not set): Spine Desk's desktop client needs a "
              "graphical display. Run 'spinedesk' from a desktop session. On a machine without a "
              "display you can still run the Spine service: 'spinedesk service --seed 2000' (training data), and "
              "use 'spinedesk login' and 'spinedesk card status'.")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Nothing to add: the client is what ``spinedesk`` runs when no command is given."""


def run(args: argparse.Namespace, settings: Settings, *, stdout: TextIO | None = None,
        stdin: TextIO | None = None) -> int:
    stdout = stdout or sys.stdout
    if not wiring.has_display():
        print(NO_DISPLAY, file=stdout)
        return 1
    from app.ui.app import run_client

    # a training room's PC may serve its training card in another virtual slot (pcscd's vpcd: 35963, 35964, …)
    with contextlib.ExitStack() as stack:
        return run_client(client_deps(settings, stack, stdout, vpcd_port=settings.training_vpcd_port,
                                      only_reader=settings.training_reader),
                          startup_marks=settings.startup_marks)


class PcscCardAccess:
    """``app.ui.ports.CardAccess`` over the configured card back-ends (``app.card.chooser``): PIV through the real
    pcscd and the site's PKCS#11 modules. Card events come from pcscd's monitor and, when a PKCS#11 module is
    configured, from its token monitor too, merged into one de-duplicated stream."""

    def __init__(self, trust: Any, now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 only_reader: str | None = None, *, backends: list[Any] | None = None,
                 pkcs11_modules: tuple[Path, ...] = (), atr_of: Callable[[str | None], bytes] | None = None) -> None:
        from app.card.chooser import PivBackend
        from app.card.pcsc import PcscSystem

        system = PcscSystem()
        self._trust = trust
        self._now = now
        self._only = only_reader  # watch one reader only (a shared test machine's other slots are not ours)
        self._backends = backends if backends is not None else [
            PivBackend(lambda reader: system.connect(reader or only_reader), reset_on_close=True)]
        self._modules = pkcs11_modules
        # the reader's ATR, for PKCS#11 tokens (their modules do not report it); PIV reads it from its connection
        self._atr_of = atr_of or (lambda _reader: b"")

    def open(self, reader: str | None) -> Any:
        from app.card.chooser import open_login_token, refuse_retired

        reader = reader or self._only
        token = open_login_token(self._backends, reader, self._atr_of(reader) if self._modules else b"")
        return refuse_retired(token, self._now().date())

    def start_monitor(self, callback: Callable[[Any], None]) -> Callable[[], None]:
        from app.card.chooser import EventMerger, stop_all
        from app.card.pcsc import CardMonitor
        from app.ui.ports import ReaderEvent

        merged = EventMerger(lambda event: callback(ReaderEvent(str(getattr(event.kind, "value", event.kind)),
                                                                event.reader)))

        def relay(event: Any) -> None:
            if self._only is None or event.reader in (None, self._only):
                merged(event)

        def token_relay(event: Any) -> None:
            # a token monitor's SERVICE_UP/DOWN speak of its module, not of pcscd: the session follows pcscd and
            # the cards themselves (a module that fails reports its tokens removed first, which ends a session)
            if event.reader is not None:
                relay(event)

        monitor = CardMonitor(relay, poll_ms=1000)
        monitor.start()
        return stop_all([monitor.stop, *(_token_monitor(module, token_relay) for module in self._modules)])

    def check_certificate(self, certificate_der: bytes) -> int | None:
        from app.pki import load_certificate, validate

        verdict = validate(load_certificate(certificate_der), self._trust, now=self._now())
        if not verdict.ok:
            raise CertificateRejected(verdict.status.value, verdict.detail)
        return verdict.days_until_expiry


def _token_monitor(module: Path, relay: Callable[[Any], None]) -> Callable[[], None]:
    """Start the PKCS#11 token monitor of ``module`` (``app.card.pkcs11.TokenMonitor``, same events as the PC/SC
    monitor); returns its stop. Without PKCS#11 support in this build, or when the module cannot be loaded, a log
    line says so and removal is seen through pcscd only."""
    try:
        from app.card.pkcs11 import TokenMonitor
    except ImportError:
        log.warning("PKCS#11 module %s is configured but this build has no PKCS#11 token monitor: card removal "
                    "is seen through pcscd only", module)
        return lambda: None
    try:
        monitor = TokenMonitor(module, relay)
        monitor.start()
    except Exception as exc:  # a module that cannot load: logins through it report the error themselves
        log.warning("the PKCS#11 token monitor for %s did not start (%s): card removal is seen through pcscd only",
                    module, type(exc).__name__)
        return lambda: None
    return monitor.stop


def wes_gate(settings: Settings, service_url: str | None) -> Callable[[Callable[[Any], None]], Any] | None:
    """``wes.run_checks`` bound to this workstation's mode, or None when the checker is not in this build. The
    checker itself is imported when the gate first runs (off the GUI thread), not on the way to the first window."""
    import importlib.util

    if importlib.util.find_spec("wes") is None:
        return None
    mode = "training" if settings.training else "production"

    def gate(on_progress: Callable[[Any], None]) -> Any:
        from wes import run_checks

        return run_checks(mode=mode, spec_version=settings.wes_spec_version, service_url=service_url,
                          on_progress=on_progress)

    return gate


def wes_html() -> Callable[[Any], str] | None:
    """The WES report's printable HTML (``wes.report.html.render_html``), or None when the checker is not in this
    build; imported when first used, like the gate."""
    import importlib.util

    if importlib.util.find_spec("wes") is None:
        return None

    def render(report: Any) -> str:
        from wes.report.html import render_html

        return render_html(report)

    return render


def _report_writer() -> Callable[[str, Path], None] | None:
    """The WES report's PDF writer for the client's gate dialog."""
    write = wiring.pdf_writer()
    return None if write is None else (lambda html, path: write(html, path, "WES report"))


def quiet_http_logs() -> None:
    """httpx logs every request URL at INFO: URLs carry NHS numbers and search terms, never logged here."""
    for name in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)


def build_training(settings: Settings, stack: contextlib.ExitStack, stream: TextIO, *,
                   vpcd_port: int = DEFAULT_VPCD_PORT, patients: int | None = None,
                   on_step: Callable[[str], None] = lambda _text: None) -> tuple[str, Any]:
    """Start the in-process service and insert the training card; both stop when ``stack`` closes.

    The card goes in first, so pcscd's polling (every 0.4 s) overlaps the service's start rather than following it."""
    from app.cli import training

    paths = settings.paths
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    on_step("Preparing the training smartcard…")
    card_path = training.ensure_card(paths)
    slot = training.TrainingCardSlot(card_path, port=vpcd_port)
    try:
        slot.insert()
        stack.callback(slot.remove)
    except Exception as exc:  # e.g. already inserted by 'spinedesk card insert': that card stays in
        log.warning("the training card was not inserted by the client: %s", type(exc).__name__)
    on_step("Opening the training database…")
    store = wiring.open_store(wiring.training_database(settings))
    return _finish_training(settings, stack, stream, store, card_path, slot, patients, on_step)


def _finish_training(settings: Settings, stack: contextlib.ExitStack, stream: TextIO, store: Any, card_path: Path,
                     slot: Any, patients: int | None, on_step: Callable[[str], None]) -> tuple[str, Any]:
    from app.cli import training

    try:
        if not wiring.is_seeded(store):
            on_step("Creating the training patients (first run only)…")
            training.seed_if_empty(store, patients or training.TRAINING_PATIENTS, stream)
            print("Training data seeded (first run).", file=stream)
        training.register_user(store, card_path)
        on_step("Starting the training service…")
        running = training.start_service("unused://", settings.paths.pki_dir, store=store,
                                         scr_episode_hours=settings.scr_episode_hours,
                                         cpis_lease_seconds=settings.cpis_lease_seconds,
                                         audit_key=settings.paths.audit_key_file)
    except BaseException:
        store.close()
        raise
    stack.callback(running.stop)
    if slot.inserted:
        on_step("Waiting for the smart card service to see the training card…")
        slot.wait_inserted(3.0)  # in before the WES check looks for it
    return running.url, slot


def start_clients(settings: Settings, stack: contextlib.ExitStack, stream: TextIO, *,
                  vpcd_port: int = DEFAULT_VPCD_PORT, only_reader: str | None = None, patients: int | None = None,
                  on_step: Callable[[str], None] = lambda _text: None) -> Any:
    """The slow part of the start (``app.ui.ports.Started``): the training service and card, the HTTP client, the
    trust store and card access. Runs off the GUI thread in the client; closed with ``stack``."""
    import httpx

    from app.client.client import SpineClient
    from app.ui.ports import Started

    quiet_http_logs()
    slot = None
    if settings.training:
        url, slot = build_training(settings, stack, stream, vpcd_port=vpcd_port, patients=patients, on_step=on_step)
        verify: bool | str = False  # plain HTTP on loopback
    else:
        url = settings.service_url or ""
        verify = str(settings.service_ca) if settings.service_ca else True
    on_step("Loading the smartcard trust store…")
    http = stack.enter_context(httpx.Client(timeout=15, verify=verify))
    cards = PcscCardAccess(wiring.client_trust(settings), only_reader=only_reader,
                           backends=wiring.card_backends(settings, only_reader=only_reader),
                           pkcs11_modules=settings.pkcs11_modules if _pkcs11_in_use(settings) else (),
                           atr_of=wiring.pcsc_atr)
    return Started(spine=SpineClient(url, http), cards=cards, service_label=url, training_card=slot)


def client_deps(settings: Settings, stack: contextlib.ExitStack, stream: TextIO, *,
                vpcd_port: int = DEFAULT_VPCD_PORT, only_reader: str | None = None,
                patients: int | None = None) -> Any:
    """What the window needs to appear at once; the rest (``start_clients``) is its background ``startup``."""
    from app.cli.training import TRAINING_PIN
    from app.ui.ports import ClientDeps

    def startup(on_step: Callable[[str], None]) -> Any:
        return start_clients(settings, stack, stream, vpcd_port=vpcd_port, only_reader=only_reader,
                             patients=patients, on_step=on_step)

    return ClientDeps(spine=None, cards=None,  # type: ignore[arg-type]  # filled in by startup
                      wes_gate=wes_gate(settings, None if settings.training else settings.service_url),
                      training=settings.training, removal=settings.card_removal.value,
                      service_label="" if settings.training else (settings.service_url or ""),
                      export_dir=Path.home(), write_pdf=_report_writer(), wes_html=wes_html(), startup=startup,
                      training_pin=TRAINING_PIN if settings.training else None,
                      renewable=training_renewable if settings.training else None)


def training_renewable(card: Any) -> Any:
    """A training card as one whose key and certificate the desktop client may replace: the training cards' card
    management key is the well-known one they are issued with (``ManagementKey.training``); a card of another
    back-end is refused (``CardManagementRefused``). Runs on the card worker."""
    from app.card.management_key import ManagementKey
    from app.card.renewal import renewable

    return renewable(card, ManagementKey.training())


def _pkcs11_in_use(settings: Settings) -> bool:
    from app.config import CardBackendName

    return CardBackendName.PKCS11 in settings.card_backends


def build_deps(settings: Settings, stack: contextlib.ExitStack, stream: TextIO, *, vpcd_port: int = DEFAULT_VPCD_PORT,
               only_reader: str | None = None, patients: int | None = None) -> Any:
    """Everything the client needs, started before returning (tests and scripts); closed with ``stack``."""
    deps = client_deps(settings, stack, stream, vpcd_port=vpcd_port, only_reader=only_reader, patients=patients)
    deps.apply(deps.startup(lambda _text: None))
    deps.startup = None
    return deps

