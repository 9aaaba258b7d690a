"""BlackSheep: its own router and Request/Response (Cython), OpenAPI handler at /openapi.json."""

from __future__ import annotations

from blacksheep import Application, Request, Response
from blacksheep.contents import Content
from blacksheep.server.openapi.v3 import OpenAPIHandler
from openapidocs.v3 import Info

from .workload import FHIR_JSON, ROUTE, get_workload

app = Application()
docs = OpenAPIHandler(info=Info(title="Spine Desk PDS (benchmark)", version="0"))
docs.bind_app(app)
_CT = FHIR_JSON.encode()


@app.router.get(ROUTE)
async def read_patient(request: Request, nhs: str) -> Response:
    rid = request.get_first_header(b"x-request-id")
    rid_s = rid.decode("latin-1") if rid is not None else None
    auth = request.get_first_header(b"authorization")
    urid = request.get_first_header(b"nhsd-session-urid")
    status, etag, body = await get_workload().pds_read(
        nhs, auth.decode("latin-1") if auth else None, rid_s, urid.decode("latin-1") if urid else None)
    headers = []
    if etag is not None:
        headers.append((b"ETag", etag.encode()))
    if rid is not None:
        headers.append((b"X-Request-ID", rid))
    return Response(status, headers, Content(_CT, body))
