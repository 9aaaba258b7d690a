"""Build a running service from its settings: store, trust store, role table, audit writer, ASGI app.

Each server worker process calls :func:`create_app` itself (nothing shared lives in a process's memory: sessions,
challenges, idempotency records and the audit chain are all in the database), from the :class:`ServiceConfig`
that ``spinedesk service`` put in the environment as JSON (read by ``app.config``, the one reader of the environment).
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from app.config import SERVICE_CONFIG_ENV, service_config_json
from app.pki import IdentityAttribute, IdentityPolicy, TrainingCA, TrustStore
from app.pki.ca import CRL_PEM, system_clock
from app.pki.card_records import CardRecords
from app.pki.live_trust import LiveTrust
from app.resources_path import resource
from app.service.app import build_asgi
from app.service.core.auth import AuthService
from app.service.core.card_admin import CardAdmin
from app.service.core.context import ServiceContext
from app.service.core.housekeeping import Purger, Retention
from app.service.core.limits import HttpLimits
from app.service.core.ratelimit import TokenBuckets
from app.service.core.rbac import load_role_table
from app.service.cpis.delivery import Deliverer, DeliveryAlarm, delivery_trust, lease_seconds
from app.service.cpis.store import CpisStore
from app.service.cpis.writer import CpisAccessWriter
from app.service.storage import open_store
from app.service.store import AuditSeal, AuditWriter, Store, open_seal

ENV = SERVICE_CONFIG_ENV  # where server.serve puts the config for its worker processes
ROLE_TABLE = resource("rbac.json")


@dataclass(frozen=True)
class ServiceConfig:
    database: str
    base_url: str = ""
    # the service's identity in login signatures: the URL clients are configured to reach it at (production: the
    # site configuration's [service] url); empty: base_url
    audience: str = ""
    training_pki: str | None = None  # training: trust the training CA in this directory
    anchors: tuple[str, ...] = ()  # production: trust anchors, intermediates and CRLs (revocation required)
    intermediates: tuple[str, ...] = ()
    crls: tuple[str, ...] = ()
    # production: (anchor file, identity attribute) pairs, the site configuration's [trust] identity; anchors not
    # named use the subject's serialNumber. Training: the training CA's certificates name the card UUID (san-uuid).
    identity: tuple[tuple[str, str], ...] = ()
    role_table: str = str(ROLE_TABLE)
    threads: int = 2  # threads for requests that touch the database (0: on the event loop; see core.http.asgi_app)
    limits: HttpLimits = field(default_factory=HttpLimits)  # request size, time and connection limits
    tls_ca: str | None = None  # CA (PEM) that signed the service's TLS certificate: the deliverer trusts it too
    cpis_alarm: DeliveryAlarm = field(default_factory=DeliveryAlarm)  # when undelivered notifications are stuck
    retention: Retention = field(default_factory=Retention)  # what is kept how long, how often it is purged
    scr_episode_hours: float | None = None  # how long SCR episode grants last (None: the SCR default, 12 h)
    cpis_lease_seconds: float | None = None  # the CP-IS deliverer's claim lease (None: its default, 30 s)
    audit_key: str | None = None  # the audit chain's key file (created on first start); None: the chain is unkeyed
    audit_checkpoints: str | None = None  # where checkpoints are published (None: audit-checkpoints beside the key)

    def to_env(self) -> str:
        """The JSON the worker processes read back with :meth:`from_env`."""
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServiceConfig:
        """The config ``spinedesk service`` left in the environment (read by ``app.config``)."""
        return cls.from_json(service_config_json(env))

    @classmethod
    def from_json(cls, text: str) -> ServiceConfig:
        doc = json.loads(text)
        for key in ("anchors", "intermediates", "crls"):
            doc[key] = tuple(doc.get(key, ()))
        doc["identity"] = tuple((str(f), str(a)) for f, a in doc.get("identity", ()))
        doc["limits"] = HttpLimits(**doc.get("limits", {}))
        doc["cpis_alarm"] = DeliveryAlarm(**doc.get("cpis_alarm", {}))
        doc["retention"] = Retention(**doc.get("retention", {}))
        return cls(**doc)


Clock = Callable[[], datetime]


def trust_store(config: ServiceConfig, clock: Clock = system_clock) -> LiveTrust:
    """Training: the training CA's root and issuing CA, its crl.pem (republished by the CA as it nears its next
    update). Production: the configured files, revocation required. CRLs are re-read while the service runs."""
    if config.training_pki:
        ca = TrainingCA.load_or_create(Path(config.training_pki), clock=clock)
        return LiveTrust((ca.root,), (ca.issuing,), (ca.directory / CRL_PEM,), require_revocation=False,
                         refresh=ca.crl)
    fixed = TrustStore.from_pem_files([Path(p) for p in config.anchors], [Path(p) for p in config.intermediates])
    return LiveTrust(fixed.anchors, fixed.intermediates, [Path(p) for p in config.crls], require_revocation=True)


def card_admin(config: ServiceConfig, clock: Clock = system_clock) -> CardAdmin | None:
    """Training: the training CA and its card records, behind card renewal and unblock. Production: none."""
    if not config.training_pki:
        return None
    directory = Path(config.training_pki)
    return CardAdmin(TrainingCA.load_or_create(directory, clock=clock), CardRecords(directory))


def identity_policy(config: ServiceConfig) -> IdentityPolicy:
    """Where certificates name their holder, per trust anchor: training, the card UUID in the subject alternative
    name; production, the configured attribute per anchor file, else the NHS user UUID in the subject's
    serialNumber."""
    if config.training_pki:
        return IdentityPolicy(default=IdentityAttribute.SAN_UUID)
    return IdentityPolicy.from_files(config.identity)


def audit_seal(config: ServiceConfig, clock: Clock = system_clock) -> AuditSeal | None:
    """The audit key (created 0600 on first start) and checkpoint log the configuration names; None: unkeyed."""
    if config.audit_key is None:
        return None
    checkpoints = Path(config.audit_checkpoints) if config.audit_checkpoints else None
    return open_seal(Path(config.audit_key), checkpoints, create=True, clock=clock)


@dataclass
class Service:
    store: Store
    audit: AuditWriter
    context: ServiceContext
    app: Any
    deliverer: Deliverer | None = None  # CP-IS notification outbox (a thread per process)
    purger: Purger | None = None  # deletes expired challenges, sessions and stored answers (a thread per process)

    def close(self) -> None:
        if self.purger is not None:
            self.purger.stop()
        if self.deliverer is not None:
            self.deliverer.stop()
        self.context.cpis_writer.close()  # commits what is queued before the store goes
        self.audit.close()
        self.store.close()


def login_limiter(limits: HttpLimits) -> TokenBuckets:
    """This process's buckets for the unauthenticated login endpoints, per client address."""
    return TokenBuckets(limits.auth_rate_per_minute, limits.auth_burst, max_sources=limits.auth_sources)


def build_service(config: ServiceConfig, store: Store | None = None, *, clock: Clock = system_clock) -> Service:
    """The service over ``store`` (default: opened from ``config.database``). ``clock`` (aware datetimes) is
    the time every date-dependent decision reads: logins, sessions, certificate and CRL validity, the training
    CA's CRL dates, and what the purge job deletes."""
    opened = store is None
    store = store or open_store(config.database, timeout=config.limits.db_timeout)
    try:
        seal = audit_seal(config, clock)
        if seal is not None:
            store.use_audit_seal(seal)
        store.check_audit_key()  # a key that cannot continue the chain stops the service now, not at a request
    except BaseException:
        if opened:
            store.close()
        raise
    audit = AuditWriter(store, clock=clock)
    cpis_store = cast(CpisStore, store)  # the composed store implements every feature's protocol
    auth = AuthService(store, trust_store(config, clock), audience=config.audience or config.base_url,
                       clock=clock, identity=identity_policy(config))
    admin = card_admin(config, clock)
    if admin is not None:
        auth.on_login = admin.on_login
    ctx = ServiceContext(store, auth, load_role_table(Path(config.role_table)), audit,
                         cpis_writer=CpisAccessWriter(cpis_store, clock=clock), base_url=config.base_url, clock=clock,
                         delivery_alarm=config.cpis_alarm, login_limiter=login_limiter(config.limits),
                         scr_episode_hours=config.scr_episode_hours, card_admin=admin)
    holder: list[Service] = []
    app = build_asgi(ctx, threads=config.threads, db_timeout=config.limits.db_timeout,
                     on_shutdown=lambda: holder[0].close(), max_body=config.limits.max_body)
    deliverer = Deliverer(cpis_store, config.base_url, lease_seconds=lease_seconds(config.cpis_lease_seconds),
                          verify=delivery_trust(config.tls_ca), alarm=config.cpis_alarm, clock=clock).start()
    purger = Purger(store, config.retention, clock=clock).start()
    service = Service(store, audit, ctx, app, deliverer, purger)
    holder.append(service)
    return service


def reload_on_sighup(trust: LiveTrust) -> bool:
    """Make SIGHUP ask ``trust`` to re-read its CRLs (done at this process's next request; the handler only sets
    a flag, so it never runs store or file work in the middle of other code). False where there is no SIGHUP, or
    off the main thread (signal handlers can only be set there)."""
    hup = getattr(signal, "SIGHUP", None)
    if hup is None or threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(hup, lambda *_: trust.request_reload())
    return True


def create_app() -> Any:
    """ASGI factory for server worker processes (``SPINEDESK_SERVICE_CONFIG`` holds the JSON config)."""
    service = build_service(ServiceConfig.from_env())
    reload_on_sighup(service.context.auth.trust)
    return service.app
