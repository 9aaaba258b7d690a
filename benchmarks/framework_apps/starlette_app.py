"""Starlette: routing + Request/Response objects; the OpenAPI document is served as a static file."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .workload import FHIR_JSON, OPENAPI_DOC, ROUTE, get_workload


async def read_patient(request: Request) -> Response:
    h = request.headers
    rid = h.get("x-request-id")
    status, etag, body = await get_workload().pds_read(
        request.path_params["nhs"], h.get("authorization"), rid, h.get("nhsd-session-urid"))
    headers = {}
    if etag is not None:
        headers["ETag"] = etag
    if rid is not None:
        headers["X-Request-ID"] = rid
    return Response(body, status_code=status, headers=headers, media_type=FHIR_JSON)


async def openapi(request: Request) -> Response:
    return Response(OPENAPI_DOC, media_type="application/json")


app = Starlette(routes=[Route(ROUTE, read_patient, methods=["GET"]), Route("/openapi.json", openapi)])
