"""Training mode's moving parts: the bundled service in-process on loopback, its seeded database, the training
card (issued once, with a documented PIN) and its insertion into pcscd's virtual reader.

Used by the desktop client's composition (``app.cli.desktop``, ``spinedesk`` with no site configuration), the GUI
tests, the screenshot script and the UI benchmarks. Nothing here imports Qt. Not a command of its own: training
is what ``spinedesk`` runs without a site configuration.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from app.config import DEFAULT_VPCD_PORT, Paths

log = logging.getLogger(__name__)

TRAINING_PIN = "123456"  # documented in README ("Desktop client") and shown on the login screen in training mode
TRAINING_PUK = "12345678"
TRAINING_PATIENTS = 2_000
TRAINING_USER = "training-clinician"
TRAINING_NAME = "Dr Alex Training"
TRAINING_ORG = ("A81001", "Spine Desk Training Practice")
TRAINING_ROLES = (("training-clinical", "S8000:G8000:R8000"), ("training-clerical", "S8000:G8000:R8010"))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class RunningService:
    url: str
    service: Any  # app.service.runtime.Service
    server: Any  # uvicorn.Server
    thread: threading.Thread

    @property
    def store(self) -> Any:
        return self.service.store

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.service.close()


def start_service(database: str, pki_dir: Path, *, store: Any = None, host: str = "127.0.0.1",
                  limits: Any = None, scr_episode_hours: float | None = None,
                  cpis_lease_seconds: float | None = None, audit_key: Path | None = None) -> RunningService:
    """The real service (uvicorn, one thread of this process) on a free loopback port; ``limits`` (an
    ``HttpLimits``) replaces the production request limits; the SCR episode length and CP-IS lease are the
    settings' (None: the defaults); ``audit_key``: the audit chain's key file (created on first start; None: an
    unkeyed chain, for tests)."""
    import uvicorn

    from app.service.runtime import ServiceConfig, build_service
    from app.service.server import uvicorn_config

    port = free_port(host)
    url = f"http://{host}:{port}"
    config = ServiceConfig(database=database, base_url=url, training_pki=str(pki_dir),
                           scr_episode_hours=scr_episode_hours, cpis_lease_seconds=cpis_lease_seconds,
                           audit_key=str(audit_key) if audit_key else None)
    if limits is not None:
        config = dataclasses.replace(config, limits=limits)
    service = build_service(config, store=store)
    server = uvicorn.Server(uvicorn_config(service.app, config.limits, host=host, port=port, log_level="warning",
                                           lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, name="training-service", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        service.close()
        raise OSError(f"the training service did not start on {url}")
    return RunningService(url, service, server, thread)


def seed_if_empty(store: Any, patients: int = TRAINING_PATIENTS, stream: TextIO | None = None) -> bool:
    """Seed synthetic patients on first run (as ``spinedesk service --seed`` does); False if already seeded."""
    from app.cli import wiring
    from app.cli.service import seed

    if wiring.is_seeded(store):
        return False
    seed(store, patients, 0, stream or sys.stderr)
    return True


def ensure_card(paths: Paths, *, name: str = TRAINING_NAME, pin: str = TRAINING_PIN,
                card_path: Path | None = None, days: int = 365) -> Path:
    """The training card file, issued by the training CA the first time."""
    from app.card.virtual import issue_card
    from app.pki import TrainingCA
    from app.pki.card_records import CardRecords

    path = card_path or paths.training_card_file
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        ca = TrainingCA.load_or_create(paths.pki_dir)
        card, _ = issue_card(ca, name=name, algorithm="p256", pin=pin, puk=TRAINING_PUK, days=days)
        card.save(path)
        CardRecords(ca.directory).record_unblock_code(card.card_uuid, TRAINING_PUK)  # for a Local Smartcard Unlocker
        log.info("issued the training card %s", card.card_uuid)
    else:
        _record_training_puk(paths, path)
    return path


def _record_training_puk(paths: Paths, path: Path) -> None:
    """A training card issued before unblock codes were recorded: record its PUK if it is still the documented
    one (checked against the card file's hash), so a Local Smartcard Unlocker can unblock it too."""
    from app.card.virtual import CardFile
    from app.errors import AppError
    from app.pki.card_records import CardRecords

    try:
        records = CardRecords(paths.pki_dir)
        card = CardFile.load(path)
        if records.unblock_code(card.card_uuid) is None and card.check_puk(TRAINING_PUK):
            records.record_unblock_code(card.card_uuid, TRAINING_PUK)
    except (AppError, OSError) as exc:  # the card's own problems are reported where it is used
        log.debug("training card's unblock code not recorded: %s", type(exc).__name__)


def register_user(store: Any, card_path: Path, *, user_id: str = TRAINING_USER,
                  roles: tuple[tuple[str, str], ...] = TRAINING_ROLES) -> None:
    """The card's user and role profiles in the service database (idempotent; a reissued card is linked too)."""
    from app.card.virtual import CardFile
    from app.service.core.rbac import load_role_table
    from app.service.runtime import ROLE_TABLE
    from app.service.store import RoleProfile

    card = CardFile.load(card_path)
    card_uuid = str(card.card_uuid)
    user = store.get_user(user_id)
    if user is None:
        store.add_user(user_id, card.holder_name, card_uuids=[card_uuid])
    elif card_uuid not in user.card_uuids:
        store.add_credentials(user_id, card_uuids=[card_uuid])
    table = load_role_table(ROLE_TABLE)
    for urid, code in roles:
        if store.get_role_profile(urid) is None:
            store.add_role_profile(RoleProfile(urid, user_id, TRAINING_ORG[0], TRAINING_ORG[1], code,
                                               table.role_name(code), table.default_activities(code)))


class TrainingCardSlot:
    """The training card in pcscd's virtual reader, served from a thread of this process (like ``spinedesk card
    insert``). ``remove()`` pulls it; ``insert()`` puts it back. The card file is held exclusively meanwhile."""

    def __init__(self, path: Path, *, pin: str = TRAINING_PIN, port: int = DEFAULT_VPCD_PORT,
                 host: str = "127.0.0.1") -> None:
        self.path, self.pin, self.port, self.host = path, pin, port, host
        self._lock = threading.Lock()
        self._link: Any = None
        self._exclusive: contextlib.ExitStack | None = None

    @property
    def inserted(self) -> bool:
        return self._link is not None

    def insert(self) -> None:
        from app.card.virtual import CardFile, PivApplet, VpcdLink, exclusive_use

        with self._lock:
            if self._link is not None:
                return
            stack = contextlib.ExitStack()
            stack.enter_context(exclusive_use(self.path))
            card = CardFile.load(self.path)
            applet = PivApplet(card, persist=lambda c: c.save(self.path))
            link = VpcdLink(applet, host=self.host, port=self.port)
            link.start()
            self._link, self._exclusive = link, stack

    def remove(self) -> None:
        with self._lock:
            link, stack = self._link, self._exclusive
            self._link = self._exclusive = None
        if link is not None:
            link.stop()
        if stack is not None:
            stack.close()

    def wait_inserted(self, timeout: float) -> bool:
        link = self._link
        return bool(link is not None and link.inserted.wait(timeout))
