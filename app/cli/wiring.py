"""The shared objects of the composition root, each built here and nowhere else.

The command modules (``app.cli.*``) ask for them; they are built when first asked for (the modules that build them
load then, so ``spinedesk --help`` loads none of them): the client's trust store, the card back-ends, the service's
live trust store, the PDF writer, the display check, the store opener and the service's database URL, whether a
database has been seeded, and the log file.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from io import TextIOWrapper
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

from app.config import Settings
from app.private_files import create_private_file, private_dir, tighten

PdfWriter = Callable[[str, Path, str], None]  # (html, output file, title)


def has_display(env: Mapping[str, str] | None = None) -> bool:
    """Whether the desktop client can open a window here (Linux needs X11 or Wayland)."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux"):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def client_trust(settings: Settings) -> Any:
    """The trust store card certificates are checked against on this workstation (``card status``, the client):
    training, the training CA's; production, the site's anchors, intermediates and CRLs, revocation required (no
    current CRL means not trusted)."""
    from app.pki import TrainingCA, TrustStore

    if settings.training:
        return TrainingCA.load_or_create(settings.paths.pki_dir).trust_store()
    return TrustStore.from_pem_files(settings.trust_anchors, settings.trust_intermediates, settings.trust_crls,
                                     require_revocation=True)


def client_identity(settings: Settings) -> Any:
    """Which certificate attribute names a card's holder, per trust anchor (``app.pki.IdentityPolicy``): training,
    the card UUID in the subject alternative name; production, the site's ``[trust] identity`` (default the NHS user
    UUID in the subject's serialNumber)."""
    from app.pki import IdentityAttribute, IdentityPolicy

    if settings.training:
        return IdentityPolicy(default=IdentityAttribute.SAN_UUID)
    return IdentityPolicy.from_files(settings.trust_identity)


def card_backends(settings: Settings, *, reset_on_close: bool = True, only_reader: str | None = None) -> list[Any]:
    """The card back-ends (``app.card.backend.CardBackend``) in the site's order (``[cards] backends``): PIV over
    PC/SC, and one PKCS#11 back-end per ``[cards] pkcs11_modules`` entry (``app.card.pkcs11``, loaded only when a
    module is configured). ``reset_on_close``: closing a PIV token resets the card (logins forget the PIN);
    ``only_reader``: the PC/SC reader to use when none is named (a training room's own virtual slot)."""
    from app.card.chooser import PivBackend
    from app.config import CardBackendName

    backends: list[Any] = []
    for name in settings.card_backends:
        if name is CardBackendName.PIV:
            backends.append(PivBackend(_pcsc_connect(only_reader), reset_on_close=reset_on_close))
        else:
            backends.extend(_pkcs11_backend(module) for module in settings.pkcs11_modules)
    return backends


def pcsc_atr(reader: str | None) -> bytes:
    """The ATR of the card in the PC/SC reader ``reader`` (its name or a prefix), so a card a PKCS#11 module serves
    is recognised by its ATR too; b"" when no reader is named, PC/SC does not know it or holds no card there, or
    pcscd does not answer (a token with no PC/SC behind it)."""
    if reader is None:
        return b""
    from app.card.pcsc import PcscSystem
    from app.errors import CardError

    try:
        states = PcscSystem().reader_states()
    except CardError:
        return b""
    matching = [s for s in states if s.name == reader] or [s for s in states if s.name.startswith(reader)]
    return matching[0].atr if matching and matching[0].card_present else b""


def _pcsc_connect(only_reader: str | None) -> Callable[[str | None], Any]:
    from app.card.pcsc import PcscSystem

    system = PcscSystem()
    return lambda reader: system.connect(reader or only_reader)


def _pkcs11_backend(module: Path) -> Any:
    try:
        from app.card.pkcs11 import Pkcs11Backend
    except ImportError:
        return _NoPkcs11Support(module)
    return Pkcs11Backend(module)


class _NoPkcs11Support:
    """Stands in for a configured PKCS#11 module when this build has no PKCS#11 back-end: using it says so."""

    def __init__(self, module: Path) -> None:
        from app.card.backend import BackendKind

        self.kind = BackendKind.PKCS11
        self.module = module

    def open(self, reader: str | None, atr: bytes) -> Any:
        from app.errors import CardError

        raise CardError(f"the PKCS#11 module {self.module} is configured, but this build of Spine Desk has no "
                        "PKCS#11 support (app.card.pkcs11 is missing); reinstall Spine Desk")


def service_trust(config: Any) -> Any:
    """The service's trust store (CRLs re-read while it runs), as each worker process builds it from its
    ``ServiceConfig`` (``app.service.runtime.trust_store``)."""
    from app.service.runtime import trust_store

    return trust_store(config)


def pdf_writer() -> PdfWriter | None:
    """Writes HTML to a PDF file through Qt; None when this build has no Qt."""
    try:
        from app.ui.pdf import html_to_pdf
    except ImportError:
        return None
    return lambda html, path, title: html_to_pdf(html, path, title=title)


def open_store(database: str, *, audit_seal: Any = None) -> Any:
    """The service's store at ``database`` (``sqlite:///…`` or ``postgresql://…``), created and migrated as needed;
    ``audit_seal`` keys its audit chain and publishes its checkpoints (``audit_seal``, ``service_audit_seal``)."""
    from app.service.storage import open_store as open_database

    return open_database(database, audit_seal=audit_seal)


def audit_seal(key: Path, checkpoints: Path | None) -> Any:
    """The audit key at ``key`` (never created here: None inside when missing; ``AuditKeyError`` when unusable)
    and its checkpoint folder (default: beside the key), for administration and ``audit verify``."""
    from app.service.store import open_seal

    return open_seal(key, checkpoints, create=False)


def service_audit_seal(config: Any) -> Any:
    """The audit key the service's ``ServiceConfig`` names, created 0600 on first start (before the workers start,
    so they all load the one key), with its checkpoint folder (``app.service.runtime.audit_seal``)."""
    from app.service.runtime import audit_seal as seal_for

    return seal_for(config)


def service_database(settings: Settings, given: str | None = None) -> str:
    """``given`` (``--database``), else the SQLite file in the user data dir (the folder made 0700 first: the
    database in it holds patient data)."""
    if given:
        return str(given)
    from app.private_files import private_dir

    private_dir(settings.paths.data_dir)
    return f"sqlite:///{settings.paths.data_dir / 'service.db'}"


def training_database(settings: Settings) -> str:
    """The in-process training service's SQLite file in the user data dir."""
    return f"sqlite:///{settings.paths.data_dir / 'training-service.db'}"


def is_seeded(store: Any) -> bool:
    """Whether ``store`` holds seeded patients: seeding always stores NHS's sandbox reference patients first, so
    the first of them (as the seed module lists them) answers."""
    from app.service.pds.seed import reference_rows

    return store.get_patient(reference_rows()[0].nhs_number) is not None


class _PrivateRotatingFileHandler(RotatingFileHandler):
    """Every log file it opens (the first and each one after a rollover) is created 0600: failure logs can name
    patients (NHS numbers)."""

    def _open(self) -> TextIOWrapper:
        create_private_file(Path(self.baseFilename))
        return super()._open()


LOG_BACKUPS = 3


def configure_logging(settings: Settings, verbose: bool) -> None:
    """Log to a rotating file in the user log dir (folder 0700, files 0600; older files are tightened). Nothing
    logged anywhere ever contains a PIN or PUK."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    try:
        log_file = private_dir(settings.paths.log_dir) / "spinedesk.log"
        tighten(Path(f"{log_file}.{n}") for n in range(1, LOG_BACKUPS + 1))
        handler: logging.Handler = _PrivateRotatingFileHandler(log_file, maxBytes=5_000_000,
                                                               backupCount=LOG_BACKUPS, encoding="utf-8")
    except OSError:
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
