"""A real service on a loopback port (uvicorn in a thread) with seeded patients, users and card keys."""

from __future__ import annotations

import base64
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.pki import TrainingCA
from app.protocol import PDS_BASE, login_message
from app.service.core.limits import HttpLimits
from app.service.pds.seed import generate_patients
from app.service.runtime import ServiceConfig, build_service
from app.service.server import uvicorn_config
from app.service.store import RoleProfile, Store

ROLES = {  # urid -> (role code, activities)
    "clin-1": ("S8000:G8000:R8000", ("B0264", "B0825", "B0370")),
    "clerk-1": ("S8000:G8000:R8010", ("B0264",)),
    "po-1": ("S8002:G8003:R8014", ("B0015", "B0016")),
    "none-1": ("S8000:G8000:R8004", ()),
}


@dataclass
class Live:
    url: str
    ca: TrainingCA
    keys: dict[str, ec.EllipticCurvePrivateKey]
    certs: dict[str, bytes]
    store: Store
    service: Any = None  # the running Service (its audit writer, context)
    tokens: dict[str, str] = field(default_factory=dict)  # urid -> a live token bound to it (token_for)

    def login(self, user: str, urid: str | None = None) -> str:
        """A token from the real card login, bound to ``urid`` (default: the user's first role in ``SEED``)."""
        cert = base64.b64encode(self.certs[user]).decode()
        with httpx.Client(base_url=self.url) as c:
            answer = c.post("/auth/challenge", json={"certificate": cert}).json()
            sig = self.keys[user].sign(login_message(answer["nonce"], answer["audience"]), ec.ECDSA(hashes.SHA256()))
            r = c.post("/auth/session", json={"nonce": answer["nonce"], "signature": base64.b64encode(sig).decode(),
                                              "certificate": cert, "urid": urid or role_of(self.store, user)})
            r.raise_for_status()
            return r.json()["token"]

    def token_for(self, urid: str) -> str:
        """A live token of the role profile's user, bound to ``urid`` (a session serves one role); one per urid."""
        if urid not in self.tokens:
            profile = self.store.get_role_profile(urid)
            assert profile is not None, f"no role profile {urid}"
            self.tokens[urid] = self.login(profile.user_id, urid)
        return self.tokens[urid]

    def headers(self, token: str, urid: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "NHSD-Session-URID": urid, "X-Request-ID": str(uuid.uuid4()),
                **extra}

    def pds(self, path: str) -> str:
        return f"{self.url}{PDS_BASE}{path}"


SEED = (("alice", ("clin-1", "clerk-1")), ("bob", ("po-1",)), ("carol", ("none-1",)))


def role_of(store: Store, user: str) -> str:
    """The role a test session of ``user`` is bound to when the test names none: the first in ``SEED``, else the
    user's first role profile ('' for a user without one)."""
    seeded = dict(SEED).get(user)
    if seeded:
        return seeded[0]
    found = store.get_user(user)
    return found.role_profiles[0].id if found and found.role_profiles else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(store: Store, ca: TrainingCA, patients: int = 300) -> tuple[dict, dict]:
    for chunk in generate_patients(patients, seed=7):
        store.put_patients(chunk)
    keys, certs = {}, {}
    for user, urids in SEED:
        key = ec.generate_private_key(ec.SECP256R1())
        card = uuid.uuid4()
        cert = ca.issue_card_certificate(key.public_key(), name=user.title(), card_uuid=card, days=30)
        store.add_user(user, user.title(), card_uuids=[str(card)])
        for urid in urids:
            code, acts = ROLES[urid]
            store.add_role_profile(RoleProfile(urid, user, "A81001", "Training Surgery", code, code, acts))
        keys[user], certs[user] = key, cert.public_bytes(serialization.Encoding.DER)
    return keys, certs


# Production's limits, except that the tests' many logins from one address are not throttled (the login rate
# limit has its own tests: test_login_rate_limit.py).
LIVE_LIMITS = HttpLimits(auth_rate_per_minute=1e6, auth_burst=1_000_000)


@contextmanager
def running(app: object, limits: HttpLimits, port: int) -> Iterator[None]:
    """Serve ``app`` with uvicorn on 127.0.0.1:``port`` in a thread of this process until the block ends."""
    server = uvicorn.Server(uvicorn_config(app, limits, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def serve(store: Store, ca: TrainingCA, patients: int = 300, threads: int | None = None,
          limits: HttpLimits | None = None) -> Iterator[Live]:
    """A live server over ``store``, configured as production's; ``threads`` replaces the size of the pool that
    runs requests touching the database (0: on the event loop); ``limits`` replaces the production request
    limits."""
    keys, certs = seed(store, ca, patients)
    port = free_port()
    service_config = ServiceConfig(database="unused://", base_url=f"http://127.0.0.1:{port}",
                                   training_pki=str(ca.directory), limits=limits or LIVE_LIMITS,
                                   **({} if threads is None else {"threads": threads}))
    service = build_service(service_config, store=store)
    try:
        with running(service.app, service_config.limits, port):
            yield Live(f"http://127.0.0.1:{port}", ca, keys, certs, store, service)
    finally:
        if service.deliverer is not None:  # else it polls the store after the test has closed it
            service.deliverer.stop()
        if service.purger is not None:
            service.purger.stop()
        service.audit.close()
