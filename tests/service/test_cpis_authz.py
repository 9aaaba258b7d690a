"""Authorisation matrix for the CP-IS endpoints over real HTTP, on both stores: B0107 vs B0170 vs neither, the
privacy officer's inbox listing (only the local authority's own: another authority's officer and a hospital's are
refused), and every kind of bad credential (none, forged, expired, wrong/unknown/missing
URID). Every cell checks the status, that a denial is an ACCESS_DENIED OperationOutcome carrying no CP-IS data,
and the audit trail (a role denial of an authenticated user is audited; an unauthenticated request is not)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.pki import TrainingCA
from app.protocol import CPIS_BASE
from app.service.core.auth import token_hash
from app.service.core.rbac import load_role_table
from app.service.cpis.rules import INBOX_PATH
from app.service.runtime import ROLE_TABLE
from app.service.store import Store

from .cpis_helpers import NHS_SYSTEM, CpisWorld, serve_cpis
from .served_routes import served


@pytest.fixture(scope="module")
def world(shared_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CpisWorld]:
    ca = TrainingCA.load_or_create(tmp_path_factory.mktemp("pki"))
    with serve_cpis(shared_store, ca) as w:
        yield w


ENDPOINTS = {  # name -> (operation, success status, sends)
    "careteam": "cpis.careteam",
    "auditevent": "cpis.auditevent",
    "inbox": "cpis.inbox",
}


ROUTES = {  # endpoint -> the (method, path template) it calls
    "careteam": ("GET", f"{CPIS_BASE}/CareTeam"), "auditevent": ("GET", f"{CPIS_BASE}/AuditEvent"),
    "inbox": ("GET", INBOX_PATH),
}
# a local authority's system delivers notifications to the inbox signed with its key, not with a user's token:
# test_cpis_http.py covers the signature; test_authz_routes.py that it answers 401 unsigned
SIGNED = {("POST", INBOX_PATH)}


def send(w: CpisWorld, endpoint: str, headers: dict[str, str]) -> httpx.Response:
    nhs = w.children["cpp"]
    if endpoint == "inbox":
        return w.http.get(f"{w.url}/cpis/local-authority/TLA01/notifications", headers=headers)
    path = "CareTeam" if endpoint == "careteam" else "AuditEvent"
    return w.http.get(f"{w.url}{CPIS_BASE}/{path}", params={"patient:identifier": f"{NHS_SYSTEM}|{nhs}"},
                      headers=headers)


def _expired(w: CpisWorld) -> tuple[str | None, str | None]:
    token = secrets.token_urlsafe(32)
    past = datetime.now(UTC) - timedelta(hours=9)
    w.store.create_session(token_hash(token), "una", datetime.now(UTC) - timedelta(seconds=1), now=past)
    return f"Bearer {token}", "unsched-1"


def _token(urid: str) -> Callable[[CpisWorld], tuple[str | None, str | None]]:
    return lambda w: (f"Bearer {w.tokens[urid]}", urid)


CALLERS: dict[str, tuple[Callable[[CpisWorld], tuple[str | None, str | None]], str]] = {
    "no-authorization": (lambda w: (None, "unsched-1"), "unauthenticated"),
    "forged-token": (lambda w: (f"Bearer {secrets.token_urlsafe(32)}", "unsched-1"), "unauthenticated"),
    "stolen-token-hash": (lambda w: (f"Bearer {token_hash(w.tokens['unsched-1'])}", "unsched-1"),
                          "unauthenticated"),
    "expired-session": (_expired, "unauthenticated"),
    "others-token-my-urid": (lambda w: (f"Bearer {w.tokens['sched-1']}", "unsched-1"), "wrong-urid"),
    "unknown-urid": (lambda w: (f"Bearer {w.tokens['unsched-1']}", "nobody-9"), "wrong-urid"),
    "missing-urid": (lambda w: (f"Bearer {w.tokens['unsched-1']}", None), "wrong-urid"),
    "b0107": (_token("unsched-1"), "role"),
    "b0170": (_token("sched-1"), "role"),
    "b0107+b0170": (_token("both-1"), "role"),
    "neither-b0264": (_token("clerk-1"), "role"),
    "no-activities": (_token("none-1"), "role"),
    "privacy-officer": (_token("po-cpis-1"), "role"),  # at TLA01, whose inbox is listed
    "privacy-officer-other-la": (_token("po-cpis-2"), "role"),  # at TLA02
    "privacy-officer-hospital": (_token("po-hosp-1"), "role"),  # at RXX01
}
USERS = {"b0107": "una", "b0170": "sam", "b0107+b0170": "bea", "neither-b0264": "alice", "no-activities": "carol",
         "privacy-officer": "pat", "privacy-officer-other-la": "pia", "privacy-officer-hospital": "hal"}
ALLOWED = {"b0107": {"careteam", "auditevent"}, "b0170": {"careteam", "auditevent"},
           "b0107+b0170": {"careteam", "auditevent"}, "neither-b0264": set(), "no-activities": set(),
           "privacy-officer": {"inbox"}, "privacy-officer-other-la": set(), "privacy-officer-hospital": set()}
WRONG_ORG = {("inbox", "privacy-officer-other-la"), ("inbox", "privacy-officer-hospital")}  # B0015, not TLA01


def expected(endpoint: str, caller: str) -> int:
    kind = CALLERS[caller][1]
    if kind == "unauthenticated":
        return 401
    if kind == "wrong-urid":
        return 403
    return 200 if endpoint in ALLOWED[caller] else 403


MATRIX = [(e, c, expected(e, c)) for e in ENDPOINTS for c in CALLERS]


def sensitive(w: CpisWorld) -> set[str]:
    la = w.store.local_authority("TLA01")
    return {w.children["cpp"], la.team, la.office_hours, la.out_of_hours, "t-cpp"}


@pytest.mark.parametrize(("endpoint", "caller", "status"), MATRIX, ids=[f"{e}-{c}-{s}" for e, c, s in MATRIX])
def test_matrix(world: CpisWorld, endpoint: str, caller: str, status: int) -> None:
    make, kind = CALLERS[caller]
    authorization, urid = make(world)
    request_id = str(uuid.uuid4())
    headers = {"X-Request-ID": request_id}
    if authorization is not None:
        headers["Authorization"] = authorization
    if urid is not None:
        headers["NHSD-Session-URID"] = urid
    notes_before = len(world.store.cpis_notifications())

    response = send(world, endpoint, headers)

    assert response.status_code == status, f"{endpoint} as {caller}: {response.status_code} {response.text}"
    audit = [r for r in world.store.query_audit(limit=100_000) if r.request_id == request_id]
    if status in (401, 403):
        body = response.json()
        coding = body["issue"][0]["details"]["coding"][0]
        assert body["resourceType"] == "OperationOutcome" and coding["code"] == "ACCESS_DENIED"
        assert body["issue"][0]["code"] == "forbidden"
        leaked = sorted(v for v in sensitive(world) if v in response.text)
        assert not leaked, f"denied body carries CP-IS data {leaked}"
        assert len(world.store.cpis_notifications()) == notes_before, "a denied request notified"
    if status == 401:
        assert audit == [], "an unauthenticated request left an audit record"
    elif kind == "role":
        assert len(audit) == 1, audit
        record = audit[0]
        assert (record.action, record.outcome) == (ENDPOINTS[endpoint], str(status))
        assert (record.user_id, record.role_profile_id) == (USERS[caller], urid)
        if (endpoint, caller) in WRONG_ORG:
            assert record.details == {"local_authority": "TLA01",
                                      "reason": "role's organisation is not this local authority"}
        elif status == 403:
            assert record.details == {"reason": "role lacks the activity"}
        if endpoint != "inbox":
            assert record.nhs_number == world.children["cpp"]
    elif kind == "wrong-urid" and caller != "missing-urid":
        # an authenticated user presenting a role that is not theirs: on the record
        assert len(audit) == 1 and audit[0].outcome == "403", audit
    if status == 200:
        expected_notes = 1 if (endpoint == "careteam" and caller in ("b0107", "b0107+b0170")) else 0
        assert len(world.store.cpis_notifications()) == notes_before + expected_notes


def test_matrix_covers_every_cpis_operation_and_route() -> None:
    """A new CP-IS route (as the service's router serves it) or rbac operation must be added to this matrix."""
    operations = {op for op in load_role_table(Path(ROLE_TABLE)).operations if op.startswith("cpis.")}
    assert operations == set(ENDPOINTS.values())
    assert set(ROUTES) == set(ENDPOINTS)
    assert set(ROUTES.values()) | SIGNED == served("/cpis"), "a CP-IS route the router serves is not in this matrix"
