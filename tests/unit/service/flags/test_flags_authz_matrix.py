"""Authorisation matrix for the flags endpoints over real HTTP, on both stores: every endpoint x every caller.

Endpoints: search, read, history, read-version, create, update, remove. Callers: no / malformed / forged /
stolen-hash credentials, expired, revoked, deactivated-user and withdrawn-role sessions, someone else's URID, an
unknown or missing URID, and roles: clin-1 (B0264 B0825 B0370: sees content, may not write), nurse-1 (B0264 B0360:
sees content, may write), clerk-1 (B0264) and admin-1 (R8008: B0264 B0825 B0170): see only that a flag exists;
po-1 (privacy officer) and none-1: no record access. Each cell checks the status, that a denial is an
ACCESS_DENIED OperationOutcome carrying nothing of the flag, that a denied write changed nothing, existence vs
content on every successful read, and the audit trail for that request.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.pki import TrainingCA
from app.protocol import FLAGS_BASE
from app.service.core.auth import token_hash
from app.service.flags import fhir
from app.service.flags import seed as seed_flags
from app.service.flags.codes import load_codes
from app.service.pds.seed import generate_patients
from app.service.store import PatientRow, RoleProfile, Store
from tests.support.service.flags_helpers import flag_body, removal
from tests.support.service.live import Live, role_of, serve
from tests.support.service.served_routes import served

EXTRA = {"nurse-1": ("S8000:G8000:R8001", ("B0264", "B0360")),
         "admin-1": ("S8000:G8000:R8008", ("B0264", "B0825", "B0170"))}
FHIR_JSON = "application/fhir+json"


@dataclass
class World:
    live: Live
    http: httpx.Client
    patients: list[PatientRow]
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def store(self) -> Store:
        return self.live.store

    def token(self, user: str, urid: str | None = None, *, fresh: bool = False) -> str:
        """A live token of ``user`` bound to ``urid`` (default: their first role) from the real card login;
        ``fresh`` for requests that revoke it."""
        key = f"{user}/{urid or ''}"
        if fresh or key not in self.tokens:
            token = self.live.login(user, urid)
            if fresh:
                return token
            self.tokens[key] = token
        return self.tokens[key]

    def mint(self, user: str, urid: str | None = None, *, expires_in: timedelta = timedelta(hours=1),
             now: datetime | None = None) -> str:
        token = secrets.token_urlsafe(32)
        self.store.create_session(token_hash(token), user, datetime.now(UTC) + expires_in, now=now,
                                  role_profile_id=urid or role_of(self.store, user))
        return token

    def flagged_patient(self) -> tuple[str, str]:
        """A patient no other cell uses, with a fresh version-1 flag: (NHS number, flag id)."""
        patient = self.patients.pop()
        row = seed_flags.flag_for(patient, 99, load_codes())
        self.store.put_flags([row])
        return patient.nhs_number, row.id


@pytest.fixture(scope="module")
def world(shared_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    ca = TrainingCA.load_or_create(tmp_path_factory.mktemp("pki"))
    with serve(shared_store, ca, patients=300) as live, httpx.Client(timeout=30) as http:
        for urid, (code, acts) in EXTRA.items():
            shared_store.add_role_profile(RoleProfile(urid, "alice", "A81001", "Training Surgery", code, code, acts))
        for user, urid in (("dave", "dave-1"), ("erin", "erin-1")):
            shared_store.add_user(user, user.title())
            shared_store.add_role_profile(RoleProfile(urid, user, "A81001", "Training Surgery", "S8000:G8000:R8001",
                                                      "S8000:G8000:R8001", ("B0264", "B0360")))
        rows = next(generate_patients(300, seed=7))
        yield World(live, http, [r for r in rows if not (r.superseded_by or r.invalidated or r.nhs_number in
                                                         seed_flags.ALWAYS)])


# --- endpoints ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    name: str
    operation: str
    success: int
    writes: bool = False

    def send(self, w: World, headers: dict[str, str], nhs: str, flag_id: str) -> httpx.Response:
        url = f"{w.live.url}{FLAGS_BASE}"
        if self.name == "search":
            return w.http.get(f"{url}/Flag", params={"patient": nhs}, headers=headers)
        if self.name == "read":
            return w.http.get(f"{url}/Flag/{flag_id}", headers=headers)
        if self.name == "history":
            return w.http.get(f"{url}/Flag/{flag_id}/_history", headers=headers)
        if self.name == "vread":
            return w.http.get(f"{url}/Flag/{flag_id}/_history/1", headers=headers)
        headers = {**headers, "Content-Type": FHIR_JSON, "If-Match": 'W/"1"'}
        if self.name == "create":  # a patient without a flag: a body that would succeed
            return w.http.post(f"{url}/Flag", json=flag_body(nhs), headers=headers)
        if self.name == "update":
            return w.http.put(f"{url}/Flag/{flag_id}", json=flag_body(nhs, notes="changed"), headers=headers)
        return w.http.post(f"{url}/$removerarecord", json=removal(nhs), headers=headers)


ENDPOINTS = {e.name: e for e in (
    Endpoint("search", "flags.search", 200), Endpoint("read", "flags.read", 200),
    Endpoint("history", "flags.read", 200), Endpoint("vread", "flags.read", 200),
    Endpoint("create", "flags.create", 201, True), Endpoint("update", "flags.update", 200, True),
    Endpoint("remove", "flags.remove", 200, True),
)}
READS = ("search", "read", "history", "vread")
ROUTES = {  # endpoint -> the (method, path template) it calls
    "search": ("GET", f"{FLAGS_BASE}/Flag"), "read": ("GET", f"{FLAGS_BASE}/Flag/{{flagID}}"),
    "history": ("GET", f"{FLAGS_BASE}/Flag/{{flagID}}/_history"),
    "vread": ("GET", f"{FLAGS_BASE}/Flag/{{flagID}}/_history/{{vid}}"), "create": ("POST", f"{FLAGS_BASE}/Flag"),
    "update": ("PUT", f"{FLAGS_BASE}/Flag/{{flagID}}"), "remove": ("POST", f"{FLAGS_BASE}/$removerarecord"),
}


# --- callers ------------------------------------------------------------------------------------------------

Caller = Callable[[World], tuple[str | None, str | None]]


def _expired(w: World) -> tuple[str | None, str | None]:
    past = datetime.now(UTC) - timedelta(hours=9)
    return f"Bearer {w.mint('alice', expires_in=timedelta(seconds=-1), now=past)}", "nurse-1"


def _revoked(w: World) -> tuple[str | None, str | None]:
    token = w.token("alice", fresh=True)
    assert w.http.delete(f"{w.live.url}/auth/session", headers={"Authorization": f"Bearer {token}"}).status_code == 204
    return f"Bearer {token}", "nurse-1"


def _deactivated(w: World) -> tuple[str | None, str | None]:
    token = w.mint("dave")
    w.store.deactivate_user("dave")
    return f"Bearer {token}", "dave-1"


def _withdrawn(w: World) -> tuple[str | None, str | None]:
    token = w.mint("erin")
    if w.store.get_role_profile("erin-1") is not None:
        w.store.remove_role_profile("erin-1")
    return f"Bearer {token}", "erin-1"


def _role(user: str, urid: str) -> Caller:
    return lambda w: (f"Bearer {w.token(user, urid)}", urid)


CALLERS: dict[str, tuple[Caller, str]] = {
    "no-authorization": (lambda w: (None, "nurse-1"), "unauthenticated"),
    "basic-scheme": (lambda w: ("Basic YWxpY2U6cGFzc3dvcmQ=", "nurse-1"), "unauthenticated"),
    "forged-token": (lambda w: (f"Bearer {secrets.token_urlsafe(32)}", "nurse-1"), "unauthenticated"),
    "stolen-token-hash": (lambda w: (f"Bearer {token_hash(w.token('alice'))}", "nurse-1"), "unauthenticated"),
    "expired-session": (_expired, "unauthenticated"),
    "revoked-session": (_revoked, "unauthenticated"),
    "deactivated-user": (_deactivated, "unauthenticated"),
    "others-token-my-urid": (lambda w: (f"Bearer {w.token('bob')}", "nurse-1"), "wrong-urid"),
    "unknown-urid": (lambda w: (f"Bearer {w.token('alice')}", "nobody-9"), "wrong-urid"),
    "own-other-role": (lambda w: (f"Bearer {w.token('alice', 'clin-1')}", "nurse-1"), "wrong-urid"),
    "missing-urid": (lambda w: (f"Bearer {w.token('alice')}", None), "wrong-urid"),
    "withdrawn-role": (_withdrawn, "wrong-urid"),
    **{urid: (_role(user, urid), "role") for urid, user in (
        ("clin-1", "alice"), ("nurse-1", "alice"), ("clerk-1", "alice"), ("admin-1", "alice"), ("po-1", "bob"),
        ("none-1", "carol"))},
}
USERS = {"clin-1": "alice", "nurse-1": "alice", "clerk-1": "alice", "admin-1": "alice", "po-1": "bob",
         "none-1": "carol"}
ALLOWED = {"clin-1": set(READS), "nurse-1": set(ENDPOINTS), "clerk-1": set(READS), "admin-1": set(READS),
           "po-1": set(), "none-1": set()}
CONTENT = {"clin-1", "nurse-1"}  # roles that see what a flag says; the other readers see only that it exists


def expected(endpoint: str, caller: str) -> int:
    kind = CALLERS[caller][1]
    if kind == "unauthenticated":
        return 401
    if kind == "wrong-urid":
        return 403
    return ENDPOINTS[endpoint].success if endpoint in ALLOWED[caller] else 403


MATRIX = [(e, c, expected(e, c)) for e in ENDPOINTS for c in CALLERS]


def _flags_in(body: Any) -> list[dict[str, Any]]:
    if body.get("resourceType") == "Flag":
        return [body]
    return [e["resource"] for e in body.get("entry", [])]


@pytest.mark.parametrize(("endpoint", "caller", "status"), MATRIX, ids=[f"{e}-{c}-{s}" for e, c, s in MATRIX])
def test_matrix(world: World, endpoint: str, caller: str, status: int) -> None:
    ep = ENDPOINTS[endpoint]
    nhs, flag_id = world.flagged_patient()
    if endpoint == "create":  # creating needs a patient without a flag
        nhs, flag_id = world.patients.pop().nhs_number, flag_id
    before = world.store.flags_for_patient(nhs)
    authorization, urid = CALLERS[caller][0](world)
    request_id = str(uuid.uuid4())
    headers = {"X-Request-ID": request_id}
    if authorization is not None:
        headers["Authorization"] = authorization
    if urid is not None:
        headers["NHSD-Session-URID"] = urid

    response = ep.send(world, headers, nhs, flag_id)

    assert response.status_code == status, f"{endpoint} as {caller}: {response.status_code} {response.text}"
    records = [r for r in world.store.query_audit(limit=100_000) if r.request_id == request_id]
    if status in (401, 403):
        body = response.json()
        assert body["resourceType"] == "OperationOutcome"
        assert body["issue"][0]["details"]["coding"][0]["code"] == "ACCESS_DENIED"
        assert flag_id not in response.text and nhs not in response.text and "Consent" not in response.text
        assert world.store.flags_for_patient(nhs) == before, "a denied request changed the patient's flags"
    if status == 401:
        assert records == [], "an unauthenticated request left an audit record"
    elif CALLERS[caller][1] == "role":
        assert len(records) == 1, records
        record = records[0]
        assert (record.action, record.outcome, record.user_id, record.role_profile_id) == (
            ep.operation, str(status), USERS[caller], caller)
        if status == 403:
            assert record.details == {"reason": "role lacks the activity"}
        else:
            assert record.nhs_number == nhs
    if status == 200 and endpoint in READS:
        flags = _flags_in(response.json())
        assert flags and all(f["id"] == flag_id for f in flags)
        for flag in flags:  # existence for every reader; content only for clinical roles
            assert fhir.is_withheld(flag) is (caller not in CONTENT), (caller, flag)
            assert any(c["resourceType"] == "Consent" for c in flag["contained"]) is (caller in CONTENT)
        assert records[0].details["content"] is (caller in CONTENT)
    if status in (200, 201) and ep.writes:
        after = world.store.flags_for_patient(nhs)
        assert after != before and after[0].resource["contained"][0]["agent"][0]["who"]["identifier"]["value"] \
            == "alice"


def test_matrix_covers_every_flags_operation() -> None:
    from app.service.app import openapi_document as document
    from app.service.core.rbac import load_role_table
    from app.service.runtime import ROLE_TABLE

    operations = {op for op in load_role_table(Path(ROLE_TABLE)).operations if op.startswith("flags.")}
    assert operations == {e.operation for e in ENDPOINTS.values()} | {"flags.content"}
    assert set(ROUTES) == set(ENDPOINTS)
    assert set(ROUTES.values()) == served(FLAGS_BASE), "a flags route the router serves is not in this matrix"
    paths = {p for p in document()["paths"] if p.startswith(FLAGS_BASE)}
    assert paths == {f"{FLAGS_BASE}{p}" for p in ("/Flag", "/Flag/{flagID}", "/Flag/{flagID}/_history",
                                                   "/Flag/{flagID}/_history/{vid}", "/$removerarecord")}


def test_zz_audit_chain_verifies_after_the_matrix(world: World) -> None:
    assert world.store.verify_audit().ok
