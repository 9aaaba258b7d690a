"""Authorisation matrix over real HTTP, on both stores: every protected endpoint x every kind of caller.

Endpoints: GET /Patient/{id}, GET /Patient (search), PATCH /Patient/{id}, GET /Patient/{id}/RelatedPerson,
GET /audit/records, DELETE /auth/session. Callers: no/malformed/forged/stolen-hash credentials, expired, revoked,
deactivated-user and removed-role sessions, someone else's URID, an unknown or missing URID, and each seeded role
(clin-1, clerk-1, po-1, none-1). Every cell asserts the status, that a denial is an ACCESS_DENIED
OperationOutcome carrying no patient data, and what the audit trail holds for that request (a role denial of an
authenticated user is audited; an unauthenticated request is not). One live server per store kind.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.pki import TrainingCA
from app.protocol import PDS_BASE
from app.service.core.auth import token_hash
from app.service.store import RoleProfile, Store
from tests.support.service.live import Live, role_of, serve
from tests.support.service.served_routes import served

NHS = "9000000009"  # NHS's full reference record: every kind of personal data is present
SEARCH = {"family": "Smith", "gender": "female", "birthdate": "eq2010-10-22"}
ALL_ACTIVITIES = ("B0264", "B0825", "B0015", "B0016")


# --- one store and one live server per store kind, for the whole module -------------------------------------




@dataclass
class World:
    live: Live
    http: httpx.Client  # one pooled client: a new httpx client per request costs ~50 ms (CA bundle loading)
    tokens: dict[str, str] = field(default_factory=dict)  # logged in over HTTP once: alice, bob, carol

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
        """A session written straight into the store (expired ones, users without a card)."""
        token = secrets.token_urlsafe(32)
        self.store.create_session(token_hash(token), user, datetime.now(UTC) + expires_in, now=now,
                                  role_profile_id=urid or role_of(self.store, user))
        return token


@pytest.fixture(scope="module")
def world(shared_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    ca = TrainingCA.load_or_create(tmp_path_factory.mktemp("pki"))
    with serve(shared_store, ca, patients=60) as live, httpx.Client(timeout=30) as http:
        # dave: every activity, but deactivated; erin: a clinician whose role profile is withdrawn
        for user, urid in (("dave", "dave-1"), ("erin", "erin-1")):
            shared_store.add_user(user, user.title())
            shared_store.add_role_profile(RoleProfile(urid, user, "A81001", "Training Surgery", "S8000:G8000:R8000",
                                                      "S8000:G8000:R8000", ALL_ACTIVITIES))
        yield World(live, http)


# --- endpoints ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    name: str
    operation: str | None  # rbac operation (None: logout, which needs only a live token)
    audited_nhs: str | None  # the NHS number an audit record of a denial carries
    success: int

    def send(self, w: World, headers: dict[str, str]) -> httpx.Response:
        url, pds, http = w.live.url, w.live.pds, w.http
        if self.name == "read":
            return http.get(pds(f"/Patient/{NHS}"), headers=headers)
        if self.name == "search":
            return http.get(pds("/Patient"), params=SEARCH, headers=headers)
        if self.name == "related":
            return http.get(pds(f"/Patient/{NHS}/RelatedPerson"), headers=headers)
        if self.name == "audit":
            return http.get(f"{url}/audit/records", params={"patient": NHS}, headers=headers)
        if self.name == "logout":
            return http.delete(f"{url}/auth/session", headers=headers)
        # PATCH: a body and If-Match that would succeed, so a denial can only come from authorisation
        row = w.store.get_patient(NHS)
        gender = "male" if row.resource["gender"] == "female" else "female"
        return http.patch(pds(f"/Patient/{NHS}"),
                           json={"patches": [{"op": "replace", "path": "/gender", "value": gender}]},
                           headers={**headers, "If-Match": f'W/"{row.version}"',
                                    "Content-Type": "application/json-patch+json"})


ENDPOINTS = {e.name: e for e in (
    Endpoint("read", "pds.read", NHS, 200),
    Endpoint("search", "pds.search", None, 200),
    Endpoint("patch", "pds.patch", NHS, 200),
    Endpoint("related", "pds.related", NHS, 200),
    Endpoint("audit", "audit.query", None, 200),
    Endpoint("logout", None, None, 204),
)}
PATIENT_ENDPOINTS = ("read", "search", "patch", "related")
ROUTES = {  # endpoint -> the (method, path template) it calls
    "read": ("GET", f"{PDS_BASE}/Patient/{{id}}"), "search": ("GET", f"{PDS_BASE}/Patient"),
    "patch": ("PATCH", f"{PDS_BASE}/Patient/{{id}}"), "related": ("GET", f"{PDS_BASE}/Patient/{{id}}/RelatedPerson"),
    "audit": ("GET", "/audit/records"), "logout": ("DELETE", "/auth/session"),
}


# --- callers: (world, fresh) -> (Authorization header or None, NHSD-Session-URID or None) ---------------------


def _expired(w: World, fresh: bool) -> tuple[str | None, str | None]:
    past = datetime.now(UTC) - timedelta(hours=9)
    return f"Bearer {w.mint('alice', expires_in=timedelta(seconds=-1), now=past)}", "clin-1"


def _revoked(w: World, fresh: bool) -> tuple[str | None, str | None]:
    token = w.token("alice", fresh=True)
    out = w.http.delete(f"{w.live.url}/auth/session", headers={"Authorization": f"Bearer {token}"})
    assert out.status_code == 204, out.text
    return f"Bearer {token}", "clin-1"


def _deactivated(w: World, fresh: bool) -> tuple[str | None, str | None]:
    """A token issued while dave was active; deactivating him must kill it."""
    token = w.mint("dave")
    w.store.deactivate_user("dave")
    return f"Bearer {token}", "dave-1"


def _inactive_new_session(w: World, fresh: bool) -> tuple[str | None, str | None]:
    """A session row that appears after deactivation (a login racing it): the user's state must still win."""
    w.store.deactivate_user("dave")
    return f"Bearer {w.mint('dave')}", "dave-1"


def _role_withdrawn(w: World, fresh: bool) -> tuple[str | None, str | None]:
    token = w.mint("erin")
    if w.store.get_role_profile("erin-1") is not None:
        w.store.remove_role_profile("erin-1")
    return f"Bearer {token}", "erin-1"


def _role(user: str, urid: str) -> Callable[[World, bool], tuple[str | None, str | None]]:
    return lambda w, fresh: (f"Bearer {w.token(user, urid, fresh=fresh)}", urid)


Caller = Callable[[World, bool], tuple[str | None, str | None]]
CALLERS: dict[str, tuple[Caller, str]] = {  # name -> (make, kind); kind picks the expected row below
    "no-authorization": (lambda w, f: (None, "clin-1"), "unauthenticated"),
    "basic-scheme": (lambda w, f: ("Basic YWxpY2U6cGFzc3dvcmQ=", "clin-1"), "unauthenticated"),
    "token-without-scheme": (lambda w, f: (w.token("alice"), "clin-1"), "unauthenticated"),
    "bearer-without-token": (lambda w, f: ("Bearer", "clin-1"), "unauthenticated"),
    "oversized-token": (lambda w, f: ("Bearer " + "A" * 600, "clin-1"), "unauthenticated"),
    "forged-token": (lambda w, f: (f"Bearer {secrets.token_urlsafe(32)}", "clin-1"), "unauthenticated"),
    "stolen-token-hash": (lambda w, f: (f"Bearer {token_hash(w.token('alice'))}", "clin-1"), "unauthenticated"),
    "expired-session": (_expired, "expired"),
    "revoked-session": (_revoked, "unauthenticated"),
    "deactivated-user": (_deactivated, "unauthenticated"),
    "inactive-user-new-session": (_inactive_new_session, "dead-user-live-row"),
    "others-token-my-urid": (lambda w, f: (f"Bearer {w.token('bob', fresh=f)}", "clin-1"), "wrong-urid"),
    "unknown-urid": (lambda w, f: (f"Bearer {w.token('alice', fresh=f)}", "nobody-9"), "wrong-urid"),
    # alice's own other role with a token bound to clin-1: a role change needs a new login
    "own-other-role": (lambda w, f: (f"Bearer {w.token('alice', 'clin-1', fresh=f)}", "clerk-1"), "wrong-urid"),
    "missing-urid": (lambda w, f: (f"Bearer {w.token('alice', fresh=f)}", None), "wrong-urid"),
    "withdrawn-role": (_role_withdrawn, "wrong-urid"),
    "clin-1": (_role("alice", "clin-1"), "role"),
    "clerk-1": (_role("alice", "clerk-1"), "role"),
    "po-1": (_role("bob", "po-1"), "role"),
    "none-1": (_role("carol", "none-1"), "role"),
}
USERS = {"clin-1": "alice", "clerk-1": "alice", "po-1": "bob", "none-1": "carol"}
ALLOWED = {"clin-1": {"read", "search", "patch", "related"}, "clerk-1": {"read", "search", "related"},
           "po-1": {"audit"}, "none-1": set()}


def expected(endpoint: str, caller: str) -> int:
    kind = CALLERS[caller][1]
    if endpoint == "logout":
        # logout revokes whatever session row the token names: URIDs do not matter, and an expired or
        # inactive user's row that still exists is simply deleted (idempotent clean-up, nothing is disclosed)
        return 401 if kind == "unauthenticated" else 204
    if kind in ("unauthenticated", "expired", "dead-user-live-row"):
        return 401
    if kind == "wrong-urid":
        return 403
    return ENDPOINTS[endpoint].success if endpoint in ALLOWED[caller] else 403


MATRIX = [(e, c, expected(e, c)) for e in ENDPOINTS for c in CALLERS]


# --- checks -------------------------------------------------------------------------------------------------


def patient_values(resource: object) -> set[str]:
    """Every string in the patient's record that is about them (names, dates, address, telecom, codes of their
    practice and pharmacies...), leaving out coding boilerplate, item ids and periods; the NHS number is added
    separately."""
    found: set[str] = set()

    def walk(value: object, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k not in ("system", "url", "use", "code", "display", "version", "resourceType", "versionId"):
                    walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and len(value) >= 4 and key not in ("id", "start", "end"):
            found.add(value)

    walk(resource)
    return found


def assert_denied_body(response: httpx.Response, status: int, sensitive: set[str]) -> None:
    assert response.headers["content-type"].startswith("application/fhir+json"), response.headers
    body = response.json()
    assert body["resourceType"] == "OperationOutcome" and len(body["issue"]) == 1, body
    coding = body["issue"][0]["details"]["coding"][0]
    assert coding["code"] == "ACCESS_DENIED", body
    assert coding["display"] == ("Access Denied - Unauthorised" if status == 401 else "Access Denied - Forbidden")
    assert body["issue"][0]["code"] == "forbidden"
    leaked = sorted(v for v in sensitive | {NHS} if v in response.text)
    assert not leaked, f"denied body carries patient data {leaked}: {response.text}"


def audit_for(store: Store, request_id: str) -> list:
    return [r for r in store.query_audit(limit=100_000) if r.request_id == request_id.lower()]


def test_the_sensitive_values_are_the_record(world: World) -> None:
    values = patient_values(world.store.get_patient(NHS).resource)
    assert {"Smith", "Jane", "2010-10-22", "1 Trevelyan Square", "LS1 6AE", "01632960587", "jane.smith@example.com",
            "Y12345"} <= values, values


# --- the matrix ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("endpoint", "caller", "status"), MATRIX,
                         ids=[f"{e}-{c}-{s}" for e, c, s in MATRIX])
def test_matrix(world: World, endpoint: str, caller: str, status: int) -> None:
    ep = ENDPOINTS[endpoint]
    make, kind = CALLERS[caller]
    authorization, urid = make(world, endpoint == "logout")
    request_id = str(uuid.uuid4())
    headers = {"X-Request-ID": request_id}
    if authorization is not None:
        headers["Authorization"] = authorization
    if urid is not None:
        headers["NHSD-Session-URID"] = urid
    sensitive = patient_values(world.store.get_patient(NHS).resource)
    version_before = world.store.get_patient(NHS).version

    response = ep.send(world, headers)

    assert response.status_code == status, f"{endpoint} as {caller}: {response.status_code} {response.text}"
    assert response.status_code < 500
    records = audit_for(world.store, request_id)
    if status in (401, 403):
        assert_denied_body(response, status, sensitive)
        if endpoint == "patch":
            assert world.store.get_patient(NHS).version == version_before, "a denied PATCH changed the patient"
    if status == 401 or endpoint == "logout":
        assert records == [], "an unauthenticated request (or a logout) left an audit record"
    elif kind == "role":
        # an authenticated user in a real role: allowed or denied, the access attempt is on the record
        assert len(records) == 1, records
        record = records[0]
        assert (record.action, record.outcome) == (ep.operation, str(status))
        assert (record.user_id, record.role_profile_id) == (USERS[caller], caller)
        if status == 403:
            assert record.nhs_number == ep.audited_nhs and record.details == {"reason": "role lacks the activity"}
        elif endpoint != "search":
            assert record.nhs_number == NHS
    if status == 204:  # the token is dead afterwards, whoever's it was
        again = world.http.get(world.live.pds(f"/Patient/{NHS}"),
                          headers={**headers, "X-Request-ID": str(uuid.uuid4()), "NHSD-Session-URID": "clin-1"})
        assert again.status_code == 401, again.text
    if status == 200 and endpoint in PATIENT_ENDPOINTS:
        assert response.headers["content-type"].startswith("application/fhir+json")
        assert json.loads(response.text)["resourceType"] in ("Patient", "Bundle")


@pytest.mark.parametrize("endpoint", PATIENT_ENDPOINTS)
def test_urid_denials_of_an_authenticated_user_are_audited(world: World, endpoint: str) -> None:
    """Bob (privacy officer) presenting alice's clinical URID is an authenticated user probing for patient data:
    the attempt belongs on the audit trail like any other denial."""
    request_id = str(uuid.uuid4())
    headers = {"Authorization": f"Bearer {world.token('bob')}", "NHSD-Session-URID": "clin-1",
               "X-Request-ID": request_id}
    response = ENDPOINTS[endpoint].send(world, headers)
    assert response.status_code == 403
    records = audit_for(world.store, request_id)
    assert len(records) == 1 and records[0].user_id == "bob" and records[0].outcome == "403", records


OTHER_ORG = "B86001"  # another organisation (the seeded roles are all at A81001)


def _other_org_people(w: World) -> dict[str, str]:
    """A clinician and a privacy officer at OTHER_ORG: urid -> token."""
    for user, urid, acts in (("frank", "clin-b", ("B0264", "B0825")), ("gina", "po-b", ("B0015", "B0016"))):
        if w.store.get_user(user) is None:
            w.store.add_user(user, user.title())
        if w.store.get_role_profile(urid) is None:
            w.store.add_role_profile(RoleProfile(urid, user, OTHER_ORG, "Other Trust", "S8000:G8000:R8000",
                                                 "S8000:G8000:R8000", acts))
    return {"clin-b": w.mint("frank"), "po-b": w.mint("gina")}


def _audit_query(w: World, token: str, urid: str, **params: str) -> tuple[httpx.Response, str]:
    request_id = str(uuid.uuid4())
    r = w.http.get(f"{w.live.url}/audit/records", params=params, headers={
        "Authorization": f"Bearer {token}", "NHSD-Session-URID": urid, "X-Request-ID": request_id})
    return r, request_id


def test_privacy_officer_sees_only_their_organisations_audit_trail(world: World) -> None:
    """The audit query is scoped to the officer's organisation (the ODS code of their role profile): it returns the
    records of accesses made under roles of that organisation and no other, filtered (200) rather than refused,
    whatever the parameters (a patient, a user of another organisation, the whole trail). Each officer's query is
    itself on their organisation's record."""
    tokens = _other_org_people(world)
    read_b = world.http.get(world.live.pds(f"/Patient/{NHS}"), headers={
        "Authorization": f"Bearer {tokens['clin-b']}", "NHSD-Session-URID": "clin-b",
        "X-Request-ID": (b_request := str(uuid.uuid4()))})
    assert read_b.status_code == 200, read_b.text
    read_a = world.http.get(world.live.pds(f"/Patient/{NHS}"), headers={
        "Authorization": f"Bearer {world.token('alice')}", "NHSD-Session-URID": "clin-1",
        "X-Request-ID": (a_request := str(uuid.uuid4()))})
    assert read_a.status_code == 200, read_a.text
    a_token = world.token("bob")
    for params in ({"patient": NHS, "_count": "1000"}, {"_count": "1000"}, {"user": "frank", "_count": "1000"}):
        # officer at A81001: A81001's records only
        r, _ = _audit_query(world, a_token, "po-1", **params)
        assert r.status_code == 200, r.text
        found = r.json()["records"]
        assert {x["org"] for x in found} <= {"A81001"}, (params, {x["org"] for x in found})
        assert b_request not in {x["request_id"] for x in found}
        assert (a_request in {x["request_id"] for x in found}) == ("user" not in params)
        # officer at OTHER_ORG: theirs only
        r, _ = _audit_query(world, tokens["po-b"], "po-b", **params)
        assert r.status_code == 200, r.text
        found = r.json()["records"]
        assert {x["org"] for x in found} <= {OTHER_ORG}, (params, {x["org"] for x in found})
        assert a_request not in {x["request_id"] for x in found}
        assert b_request in {x["request_id"] for x in found}
    _, request_id = _audit_query(world, tokens["po-b"], "po-b", patient=NHS)
    (record,) = audit_for(world.store, request_id)
    assert (record.action, record.org, record.outcome) == ("audit.query", OTHER_ORG, "200")
    assert record.details["scope"] == {"org": OTHER_ORG}


def test_privacy_officer_role_without_an_organisation_sees_nothing(world: World) -> None:
    """Deny by default: a B0015 role with no organisation has no scope: 403, audited (not the whole trail, nor the
    records that carry no organisation)."""
    if world.store.get_user("hank") is None:
        world.store.add_user("hank", "Hank")
    if world.store.get_role_profile("po-none") is None:
        world.store.add_role_profile(RoleProfile("po-none", "hank", "", "", "S8002:G8003:R8014", "S8002:G8003:R8014",
                                                 ("B0015", "B0016")))
    r, request_id = _audit_query(world, world.mint("hank"), "po-none")
    assert r.status_code == 403 and r.json()["issue"][0]["details"]["coding"][0]["code"] == "ACCESS_DENIED", r.text
    assert "records" not in r.json()
    (record,) = audit_for(world.store, request_id)
    assert (record.action, record.outcome, record.details) == ("audit.query", "403",
                                                               {"reason": "role has no organisation"})


def test_request_id_rules_come_after_authentication(world: World) -> None:
    """No credentials: 401 whatever else is wrong (nothing about the request is validated or echoed first)."""
    for headers in ({}, {"X-Request-ID": "not-a-uuid"}):
        r = world.http.get(world.live.pds(f"/Patient/{NHS}"), headers=headers)
        assert r.status_code == 401 and r.json()["issue"][0]["details"]["coding"][0]["code"] == "ACCESS_DENIED"


def test_zz_audit_chain_verifies_after_the_matrix(world: World) -> None:
    """Runs last for each store kind: every record the matrix produced chains correctly."""
    verdict = world.store.verify_audit()
    assert verdict.ok, verdict
    assert verdict.checked >= sum(1 for e, c, s in MATRIX if CALLERS[c][1] == "role" and e != "logout")


def test_matrix_covers_every_protected_operation() -> None:
    """A new PDS or audit route (as the service's router serves it) or rbac operation must be added to this matrix
    (SCR, CP-IS and flags have matrices of their own; every route of every feature is probed by
    test_authz_routes.py)."""
    from app.service.core.rbac import load_role_table
    from app.service.runtime import ROLE_TABLE

    operations = {op for op in load_role_table(Path(ROLE_TABLE)).operations if op.startswith(("pds.", "audit."))}
    assert operations == {e.operation for e in ENDPOINTS.values() if e.operation}
    assert set(ROUTES) == set(ENDPOINTS)
    assert set(ROUTES.values()) == served(PDS_BASE) | served("/audit") | {("DELETE", "/auth/session")}
    assert ("DELETE", "/auth/session") in served()
