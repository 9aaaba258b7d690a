"""Every route the service really serves is guarded as resources/rbac.json says, proved by calling it.

The routes are enumerated from the router the service runs (``build_router``, what ``build_asgi`` serves), not from
a hand-kept list, rbac.json or the OpenAPI documents. Each served ``(method, path template)`` must be in exactly one
of the lists below, so a new route fails ``test_every_served_route_is_classified`` until someone decides how it is
guarded:

* ``GUARDED``: the route's rbac operation. Called without a token and with a forged one it answers 401 (and leaves no
  audit record); for every caller role it answers 403 when the role holds none of the operation's activities, with
  the denial on the audit trail under that operation; a role holding one of them is never refused for its role.
  The caller roles are every role of rbac.json (with its default activities), one role per activity of rbac.json
  holding only that activity, and a role with no activities.
* ``TOKEN_ONLY`` / ``SIGNED`` / ``PUBLIC``: not role-checked, each with the reason, and the 401 each must still give.

The finer rules (existence vs content, consent, organisations, credentials of every kind) are in the feature
matrices: test_authz_matrix.py (PDS, audit), test_scr_authz_matrix.py, test_cpis_authz.py,
test_flags_authz_matrix.py; each checks its own endpoint list against the served routes (served_routes.py).
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.pki import TrainingCA
from app.protocol import (
    AUTH_CHALLENGE_PATH,
    AUTH_ROLE_PATH,
    AUTH_SESSION_PATH,
    CARD_RENEWAL_CHECK_PATH,
    CARD_RENEWAL_CONFIRM_PATH,
    CARD_RENEWAL_PATH,
    CARD_UNBLOCK_PATH,
    CPIS_BASE,
    FLAGS_BASE,
    PDS_BASE,
    SCR_BASE,
)
from app.service.app import build_router, make_handler
from app.service.app import openapi_document as document
from app.service.core.auth import token_hash
from app.service.core.http import Request, Response
from app.service.core.rbac import load_role_table
from app.service.cpis.rules import INBOX_PATH
from app.service.runtime import ROLE_TABLE, ServiceConfig, build_service
from app.service.storage import open_store
from app.service.store import RoleProfile, Store
from tests.support.service.served_routes import Route, served

GUARDED: dict[Route, str] = {  # route -> the rbac operation it must authorise
    ("GET", f"{PDS_BASE}/Patient/{{id}}"): "pds.read",
    ("PATCH", f"{PDS_BASE}/Patient/{{id}}"): "pds.patch",
    ("GET", f"{PDS_BASE}/Patient"): "pds.search",
    ("GET", f"{PDS_BASE}/Patient/{{id}}/RelatedPerson"): "pds.related",
    ("GET", f"{SCR_BASE}/alerts"): "scr.alerts",
    ("POST", f"{SCR_BASE}/alerts/{{id}}/$acknowledge"): "scr.alerts.ack",
    ("GET", f"{SCR_BASE}/DocumentReference"): "scr.index",
    ("GET", f"{SCR_BASE}/Bundle"): "scr.read",
    ("POST", f"{SCR_BASE}/Bundle"): "scr.upload",
    ("POST", f"{SCR_BASE}/$setPermission"): "scr.permission",
    ("POST", f"{SCR_BASE}/AuditEvent"): "scr.alert",
    ("GET", f"{CPIS_BASE}/CareTeam"): "cpis.careteam",
    ("GET", f"{CPIS_BASE}/AuditEvent"): "cpis.auditevent",
    ("GET", INBOX_PATH): "cpis.inbox",
    ("GET", f"{FLAGS_BASE}/Flag"): "flags.search",
    ("POST", f"{FLAGS_BASE}/Flag"): "flags.create",
    ("GET", f"{FLAGS_BASE}/Flag/{{flagID}}"): "flags.read",
    ("PUT", f"{FLAGS_BASE}/Flag/{{flagID}}"): "flags.update",
    ("GET", f"{FLAGS_BASE}/Flag/{{flagID}}/_history"): "flags.read",
    ("GET", f"{FLAGS_BASE}/Flag/{{flagID}}/_history/{{vid}}"): "flags.read",
    ("POST", f"{FLAGS_BASE}/$removerarecord"): "flags.remove",
    ("GET", "/audit/records"): "audit.query",
    ("POST", CARD_UNBLOCK_PATH): "card.unblock",
}
TOKEN_ONLY: dict[Route, str] = {
    ("DELETE", AUTH_SESSION_PATH): "logout ends the session its own token names, whatever the role: 401 without one",
    ("POST", AUTH_ROLE_PATH): "binds the session its own token names to one of its user's roles, once (the role is "
                              "what the token then serves): 401 without one",
    ("POST", CARD_RENEWAL_CHECK_PATH): "renewing one's own card's certificate is no activity of a role: the session "
                                       "opened with that certificate is the credential; 401 without one",
    ("POST", CARD_RENEWAL_PATH): "as the renewal check: the session of the certificate being renewed; 401 without one",
    ("POST", CARD_RENEWAL_CONFIRM_PATH): "as the renewal check: only the session of the renewed certificate; 401 "
                                         "without one",
}
SIGNED: dict[Route, str] = {
    ("POST", INBOX_PATH): "a local authority's system delivers CP-IS notifications, signed with that authority's "
                          "key (HMAC) instead of a user's token: 401 unsigned",
}
PUBLIC: dict[Route, str] = {
    ("POST", AUTH_CHALLENGE_PATH): "login step 1, before any session exists; rate-limited per client address",
    ("POST", AUTH_SESSION_PATH): "login step 2: the card's signature over the challenge is the credential",
    ("GET", "/openapi.json"): "the API's published description; no patient or user data",
    ("GET", "/_status"): "health check for load balancers and monitoring; no patient or user data",
}
NOT_A_ROUTE = {  # rbac operations no route authorises on its own, and why
    "flags.content": "decides, inside the flags read routes, whether a flag's content is shown or only that it exists",
}
UNPROTECTED = {**TOKEN_ONLY, **SIGNED, **PUBLIC}

TABLE = load_role_table(Path(ROLE_TABLE))
USER = "rbac-prober"
ORG = "A81001"


def _callers() -> dict[str, tuple[str, ...]]:
    """urid -> activities: each rbac.json role with its defaults, one role per activity, and one with none."""
    callers = {f"role-{code}": acts for code, (_, acts) in TABLE.roles.items()}
    callers.update({f"only-{activity}": (activity,) for activity in TABLE.activities})
    callers["no-activities"] = ()
    return callers


CALLERS = _callers()


def _concrete(template: str) -> str:
    """The template with every ``{name}`` a valid FHIR id (path ids are checked before the role); a local
    authority's code is the callers' own organisation, so an inbox holder gets its inbox."""
    return re.sub(r"\{\w+\}", "9000000009", template.replace("{code}", ORG))


# --- the real service, in process -------------------------------------------------------------------------------


@dataclass
class Probe:
    store: Store
    dispatch: object
    tokens: dict[str, str]  # urid -> a token bound to it (a session serves one role)
    routes: list[Route]

    def call(self, route: Route, authorization: str | None, urid: str | None = None) -> tuple[Response, str]:
        request_id = str(uuid.uuid4())
        headers = {"x-request-id": request_id, "content-type": "application/fhir+json"}
        if authorization is not None:
            headers["authorization"] = authorization
        if urid is not None:
            headers["nhsd-session-urid"] = urid
        method, template = route
        response = self.dispatch(Request(method, _concrete(template), {}, headers, b"{}"))  # type: ignore[operator]
        return response, request_id

    def audit(self, request_id: str) -> list:
        return [r for r in self.store.query_audit(limit=1_000_000) if r.request_id == request_id]


def make_dispatch(router):  # type: ignore[no-untyped-def]  # test helper
    """Call the router as the server does, synchronously: the response once its audit records have committed."""
    handle = make_handler(router)

    def dispatch(request: Request) -> Response:
        response, pending = handle(request)
        for future in pending:
            future.result()
        return response

    return dispatch


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    base = tmp_path_factory.mktemp("routes")
    ca = TrainingCA.load_or_create(base / "pki")
    store = open_store(f"sqlite://{base}/store.db")
    service = build_service(ServiceConfig(database="unused://", training_pki=str(ca.directory)), store=store)
    try:
        store.add_user(USER, "Rbac Prober")
        for urid, acts in CALLERS.items():
            store.add_role_profile(RoleProfile(urid, USER, ORG, "Training Surgery", "S8000:G8000:R8000", urid, acts))
        tokens = {urid: secrets.token_urlsafe(32) for urid in CALLERS}
        for urid, token in tokens.items():
            store.create_session(token_hash(token), USER, datetime.now(UTC) + timedelta(hours=8),
                                 role_profile_id=urid)
        router = build_router(service.context, document())  # exactly what build_asgi serves
        yield Probe(store, make_dispatch(router), tokens, router.routes())
    finally:
        service.close()


# --- the routes are the router's ------------------------------------------------------------------------------


def test_every_served_route_is_classified(probe: Probe) -> None:
    """A route added to the service without a line here fails: decide its rbac operation (GUARDED) or say why it is
    not role-checked (TOKEN_ONLY, SIGNED, PUBLIC)."""
    served_routes = set(probe.routes)
    assert served_routes == served()
    listed = set(GUARDED) | set(UNPROTECTED)
    assert not served_routes - listed, f"routes served but not classified here: {sorted(served_routes - listed)}"
    assert not listed - served_routes, f"routes classified here but not served: {sorted(listed - served_routes)}"
    kinds = (set(GUARDED), set(TOKEN_ONLY), set(SIGNED), set(PUBLIC))
    assert sum(len(k) for k in kinds) == len(listed), "a route is in more than one list"


def test_every_operation_of_rbac_json_guards_a_route() -> None:
    used = set(GUARDED.values())
    assert used <= set(TABLE.operations), f"operations not in rbac.json (denied to all): {used - set(TABLE.operations)}"
    assert set(TABLE.operations) - used == set(NOT_A_ROUTE)


def test_every_served_route_is_in_the_openapi_documents() -> None:
    paths = document()["paths"]
    undocumented = [(m, p) for m, p in served() if (m, p) not in PUBLIC and m.lower() not in paths.get(p, {})]
    assert not undocumented, undocumented


# --- and each is guarded as rbac.json says: by calling it ----------------------------------------------------


@pytest.mark.parametrize("route", sorted(GUARDED), ids=lambda r: f"{r[0]} {r[1]}")
@pytest.mark.parametrize("authorization", [None, "forged"], ids=["no-token", "forged-token"])
def test_a_guarded_route_refuses_an_unauthenticated_caller(probe: Probe, route: Route,
                                                           authorization: str | None) -> None:
    header = None if authorization is None else f"Bearer {secrets.token_urlsafe(32)}"
    response, request_id = probe.call(route, header, "role-R8000")
    assert response.status == 401, (route, response.status, response.body[:300])
    assert b"ACCESS_DENIED" in response.body
    assert probe.audit(request_id) == []


@pytest.mark.parametrize("route", sorted(GUARDED), ids=lambda r: f"{r[0]} {r[1]}")
@pytest.mark.parametrize("urid", sorted(CALLERS))
def test_a_guarded_route_checks_its_operation_for_every_role(probe: Probe, route: Route, urid: str) -> None:
    operation = GUARDED[route]
    response, request_id = probe.call(route, f"Bearer {probe.tokens[urid]}", urid)
    records = probe.audit(request_id)
    role_denials = [r for r in records if r.details.get("reason") == "role lacks the activity"]
    if TABLE.allowed(operation, CALLERS[urid]):
        assert response.status != 401, (route, urid, response.body[:300])
        assert role_denials == [], f"{urid} holds {operation} but {route} refused it for its role"
        assert response.status < 500, (route, urid, response.status, response.body[:300])
    else:
        assert response.status == 403, (route, urid, response.status, response.body[:300])
        assert b"ACCESS_DENIED" in response.body
        assert [(r.action, r.outcome, r.user_id, r.role_profile_id) for r in role_denials] == [
            (operation, "403", USER, urid)], records


@pytest.mark.parametrize("route", sorted(UNPROTECTED), ids=lambda r: f"{r[0]} {r[1]}")
def test_the_unprotected_routes_are_what_their_reasons_say(probe: Probe, route: Route) -> None:
    """Token-only and signed routes still refuse a caller without their credential; public ones answer without any
    (a malformed login body is refused as a bad request or a failed login, never served)."""
    response, request_id = probe.call(route, None)
    if route in PUBLIC:
        assert response.status in (200, 400, 401), (route, response.status)
    else:
        assert response.status == 401, (route, response.status, response.body[:300])
    assert probe.audit(request_id) == []
