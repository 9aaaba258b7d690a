"""The shared objects of the composition root, each built here and nowhere else.

The command modules (``app.cli.*``) ask for them; they are built when first asked for (the modules that build them
load then, so ``spinedesk --help`` loads none of them): the client's trust store, the service's live trust store,
the PDF writer, the display check, the store opener and the service's database URL, whether a database has been
seeded, and the log file.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
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


def open_store(database: str) -> Any:
    """The service's store at ``database`` (``sqlite:///…`` or ``postgresql://…``), created and migrated as needed."""
    from app.service.storage import open_store as open_database

    return open_database(database)


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

    def _open(self):  # type: ignore[no-untyped-def]
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
