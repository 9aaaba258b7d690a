"""FastAPI, lean route: the handler takes the ``Request`` and reads the three headers itself, so FastAPI builds no
per-parameter validation for them; the headers are still documented in the generated OpenAPI (``openapi_extra``).
Same application object, same /openapi.json as ``fastapi_app``; only the parameter handling differs."""

from __future__ import annotations

import os

from fastapi import FastAPI, Request
from fastapi.responses import Response

from .workload import FHIR_JSON, ROUTE, get_workload

# FastAPI >= 0.16x asks the OpenTelemetry API on every request whether a provider is configured (about 20 us
# here); FWBENCH_FASTAPI_TELEMETRY=off turns that off, as the service would when it does not export telemetry.
_TELEMETRY = ({"tracing": False, "metrics": False, "logs": False}
              if os.environ.get("FWBENCH_FASTAPI_TELEMETRY", "off") == "off" else None)
app = FastAPI(title="Spine Desk PDS (benchmark)", version="0", docs_url=None, redoc_url=None, telemetry=_TELEMETRY)

_HEADER_DOCS = {"parameters": [
    {"name": "X-Request-ID", "in": "header", "required": True, "schema": {"type": "string", "format": "uuid"}},
    {"name": "NHSD-Session-URID", "in": "header", "required": True, "schema": {"type": "string"}},
]}


@app.get(ROUTE, response_class=Response, responses={200: {"content": {FHIR_JSON: {}}}}, openapi_extra=_HEADER_DOCS)
async def read_patient(nhs: str, request: Request) -> Response:
    h = request.headers
    rid = h.get("x-request-id")
    status, etag, body = await get_workload().pds_read(nhs, h.get("authorization"), rid, h.get("nhsd-session-urid"))
    headers = {}
    if etag is not None:
        headers["ETag"] = etag
    if rid is not None:
        headers["X-Request-ID"] = rid
    return Response(body, status_code=status, headers=headers, media_type=FHIR_JSON)
