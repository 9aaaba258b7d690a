"""Composition of the desktop client (called from ``app.__main__``): every I/O object the UI uses is built here.

Training mode (no site configuration): the bundled service in-process on loopback with its own SQLite file in the
user data dir (seeded on first run), the training card issued once and inserted into pcscd's virtual reader by this
process, the training CA as trust store. Production: the configured service over HTTPS (its CA), the site's trust
anchors with revocation required. The UI gets the results through :class:`app.ui.ports.ClientDeps`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from app.config import DEFAULT_VPCD_PORT, Settings
from app.errors import CertificateRejected

log = logging.getLogger(__name__)
NO_DISPLAY = ("No display found (DISPLAY and WAYLAND_DISPLAY are not set): Spine Desk's desktop client needs a "
              "graphical display. Run 'spinedesk' from a desktop session. On a machine without a "
              "display you can still run the Spine service: 'spinedesk service --seed 2000' (training data), and "
              "use 'spinedesk login' and 'spinedesk card status'.")


def has_display(env: dict[str, str] | None = None) -> bool:
    env = dict(os.environ) if env is None else env
    if not sys.platform.startswith("linux"):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


class PcscCardAccess:
    """``app.ui.ports.CardAccess`` over the real pcscd."""

    def __init__(self, trust: Any, now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 only_reader: str | None = None) -> None:
        from app.card.pcsc import PcscSystem

        self._system = PcscSystem()
        self._trust = trust
        self._now = now
        self._only = only_reader  # watch one reader only (a shared test machine's other slots are not ours)

    def connect(self, reader: str | None) -> Any:
        return self._system.connect(reader or self._only)

    def start_monitor(self, callback: Callable[[Any], None]) -> Callable[[], None]:
        from app.card.pcsc import CardMonitor
        from app.ui.ports import ReaderEvent

        def relay(event: Any) -> None:
            if self._only is None or event.reader in (None, self._only):
                callback(ReaderEvent(event.kind.value, event.reader))

        monitor = CardMonitor(relay, poll_ms=1000)
        monitor.start()
        return monitor.stop

    def check_certificate(self, certificate_der: bytes) -> int | None:
        from app.pki import load_certificate, validate

        verdict = validate(load_certificate(certificate_der), self._trust, now=self._now())
        if not verdict.ok:
            raise CertificateRejected(verdict.status.value, verdict.detail)
        return verdict.days_until_expiry


def trust_store(settings: Settings) -> Any:
    from app.pki import TrainingCA, TrustStore

    if settings.training:
        return TrainingCA.load_or_create(settings.paths.pki_dir).trust_store()
    return TrustStore.from_pem_files(settings.trust_anchors, settings.trust_intermediates, settings.trust_crls,
                                     require_revocation=True)


def wes_gate(settings: Settings, service_url: str | None) -> Callable[[Callable[[Any], None]], Any] | None:
    """``wes.run_checks`` bound to this workstation's mode, or None when the checker is not in this build."""
    try:
        from wes import run_checks  # type: ignore[attr-defined]
    except ImportError:
        return None
    mode = "training" if settings.training else "production"

    def gate(on_progress: Callable[[Any], None]) -> Any:
        return run_checks(mode=mode, spec_version=settings.wes_spec_version, service_url=service_url,
                          on_progress=on_progress)

    return gate


def pdf_writer() -> Callable[[str, Path], None] | None:
    try:
        from app.ui.pdf import html_to_pdf
    except ImportError:
        return None
    return lambda html, path: html_to_pdf(html, path, title="WES report")


def quiet_http_logs() -> None:
    """httpx logs every request URL at INFO: URLs carry NHS numbers and search terms, never logged here."""
    for name in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)


def build_training(settings: Settings, stack: contextlib.ExitStack, stream: TextIO, *,
                   vpcd_port: int = DEFAULT_VPCD_PORT, patients: int | None = None) -> tuple[str, Any]:
    """Start the in-process service and insert the training card; both stop when ``stack`` closes."""
    from app import training
    from app.service.store import open_store

    paths = settings.paths
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(f"sqlite:///{paths.data_dir / 'training-service.db'}")
    try:
        if training.seed_if_empty(store, patients or training.TRAINING_PATIENTS, stream):
            print("Training data seeded (first run).", file=stream)
        card_path = training.ensure_card(paths)
        training.register_user(store, card_path)
        running = training.start_service("unused://", paths.pki_dir, store=store)
    except BaseException:
        store.close()
        raise
    stack.callback(running.stop)
    slot = training.TrainingCardSlot(card_path, port=vpcd_port)
    try:
        slot.insert()
        stack.callback(slot.remove)
        slot.wait_inserted(3.0)  # in before the WES check looks for it (pcscd polls the reader every 0.4 s)
    except Exception as exc:  # e.g. already inserted by 'spinedesk card insert': that card stays in
        log.warning("the training card was not inserted by the client: %s", type(exc).__name__)
    return running.url, slot


def build_deps(settings: Settings, stack: contextlib.ExitStack, stream: TextIO, *, vpcd_port: int = DEFAULT_VPCD_PORT,
               only_reader: str | None = None, patients: int | None = None) -> Any:
    """Everything the client needs, for this machine's mode; closed with ``stack``."""
    import httpx

    from app.spine.client import SpineClient
    from app.ui.ports import ClientDeps

    quiet_http_logs()
    slot = None
    if settings.training:
        url, slot = build_training(settings, stack, stream, vpcd_port=vpcd_port, patients=patients)
        verify: bool | str = False  # plain HTTP on loopback
    else:
        url = settings.service_url or ""
        verify = str(settings.service_ca) if settings.service_ca else True
    http = stack.enter_context(httpx.Client(timeout=15, verify=verify))
    cards = PcscCardAccess(trust_store(settings), only_reader=only_reader)
    return ClientDeps(spine=SpineClient(url, http), cards=cards,
                      wes_gate=wes_gate(settings, None if settings.training else url), training=settings.training,
                      removal=settings.card_removal.value, service_label=url, training_card=slot,
                      export_dir=Path.home(), write_pdf=pdf_writer())


def run_desktop(settings: Settings, stdout: TextIO) -> int:
    if not has_display():
        print(NO_DISPLAY, file=stdout)
        return 1
    from app.ui.app import run_client

    with contextlib.ExitStack() as stack:
        return run_client(build_deps(settings, stack, stdout))
