"""Build a running service from its settings: store, trust store, role table, audit writer, ASGI app.

Each server worker process calls :func:`create_app` itself (nothing shared lives in a process's memory: sessions,
challenges, idempotency records and the audit chain are all in the database), reading :class:`ServiceConfig`
from the environment that ``spinedesk service`` prepared.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.pki import TrainingCA, TrustStore
from app.resources_path import resource
from app.service.api.context import ServiceContext
from app.service.app import build_asgi
from app.service.cpis_delivery import Deliverer, lease_seconds
from app.service.domain.auth import AuthService
from app.service.domain.rbac import load_role_table
from app.service.limits import HttpLimits
from app.service.store import AuditWriter, Store, open_store
from app.service.store.cpis_writer import CpisAccessWriter

ENV = "SPINEDESK_SERVICE_CONFIG"
ROLE_TABLE = resource("rbac.json")


@dataclass(frozen=True)
class ServiceConfig:
    database: str
    base_url: str = ""
    training_pki: str | None = None  # training: trust the training CA in this directory
    anchors: tuple[str, ...] = ()  # production: trust anchors, intermediates and CRLs (revocation required)
    intermediates: tuple[str, ...] = ()
    crls: tuple[str, ...] = ()
    role_table: str = str(ROLE_TABLE)
    threads: int = 0  # 0: handlers inline on the event loop (see app.service.http.asgi_app)
    limits: HttpLimits = field(default_factory=HttpLimits)  # request size, time and connection limits
    extra: dict[str, Any] = field(default_factory=dict)

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServiceConfig:
        doc = json.loads(os.environ[ENV])
        for key in ("anchors", "intermediates", "crls"):
            doc[key] = tuple(doc.get(key, ()))
        doc["limits"] = HttpLimits(**doc.get("limits", {}))
        return cls(**doc)


def trust_store(config: ServiceConfig) -> TrustStore:
    if config.training_pki:
        return TrainingCA.load_or_create(Path(config.training_pki)).trust_store()
    return TrustStore.from_pem_files([Path(p) for p in config.anchors], [Path(p) for p in config.intermediates],
                                     [Path(p) for p in config.crls], require_revocation=True)


@dataclass
class Service:
    store: Store
    audit: AuditWriter
    context: ServiceContext
    app: Any
    deliverer: Deliverer | None = None  # CP-IS notification outbox (a thread per process)

    def close(self) -> None:
        if self.deliverer is not None:
            self.deliverer.stop()
        self.context.cpis_writer.close()  # commits what is queued before the store goes
        self.audit.close()
        self.store.close()


def build_service(config: ServiceConfig, store: Store | None = None) -> Service:
    store = store or open_store(config.database)
    audit = AuditWriter(store)
    ctx = ServiceContext(store, AuthService(store, trust_store(config)), load_role_table(Path(config.role_table)),
                         audit, cpis_writer=CpisAccessWriter(store), base_url=config.base_url)
    holder: list[Service] = []
    app = build_asgi(ctx, threads=config.threads, on_shutdown=lambda: holder[0].close(),
                     max_body=config.limits.max_body)
    deliverer = Deliverer(store, config.base_url, lease_seconds=lease_seconds(config.extra)).start()
    service = Service(store, audit, ctx, app, deliverer)
    holder.append(service)
    return service


def create_app() -> Any:
    """ASGI factory for server worker processes (``SPINEDESK_SERVICE_CONFIG`` holds the JSON config)."""
    return build_service(ServiceConfig.from_env()).app
