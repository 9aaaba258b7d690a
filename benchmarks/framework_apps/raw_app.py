"""Hand-written ASGI: the floor of framework overhead."""

from __future__ import annotations

from .workload import FHIR_JSON, OPENAPI_DOC, PREFIX, get_workload

_PREFIX_LEN = len(PREFIX)
_NOT_FOUND = b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found"}]}'


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    path = scope["path"]
    headers: list[tuple[bytes, bytes]] = [(b"content-type", FHIR_JSON.encode())]
    if scope["method"] == "GET" and path.startswith(PREFIX) and "/" not in path[_PREFIX_LEN:]:
        auth = rid = urid = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value.decode("latin-1")
            elif name == b"x-request-id":
                rid = value.decode("latin-1")
            elif name == b"nhsd-session-urid":
                urid = value.decode("latin-1")
        status, etag, body = await get_workload().pds_read(path[_PREFIX_LEN:], auth, rid, urid)
        if etag is not None:
            headers.append((b"etag", etag.encode()))
        if rid is not None:
            headers.append((b"x-request-id", rid.encode("latin-1")))
    elif scope["method"] == "GET" and path == "/openapi.json":
        status, body, headers = 200, OPENAPI_DOC, [(b"content-type", b"application/json")]
    else:
        status, body = 404, _NOT_FOUND
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
