"""Litestar: typed header parameters, generated OpenAPI at /schema/openapi.json."""

from __future__ import annotations

from typing import Annotated

from litestar import Litestar, Response, get
from litestar.openapi import OpenAPIConfig
from litestar.params import Parameter

from .workload import FHIR_JSON, PREFIX, get_workload


@get(PREFIX + "{nhs:str}", media_type=FHIR_JSON)
async def read_patient(
    nhs: str,
    authorization: Annotated[str | None, Parameter(header="Authorization")] = None,
    x_request_id: Annotated[str | None, Parameter(header="X-Request-ID")] = None,
    nhsd_session_urid: Annotated[str | None, Parameter(header="NHSD-Session-URID")] = None,
) -> Response[bytes]:
    status, etag, body = await get_workload().pds_read(nhs, authorization, x_request_id, nhsd_session_urid)
    headers = {}
    if etag is not None:
        headers["ETag"] = etag
    if x_request_id is not None:
        headers["X-Request-ID"] = x_request_id
    return Response(body, status_code=status, headers=headers, media_type=FHIR_JSON)


app = Litestar([read_patient], openapi_config=OpenAPIConfig(title="Spine Desk PDS (benchmark)", version="0",
                                                             path="/schema"), logging_config=None)
