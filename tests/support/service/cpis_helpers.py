"""Helpers for the CP-IS tests: a live service with CP-IS roles, authorities and plans, and a receiving webhook."""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from app.pki import TrainingCA
from app.protocol import CPIS_BASE
from app.service.core.auth import token_hash
from app.service.cpis import rules
from app.service.cpis import seed as seed_cpis
from app.service.cpis.store import CpisPlan
from app.service.runtime import ServiceConfig, build_service
from app.service.store import RoleProfile, SearchFilter, Store
from tests.support.service.live import free_port, running, seed

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
# urid -> (user, role code, activities); alice/bob/carol (clin-1, clerk-1, po-1, none-1) come from live.seed
CPIS_ROLES = {
    "unsched-1": ("una", "S8000:G8000:R8001", ("B0264", "B0107")),
    "sched-1": ("sam", "S8000:G8000:R8008", ("B0264", "B0170")),
    "both-1": ("bea", "S8000:G8000:R8000", ("B0264", "B0107", "B0170")),
    "po-cpis-1": ("pat", "S8002:G8003:R8014", ("B0015",)),  # at local authority TLA01 (below)
    "po-cpis-2": ("pia", "S8002:G8003:R8014", ("B0015",)),  # at local authority TLA02
    "po-hosp-1": ("hal", "S8002:G8003:R8014", ("B0015",)),  # the hospital's privacy officer
}
ROLE_ORGS = {  # urid -> (ODS code, name) where not the hospital (RXX01)
    "po-cpis-1": ("TLA01", "Northbridge Metropolitan Borough Council"),
    "po-cpis-2": ("TLA02", "Eastmere County Council"),
}


@dataclass
class CpisWorld:
    url: str
    store: Store
    tokens: dict[str, str]  # urid -> bearer token of its user
    children: dict[str, str] = field(default_factory=dict)  # label -> NHS number with that kind of plan
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    def headers(self, urid: str, *, unscheduled: str | None = None, request_id: str | None = None,
                ) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.tokens[urid]}", "NHSD-Session-URID": urid,
             "X-Request-ID": request_id or str(uuid.uuid4())}
        if unscheduled is not None:
            h[rules.UNSCHEDULED_HEADER] = unscheduled
        return h

    def care_team(self, nhs: str, urid: str, **kw: str | None) -> httpx.Response:
        return self.http.get(f"{self.url}{CPIS_BASE}/CareTeam", params={"patient:identifier": f"{NHS_SYSTEM}|{nhs}"},
                             headers=self.headers(urid, **kw))

    def audit_events(self, nhs: str, urid: str) -> httpx.Response:
        return self.http.get(f"{self.url}{CPIS_BASE}/AuditEvent",
                             params={"patient:identifier": f"{NHS_SYSTEM}|{nhs}"}, headers=self.headers(urid))


def session(store: Store, user: str, urid: str) -> str:
    """A token of ``user`` bound to the role ``urid`` (a session serves one role)."""
    token = secrets.token_urlsafe(32)
    store.create_session(token_hash(token), user, datetime.now(UTC) + timedelta(hours=2), role_profile_id=urid)
    return token


def add_cpis_people(store: Store) -> dict[str, str]:
    """Users and roles for CP-IS; returns urid -> token (alice's clin-1/clerk-1, bob's po-1, carol's none-1 too)."""
    tokens: dict[str, str] = {}
    for urid, (user, code, acts) in CPIS_ROLES.items():
        if store.get_user(user) is None:
            store.add_user(user, user.title())
        org, org_name = ROLE_ORGS.get(urid, ("RXX01", "Training Hospital"))
        store.add_role_profile(RoleProfile(urid, user, org, org_name, code, code, acts))
        tokens[urid] = session(store, user, urid)
    for urid, user in (("clin-1", "alice"), ("clerk-1", "alice"), ("po-1", "bob"), ("none-1", "carol")):
        tokens[urid] = session(store, user, urid)
    return tokens


def add_plans(store: Store) -> dict[str, str]:
    """Plans on some seeded patients: label -> NHS number."""
    seed_cpis.seed_local_authorities(store)
    rows = [r for r in store.search(SearchFilter(birth_date_from=date(1900, 1, 1), birth_date_to=date(2100, 1, 1),
                                                 limit=500))
            if not r.deceased and not r.restricted]
    rows.sort(key=lambda r: r.nhs_number)
    today = date.today()
    labels = ("cpp", "lac", "ucpp", "two-las", "ended-recently", "ended-long-ago", "none")
    chosen = dict(zip(labels, (r.nhs_number for r in rows), strict=False))
    store.put_cpis_plans([
        CpisPlan("t-cpp", chosen["cpp"], "CPP", "TLA01", today - timedelta(days=100)),
        CpisPlan("t-lac", chosen["lac"], "LAC", "TLA02", today - timedelta(days=400)),
        CpisPlan("t-ucpp", chosen["ucpp"], "UCPP", "TLA03", today - timedelta(days=20)),
        CpisPlan("t-two-a", chosen["two-las"], "CPP", "TLA04", today - timedelta(days=50)),
        CpisPlan("t-two-b", chosen["two-las"], "LAC", "TLA05", today - timedelta(days=30)),
        CpisPlan("t-recent", chosen["ended-recently"], "CPP", "TLA01", today - timedelta(days=600),
                 today - timedelta(days=60)),
        CpisPlan("t-old", chosen["ended-long-ago"], "CPP", "TLA01", today - timedelta(days=1200),
                 today - timedelta(days=500)),
    ])
    return chosen


@contextmanager
def serve_cpis(store: Store, ca: TrainingCA, *, patients: int = 60) -> Iterator[CpisWorld]:
    """A real service on loopback (the production app, its CP-IS deliverer running) over ``store``."""
    seed(store, ca, patients)
    tokens = add_cpis_people(store)
    children = add_plans(store)
    port = free_port()
    service_config = ServiceConfig(database="unused://", base_url=f"http://127.0.0.1:{port}",
                                   training_pki=str(ca.directory))
    service = build_service(service_config, store=store)
    try:
        with running(service.app, service_config.limits, port):
            world = CpisWorld(f"http://127.0.0.1:{port}", store, tokens, children)
            try:
                yield world
            finally:  # the deliverer stops while the server still answers
                world.http.close()
                if service.deliverer is not None:
                    service.deliverer.stop()
                if service.purger is not None:
                    service.purger.stop()
    finally:
        service.audit.close()


def wait_for(check: Callable[[], bool], timeout: float = 20.0, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return check()


class Receiver:
    """A real webhook on loopback, like a local authority's: verifies nothing, records every POST, and stores
    each Idempotency-Key once (the receiver's side of exactly-once). ``accepting`` False answers 503;
    ``hold`` (an Event) makes it stall before answering until released; ``arrived`` is set on each POST."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []
        self.stored: dict[str, dict] = {}
        self.accepting = True
        self.hold: threading.Event | None = None
        self.arrived = threading.Event()
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                key = self.headers.get(rules.IDEMPOTENCY_HEADER, "")
                with owner.lock:
                    owner.posts.append((key, json.loads(body)))
                owner.arrived.set()
                if owner.hold is not None:
                    owner.hold.wait(30)
                if not owner.accepting:
                    self.send_response(503)
                    self.end_headers()
                    return
                with owner.lock:
                    owner.stored.setdefault(key, json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/asn"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()
