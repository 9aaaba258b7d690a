"""Build a running service from its settings: store, trust store, role table, audit writer, ASGI app.

Each server worker process calls :func:`create_app` itself (nothing shared lives in a process's memory: sessions,
challenges, idempotency records and the audit chain are all in the database), reading :class:`ServiceConfig`
from the environment that ``spinedesk service`` prepared.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from app.pki import TrainingCA, TrustStore
from app.pki.ca import CRL_PEM, system_clock
from app.pki.live_trust import LiveTrust
from app.resources_path import resource
from app.service.api.context import ServiceContext
from app.service.app import build_asgi
from app.service.cpis_delivery import Deliverer, DeliveryAlarm, delivery_trust, lease_seconds
from app.service.domain.auth import AuthService
from app.service.domain.rbac import load_role_table
from app.service.housekeeping import Purger, Retention
from app.service.limits import HttpLimits
from app.service.ratelimit import TokenBuckets
from app.service.store import AuditWriter, Store, open_store
from app.service.store.cpis_writer import CpisAccessWriter

ENV = "SPINEDESK_SERVICE_CONFIG"
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
    role_table: str = str(ROLE_TABLE)
    threads: int = 0  # 0: handlers inline on the event loop (see app.service.http.asgi_app)
    limits: HttpLimits = field(default_factory=HttpLimits)  # request size, time and connection limits
    tls_ca: str | None = None  # CA (PEM) that signed the service's TLS certificate: the deliverer trusts it too
    cpis_alarm: DeliveryAlarm = field(default_factory=DeliveryAlarm)  # when undelivered notifications are stuck
    retention: Retention = field(default_factory=Retention)  # what is kept how long, how often it is purged
    extra: dict[str, Any] = field(default_factory=dict)

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServiceConfig:
        doc = json.loads(os.environ[ENV])
        for key in ("anchors", "intermediates", "crls"):
            doc[key] = tuple(doc.get(key, ()))
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
    store = store or open_store(config.database)
    audit = AuditWriter(store, clock=clock)
    auth = AuthService(store, trust_store(config, clock), audience=config.audience or config.base_url,
                       clock=clock)
    ctx = ServiceContext(store, auth, load_role_table(Path(config.role_table)), audit,
                         cpis_writer=CpisAccessWriter(store, clock=clock), base_url=config.base_url, clock=clock,
                         delivery_alarm=config.cpis_alarm, login_limiter=login_limiter(config.limits))
    holder: list[Service] = []
    app = build_asgi(ctx, threads=config.threads, on_shutdown=lambda: holder[0].close(),
                     max_body=config.limits.max_body)
    deliverer = Deliverer(store, config.base_url, lease_seconds=lease_seconds(config.extra),
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
