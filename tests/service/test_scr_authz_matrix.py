"""The SCR authorisation matrix over real HTTP, on both stores.

1. Credentials x every SCR endpoint: no token, forged token, expired session, someone else's URID, an unknown
   or missing URID → 401/403 ACCESS_DENIED, nothing disclosed; unauthenticated requests leave no audit record,
   an authenticated user's wrong URID leaves exactly one.
2. Role activities x every SCR endpoint: deny by default from resources/rbac.json, each denial audited.
3. The viewing rules, GET /Bundle on a fresh patient per cell: activities (none / view / view + emergency) x
   relationship (registered practice / self-claimed / none) x permission to view (given / not asked / refused /
   expired) x emergency access (none / with a reason / without a reason) x consent (Ask / opted out "No").
   Each cell checks the emergency request's status and that it raised exactly one alert or none, the read's
   status, that a denial carries no clinical content, and that the read is audited exactly once.
4. Recording the consent preference (setPermissions), on a fresh patient per cell: activities (B0020 or not) x
   relationship (registered practice / self-claimed / none) x consent before (Ask / opted out): allowed only with
   B0020 and a relationship; otherwise 403 with the consent unchanged; audited exactly once; no alert.
"""

from __future__ import annotations

import itertools
import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.protocol import SCR_BASE
from app.service.core.auth import token_hash
from app.service.core.rbac import load_role_table
from app.service.runtime import ROLE_TABLE
from app.service.scr.seed import document_for
from app.service.scr.store import ScrGrant
from app.service.store import RoleProfile, SearchFilter, Store

from .scr_world import FHIR, FULL, ROLES, ScrWorld, alert_body, permission_body, scr_world
from .served_routes import served

TABLE = load_role_table(Path(ROLE_TABLE))


@pytest.fixture(scope="module")
def world(shared_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScrWorld]:
    with scr_world(shared_store, tmp_path_factory.mktemp("pki"), patients=400) as w:
        yield w


# --- endpoints ----------------------------------------------------------------------------------------------


ENDPOINTS = {  # name -> (rbac operation, success status for a role that passes RBAC, or None: depends on rules)
    "index": "scr.index", "read": "scr.read", "upload": "scr.upload", "permission": "scr.permission",
    "alert": "scr.alert", "alerts": "scr.alerts", "ack": "scr.alerts.ack"}
ROUTES = {  # endpoint -> the (method, path template) it calls
    "index": ("GET", f"{SCR_BASE}/DocumentReference"), "read": ("GET", f"{SCR_BASE}/Bundle"),
    "upload": ("POST", f"{SCR_BASE}/Bundle"), "permission": ("POST", f"{SCR_BASE}/$setPermission"),
    "alert": ("POST", f"{SCR_BASE}/AuditEvent"), "alerts": ("GET", f"{SCR_BASE}/alerts"),
    "ack": ("POST", f"{SCR_BASE}/alerts/{{id}}/$acknowledge")}


def send(w: ScrWorld, endpoint: str, headers: dict[str, str]) -> httpx.Response:
    nhs_param = f"https://fhir.nhs.uk/Id/nhs-number|{FULL}"
    if endpoint == "index":
        return w.http.get(f"{w.base}/DocumentReference", params={"patient": nhs_param}, headers=headers)
    if endpoint == "read":
        return w.http.get(f"{w.base}/Bundle", params={"composition.identifier": w.latest(FULL),
                                                      "composition.subject:Patient.identifier": nhs_param},
                          headers=headers)
    if endpoint == "alerts":
        return w.http.get(f"{w.base}/alerts", headers=headers)
    body, path = {
        "upload": (w.store.scr_record(FULL).latest.bundle, "/Bundle"),
        "permission": (permission_body(FULL, "Yes"), "/$setPermission"),
        "alert": (alert_body(FULL, 1, 6, None), "/AuditEvent"),
        "ack": (None, f"/alerts/{uuid.uuid4()}/$acknowledge"),
    }[endpoint]
    return w.http.post(f"{w.base}{path}", content=json.dumps(body).encode() if body else b"",
                       headers={**headers, "Content-Type": FHIR})


def assert_denied(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome" and "entry" not in body
    issue = body["issue"][0]
    assert issue["code"] == "forbidden" and issue["details"]["coding"][0]["code"] == "ACCESS_DENIED"
    assert issue["details"]["text"]


# --- 1. credentials -----------------------------------------------------------------------------------------


def _headers(w: ScrWorld, caller: str) -> tuple[dict[str, str], int, bool]:
    """(headers, expected status, audited?) for a kind of caller."""
    gp = w.headers("scr-gp")
    if caller == "no-token":
        return {"NHSD-Session-URID": "scr-gp", "X-Request-ID": gp["X-Request-ID"]}, 401, False
    if caller == "forged-token":
        return {**gp, "Authorization": f"Bearer {secrets.token_urlsafe(32)}"}, 401, False
    if caller == "expired-session":
        token = secrets.token_urlsafe(32)
        w.store.create_session(token_hash(token), "gp", datetime.now(UTC) - timedelta(seconds=1),
                               now=datetime.now(UTC) - timedelta(hours=9))
        return {**gp, "Authorization": f"Bearer {token}"}, 401, False
    if caller == "someone-elses-urid":
        return {**gp, "NHSD-Session-URID": "scr-ed"}, 403, True
    if caller == "unknown-urid":
        return {**gp, "NHSD-Session-URID": "nobody-1"}, 403, True
    return {k: v for k, v in gp.items() if k != "NHSD-Session-URID"}, 403, True


CALLERS = ("no-token", "forged-token", "expired-session", "someone-elses-urid", "unknown-urid", "missing-urid")


@pytest.mark.parametrize(("endpoint", "caller"), list(itertools.product(ENDPOINTS, CALLERS)))
def test_credentials(world: ScrWorld, endpoint: str, caller: str) -> None:
    headers, status, audited = _headers(world, caller)
    response = send(world, endpoint, headers)
    assert_denied(response, status)
    assert FULL not in response.text
    assert len(world.audit(headers["X-Request-ID"])) == (1 if audited else 0)


# --- 2. role activities -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("endpoint", "urid"), list(itertools.product(ENDPOINTS, ROLES)))
def test_role_activities(world: ScrWorld, endpoint: str, urid: str) -> None:
    headers = world.headers(urid)
    allowed = TABLE.allowed(ENDPOINTS[endpoint], ROLES[urid][2])
    response = send(world, endpoint, headers)
    records = world.audit(headers["X-Request-ID"])
    assert len(records) == 1 and records[0].action == ENDPOINTS[endpoint], records
    assert response.status_code < 500, response.text
    if allowed:
        assert records[0].details.get("reason") != "role lacks the activity"
    else:
        assert_denied(response, 403)
        assert records[0].details == {"reason": "role lacks the activity"}


def test_matrix_covers_every_scr_operation() -> None:
    assert {op for op in TABLE.operations if op.startswith("scr.")} == set(ENDPOINTS.values())
    assert set(ROUTES) == set(ENDPOINTS)
    assert set(ROUTES.values()) == served(SCR_BASE), "an SCR route the router serves is not in this matrix"


# --- 3. the viewing rules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    activities: str  # none | view | emergency
    relationship: str  # registered | self-claimed | none
    permission: str  # given | none | refused | expired
    emergency: str  # none | with-reason | without-reason
    consent: str  # Ask | No

    @property
    def acts(self) -> tuple[str, ...]:
        return {"none": ("B0264",), "view": ("B0370",), "emergency": ("B0370", "B0168")}[self.activities]

    def expected_emergency(self) -> int | None:
        if self.emergency == "none":
            return None
        if self.activities == "none":
            return 403  # RBAC
        if self.emergency == "without-reason":
            return 400
        if self.activities != "emergency" or self.consent == "No":
            return 403
        return 201

    def expected_read(self) -> int:
        if self.activities == "none" or self.consent == "No":
            return 403
        emergency = self.expected_emergency() == 201
        if self.relationship == "none" and not emergency:  # an emergency self-claim (1/4) gives a relationship
            return 403
        if self.permission == "given":
            return 200
        if self.permission == "refused":
            return 403
        return 200 if emergency else 403


CELLS = [Cell(*c) for c in itertools.product(("none", "view", "emergency"), ("registered", "self-claimed", "none"),
                                              ("given", "none", "refused", "expired"),
                                              ("none", "with-reason", "without-reason"), ("Ask", "No"))]
_used: dict[int, set[str]] = {}  # per store: each cell gets a patient nobody else touched


def _patient(w: ScrWorld, consent: str) -> tuple[str, str]:
    rows = w.store.search(SearchFilter(birth_date_from=datetime(1900, 1, 1).date(), limit=1000))
    used = _used.setdefault(id(w.store), set())
    for row in rows:
        if row.nhs_number in used or row.nhs_number.startswith("90000000") or not row.gp_ods or \
                w.store.scr_record(row.nhs_number) is not None:  # untouched patients only
            continue
        used.add(row.nhs_number)
        if consent == "No":
            w.store.set_scr_consent(row.nhs_number, "No", by="matrix", now=datetime.now(UTC))
        else:
            w.store.put_scr_seed([(row.nhs_number, "Ask")], [document_for(row, 5)], now=datetime.now(UTC))
        return row.nhs_number, row.gp_ods
    raise AssertionError("ran out of seeded patients")


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: "-".join(
    (c.activities, c.relationship, f"ptv:{c.permission}", f"em:{c.emergency}", f"consent:{c.consent}")))
def test_viewing_rules(world: ScrWorld, cell: Cell) -> None:
    nhs, gp = _patient(world, cell.consent)
    user, urid = f"m-{nhs}", f"m-{nhs}-r"
    world.store.add_user(user, "Matrix")
    world.store.add_role_profile(RoleProfile(urid, user, gp if cell.relationship == "registered" else "RXX01",
                                             "Org", "S8000:G8000:R8000", "Clinical", cell.acts))
    world.users[urid] = user
    now = datetime.now(UTC)
    grants = []
    if cell.relationship == "self-claimed":
        grants.append(ScrGrant(user, urid, nhs, "lr", True, "", "setup", now, now + timedelta(hours=1)))
    if cell.permission != "none":
        expires = now - timedelta(seconds=1) if cell.permission == "expired" else now + timedelta(hours=1)
        grants.append(ScrGrant(user, urid, nhs, "ptv", cell.permission != "refused", "", "setup",
                               now - timedelta(hours=13), expires))
    world.store.put_scr_grants(grants)

    expected_emergency = cell.expected_emergency()
    if expected_emergency is not None:
        kind = (1, 4) if cell.relationship == "none" else (2, 5)
        reason = "Collapsed in the waiting room" if cell.emergency == "with-reason" else None
        response = world.alert(urid, nhs, *kind, reason)
        assert response.status_code == expected_emergency, response.text
    raised = [a for a in world.store.scr_alerts(org="RXX01", types=(1, 2), limit=100_000) if a.nhs_number == nhs]
    raised += [a for a in world.store.scr_alerts(org=gp, types=(1, 2), limit=100_000) if a.nhs_number == nhs]
    assert len(raised) == (1 if expected_emergency == 201 else 0)

    rid = str(uuid.uuid4())
    response = world.read(urid, nhs, request_id=rid)
    assert response.status_code == cell.expected_read(), response.text
    body = response.json()
    if response.status_code == 200:
        assert body["total"] > 0 and body["entry"][0]["resource"]["resourceType"] == "Composition"
    else:
        assert_denied(response, 403)
        assert "Composition" not in response.text and "section" not in response.text
    records = world.audit(rid)
    assert [(r.action, r.outcome, r.nhs_number) for r in records] == [("scr.read", str(response.status_code), nhs)]


# --- 4. recording the consent preference ---------------------------------------------------------------------


CONSENT_CELLS = list(itertools.product(("consent", "view-only"), ("registered", "self-claimed", "none"),
                                       ("Ask", "No")))


@pytest.mark.parametrize(("activities", "relationship", "before"), CONSENT_CELLS,
                         ids=["-".join(c) for c in CONSENT_CELLS])
def test_consent_rules(world: ScrWorld, activities: str, relationship: str, before: str) -> None:
    """setPermissions (opting out, or back in) needs B0020 and a legitimate relationship — the registered practice
    or one self-claimed in the episode; otherwise 403 and the consent is unchanged. Audited once either way; the
    change itself raises no alert (a self-claim alerted when it was made)."""
    nhs, gp = _patient(world, before)
    user, urid = f"c-{nhs}", f"c-{nhs}-r"
    world.store.add_user(user, "Consent")
    acts = ("B0370", "B0020") if activities == "consent" else ("B0370",)
    world.store.add_role_profile(RoleProfile(urid, user, gp if relationship == "registered" else "RXX01", "Org",
                                             "S8000:G8000:R8000", "Clinical", acts))
    world.users[urid] = user
    if relationship == "self-claimed":
        now = datetime.now(UTC)
        world.store.put_scr_grants([ScrGrant(user, urid, nhs, "lr", True, "", "setup", now, now + timedelta(hours=1),
                                             alert_id="A-SETUP")])
    code = "Ask" if before == "No" else "No"
    rid = str(uuid.uuid4())
    response = world.permission(urid, nhs, code, name="setPermissions", request_id=rid)
    allowed = activities == "consent" and relationship != "none"
    assert response.status_code == (201 if allowed else 403), response.text
    assert world.store.scr_record(nhs).consent == (code if allowed else before)
    (record,) = world.audit(rid)
    assert (record.action, record.outcome, record.nhs_number) == ("scr.permission", str(response.status_code), nhs)
    if allowed:
        expected = {"registered": "registered-practice", "self-claimed": "self-claimed"}[relationship]
        assert record.details["relationship"] == expected
        assert record.details.get("alert_id") == ("A-SETUP" if relationship == "self-claimed" else None)
    else:
        assert_denied(response, 403)
        assert record.details["denied"] == ("activity" if activities == "view-only" else "no-relationship")
    raised = world.store.scr_alerts(org="RXX01", types=(1, 2), limit=100_000) + \
        world.store.scr_alerts(org=gp, types=(1, 2), limit=100_000)
    assert [a for a in raised if a.nhs_number == nhs] == []


def test_zz_audit_chain_verifies_after_the_matrix(world: ScrWorld) -> None:
    assert world.store.verify_audit().ok
