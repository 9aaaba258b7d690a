"""Assemble the service: routes, the one error path, echoed headers, health and the OpenAPI document.

The OpenAPI document served at ``/openapi.json`` is ``resources/openapi/core.json`` with the paths of each
feature's file (``pds.json``, ``scr.json``, ``cpis.json``, ``flags.json``) merged in."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from app import __version__
from app.resources_path import resource
from app.service.core import audit_routes as audit
from app.service.core import auth_routes as auth
from app.service.core import card_routes as card
from app.service.core.context import PENDING_AUDIT, InProgress, ServiceContext, echo_headers, error_response
from app.service.core.http import MAX_BODY, Request, Response, Router, asgi_app
from app.service.core.outcome import FhirError
from app.service.core.routes import register
from app.service.cpis import routes as cpis
from app.service.cpis.delivery import describe_stuck
from app.service.flags import routes as flags
from app.service.pds import routes as pds
from app.service.scr import routes as scr
from app.service.store import DB_WAIT_SECONDS, StoreError

log = logging.getLogger(__name__)


FEATURE_ROUTES = (pds.ROUTES, scr.ROUTES, cpis.ROUTES, flags.ROUTES, audit.ROUTES, card.ROUTES)
OPENAPI_FILES = ("core", "pds", "scr", "cpis", "flags")  # resources/openapi/<name>.json


def openapi_document() -> dict[str, Any]:
    """The service's OpenAPI 3.0 document: ``core.json`` plus every feature's paths (a path in two files is an
    error). PDS, SCR and RA Flag paths follow NHS's published specifications; CP-IS its draft FHIR API."""
    doc: dict[str, Any] = json.loads(resource("openapi", "core.json").read_text(encoding="utf-8"))
    doc["info"]["version"] = __version__
    for name in OPENAPI_FILES[1:]:
        part = json.loads(resource("openapi", f"{name}.json").read_text(encoding="utf-8"))
        if clash := doc["paths"].keys() & part["paths"].keys():
            raise ValueError(f"openapi/{name}.json repeats {sorted(clash)}")
        doc["paths"].update(part["paths"])
    return doc


def build_router(ctx: ServiceContext, openapi: dict[str, Any]) -> Router:
    """Every route the service serves: the sign-in routes, then each feature's ``ROUTES`` table, the audit query,
    the OpenAPI document and the health check."""
    router = Router()
    for table in (auth.ROUTES, *FEATURE_ROUTES):
        register(router, ctx, table)
    body = json.dumps(openapi).encode()
    router.add("GET", "/openapi.json", lambda r: Response(200, body, [("content-type", "application/json")]))
    router.add("GET", "/_status", lambda r: _status(ctx))
    return router


def _status(ctx: ServiceContext) -> Response:
    """``{"status": "pass" | "warn" | "fail", "schema_version": N, "checks": {name: [{"status": …, …}]}}``.

    ``database`` fails (HTTP 503) while a database call has been waiting for more than half the service's bound on
    one wait (a lock held elsewhere, a server restarting); this check itself never waits longer than that bound
    (the HTTP adapter answers 503 "the database is unavailable" when it does). ``audit`` fails (HTTP 503) while
    this process's last audit commit failed — every audited request is then refused — until one succeeds again.
    ``cpis-delivery`` warns (HTTP 200: data is still served) while notifications are stuck in the outbox
    (``DeliveryAlarm``), naming how many and the oldest's time."""
    try:
        version = ctx.store.schema_version()
        stuck = ctx.delivery_alarm.stuck(ctx.store, ctx.now())
    except StoreError as exc:
        log.warning("health check: store unavailable: %s", exc)
        return error_response(FhirError("SERVICE_UNAVAILABLE", "the database is unavailable", retry_after=5))
    checks: dict[str, list[dict[str, Any]]] = {}
    stalled = ctx.store.stalled()
    if stalled is not None:
        checks["database"] = [{"status": "fail", "observedValue": round(stalled, 1), "observedUnit": "s",
                               "output": "a database call has been waiting this long (a lock held elsewhere, or "
                                         "the server restarting); requests that need it are refused with 503"}]
    else:
        checks["database"] = [{"status": "pass"}]
    failing = ctx.audit_writer.failing or ctx.cpis_writer.failing
    if failing is not None:
        checks["audit"] = [{"status": "fail", "time": _iso(failing.since),
                            "output": f"audit records cannot be written ({failing.error}); every audited request "
                                      "is refused with 503 until a write succeeds"}]
    else:
        checks["audit"] = [{"status": "pass"}]
    if stuck.count:
        checks["cpis-delivery"] = [{"status": "warn", "observedValue": stuck.count,
                                    "observedUnit": "notifications", "time": _iso(stuck.oldest),
                                    "output": describe_stuck(stuck, ctx.delivery_alarm)}]
    else:
        checks["cpis-delivery"] = [{"status": "pass", "observedValue": 0, "observedUnit": "notifications"}]
    worst = "fail" if failing is not None or stalled is not None else "warn" if stuck.count else "pass"
    return Response.json(503 if worst == "fail" else 200, {"status": worst, "schema_version": version,
                                                           "checks": checks}, content_type="application/json")


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when is not None else None


IN_PROGRESS_WAIT = 10.0  # seconds a duplicate waits for the first request's answer (claims are leased for 3 s)
STILL_RUNNING = FhirError("SERVICE_UNAVAILABLE", "A request with this X-Request-ID is still being processed; retry "
                          "it with the same X-Request-ID.", retry_after=2)
DATABASE_UNAVAILABLE = FhirError("SERVICE_UNAVAILABLE", "The service's database is unavailable; retry with the "
                                 "same X-Request-ID.", retry_after=5)
AUDIT_FAILED = FhirError("SERVICE_UNAVAILABLE", "The access could not be audited, so no data was returned; retry "
                         "with the same X-Request-ID.", retry_after=5)



def make_handler(router: Router) -> Callable[[Request], tuple[Response, list[Any]]]:
    """The response and the audit commits it must wait for (the ASGI adapter awaits them off-thread)."""

    def handle(request: Request) -> tuple[Response, list[Any]]:
        pending: list[Any] = []
        token = PENDING_AUDIT.set(pending)
        try:
            return _dispatch(request), pending
        finally:
            PENDING_AUDIT.reset(token)

    def _dispatch(request: Request) -> Response:
        handler, params, methods = router.match(request.method, request.path)
        try:
            if handler is None:
                if methods:
                    response = error_response(FhirError(
                        "UNSUPPORTED_SERVICE", f"{request.method} is not supported here; use {', '.join(methods)}",
                        status=405))
                    response.headers.append(("allow", ", ".join(methods)))
                else:
                    response = error_response(FhirError("UNSUPPORTED_SERVICE", "Unsupported Service", status=404))
            else:
                response = handler(Request(request.method, request.path, request.query, request.headers,
                                           request.body, params, request.client))
        except FhirError as exc:
            response = error_response(exc)
        except InProgress:
            raise
        except StoreError as exc:
            log.error("store failure on %s %s: %s", request.method, request.path, exc)
            response = error_response(DATABASE_UNAVAILABLE)
        except Exception:
            log.exception("unexpected failure on %s %s", request.method, request.path)
            response = Response.json(500, {"resourceType": "OperationOutcome", "issue": [{
                "severity": "error", "code": "exception", "details": {"coding": [{
                    "system": "https://fhir.nhs.uk/CodeSystem/Spine-ErrorOrWarningCode", "code": "UNKNOWN_ERROR",
                    "display": "Unknown error"}]}}]})
        return echo_headers(request, response)

    return handle


# Answered on the event loop: no database behind them. The health check runs on a thread of its own.
STATIC_PATHS = frozenset({"/openapi.json"})
HEALTH_PATHS = frozenset({"/_status"})


def build_asgi(ctx: ServiceContext, *, threads: int = 2, db_timeout: float = DB_WAIT_SECONDS,
               on_shutdown: Callable[[], None] | None = None, max_body: int = MAX_BODY) -> Any:
    """``threads``: the pool that runs requests touching the database; ``db_timeout``: the longest a request
    waits for a thread, or for its audit records to commit (see ``app.service.core.http.asgi_app``)."""
    return asgi_app(make_handler(build_router(ctx, openapi_document())), audit_failed=error_response(AUDIT_FAILED),
                    unavailable=error_response(DATABASE_UNAVAILABLE), retry_on=InProgress,
                    retry_for=IN_PROGRESS_WAIT, gave_up=error_response(STILL_RUNNING), threads=threads,
                    wait=db_timeout, inline=STATIC_PATHS, probes=HEALTH_PATHS, on_shutdown=on_shutdown,
                    max_body=max_body)
