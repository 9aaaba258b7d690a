"""FastAPI: typed path/header parameters (validated and documented), generated OpenAPI at /openapi.json.

The handler is ``async def`` (a plain ``def`` would run every request through the thread pool) and returns a
``Response`` with the stored bytes, so no pydantic serialisation runs on the way out."""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import FastAPI, Header, Path
from fastapi.responses import Response

from .workload import FHIR_JSON, ROUTE, get_workload

# FastAPI >= 0.16x asks the OpenTelemetry API on every request whether a provider is configured (about 20 us
# here); FWBENCH_FASTAPI_TELEMETRY=off turns that off, as the service would when it does not export telemetry.
_TELEMETRY = ({"tracing": False, "metrics": False, "logs": False}
              if os.environ.get("FWBENCH_FASTAPI_TELEMETRY", "off") == "off" else None)
app = FastAPI(title="Spine Desk PDS (benchmark)", version="0", docs_url=None, redoc_url=None, telemetry=_TELEMETRY)


@app.get(ROUTE, response_class=Response, responses={200: {"content": {FHIR_JSON: {}}}})
async def read_patient(
    nhs: Annotated[str, Path(description="NHS number")],
    authorization: Annotated[str | None, Header()] = None,
    x_request_id: Annotated[str | None, Header(alias="X-Request-ID")] = None,
    nhsd_session_urid: Annotated[str | None, Header(alias="NHSD-Session-URID")] = None,
) -> Response:
    status, etag, body = await get_workload().pds_read(nhs, authorization, x_request_id, nhsd_session_urid)
    headers = {}
    if etag is not None:
        headers["ETag"] = etag
    if x_request_id is not None:
        headers["X-Request-ID"] = x_request_id
    return Response(body, status_code=status, headers=headers, media_type=FHIR_JSON)
