"""The service's HTTP core: plain request/response values, a small router and the one ASGI adapter.

Handlers are ordinary synchronous functions ``(Request) -> Response`` (the store is synchronous); the ASGI
adapter runs those that touch the database on a small thread pool, with every wait bounded, so the event loop
never waits for the database. Nothing else here knows about ASGI.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # lower-case names
    body: bytes = b""
    params: Mapping[str, str] = field(default_factory=dict)  # from the route pattern
    client: str = ""  # the TCP peer's address (proxy headers are not trusted)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, doc: Any, *, content_type: str = FHIR_JSON,
             headers: list[tuple[str, str]] | None = None) -> Response:
        body = orjson.dumps(doc)
        return cls(status, body, [("content-type", content_type), *(headers or [])])


Handler = Callable[[Request], Response]


class BodyTooLarge(Exception):
    """The request body is, or says it will be, larger than ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body over {limit} bytes")
        self.limit = limit


def plain_outcome(issue_code: str, diagnostics: str) -> dict[str, Any]:
    """The OperationOutcome for a refusal made before any route is chosen (no Spine error code applies)."""
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": issue_code, "diagnostics": diagnostics}]}


def too_large(limit: int) -> Response:
    """413 and ``Connection: close``: the rest of the body is never read, so the connection cannot be reused."""
    return Response.json(413, plain_outcome("too-long", f"request body over {limit} bytes"),
                         headers=[("connection", "close")])


async def read_body(scope: Mapping[str, Any], receive: Callable[..., Any], limit: int) -> bytes | None:
    """The whole request body, or ``None`` if the client went away first.

    Raises :class:`BodyTooLarge` before reading anything when ``Content-Length`` declares more than ``limit``,
    and as soon as the bytes received pass ``limit`` (chunked bodies declare nothing); the rest is never read.
    """
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length" and value.strip().isdigit() and int(value) > limit:
            raise BodyTooLarge(limit)
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if len(body) > limit:
            raise BodyTooLarge(limit)
        if not message.get("more_body"):
            return bytes(body)


class Router:
    """Method + path pattern (``{name}`` segments) → handler. Unknown path 404, wrong method 405."""

    def __init__(self) -> None:
        self._routes: list[tuple[re.Pattern[str], dict[str, Handler]]] = []
        self._served: dict[tuple[str, str], None] = {}  # (method, pattern) in the order added

    def routes(self) -> list[tuple[str, str]]:
        """Every ``(method, pattern)`` this router serves, as added (``pattern`` with its ``{name}`` segments)."""
        return list(self._served)

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self._served[(method, pattern)] = None
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", re.escape(pattern).replace(r"\{", "{")
                                        .replace(r"\}", "}")) + "$")
        for existing, methods in self._routes:
            if existing.pattern == regex.pattern:
                methods[method] = handler
                return
        self._routes.append((regex, {method: handler}))

    def match(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], list[str]]:
        for regex, methods in self._routes:
            m = regex.match(path)
            if m:
                return methods.get(method), {k: unquote(v) for k, v in m.groupdict().items()}, sorted(methods)
        return None, {}, []


def asgi_app(handle: Callable[[Request], tuple[Response, list[Future[Any]]]], *, audit_failed: Response,
             unavailable: Response, retry_on: type[Exception] | None = None, retry_for: float = 10.0,
             gave_up: Response | None = None, threads: int = 2, wait: float = 4.0,
             inline: frozenset[str] = frozenset(), probes: frozenset[str] = frozenset(),
             on_shutdown: Callable[[], None] | None = None, max_body: int = MAX_BODY) -> Callable[..., Any]:
    """An ASGI 3 application around ``handle``, which returns a response and the audit commits it waits for.

    The event loop never waits for the database, so a stalled database cannot freeze the service:

    * paths in ``inline`` touch no database (the OpenAPI document) and are answered on the loop;
    * every other request runs on a pool of ``threads`` threads (few: many threads doing sub-millisecond,
      GIL-releasing database calls thrash — 32 gave a fifth of one thread's read rate). One that no thread took up
      within ``wait`` seconds is answered ``unavailable`` and never runs (the threads are stuck on the database);
      ``threads=0`` runs them on the loop instead (for measurements only: a database wait then blocks every
      connection of the process);
    * paths in ``probes`` (the health check) run on a thread of their own, and are answered ``unavailable`` when
      they take longer than ``wait`` or while the previous one is still running;
    * the audit commits a response waits for are awaited without holding a thread, for at most ``wait`` seconds:
      beyond it ``audit_failed`` is sent instead (the data never leaves without its record).

    A handler raising ``retry_on`` (another process is answering the same request) runs again after yielding to
    the loop, for up to ``retry_for`` seconds, then ``gave_up`` is sent. A body over ``max_body`` bytes is refused
    (413, connection closed) as soon as that is known: from ``Content-Length`` before reading any of it, or from
    the running total of a chunked body, so no more than ``max_body`` is ever buffered.
    """
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="service") if threads else None
    probe_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="service-probe")
    probing: list[asyncio.Future[Any]] = []  # the health probe in progress, if any

    def queued(request: Request, job: _Job) -> tuple[Response, list[Future[Any]]]:
        with job.lock:
            if job.abandoned:  # its caller was already refused: never run it late
                return _refusal(unavailable, request), []
            job.started = True
        return handle(request)

    async def run(request: Request) -> tuple[Response, list[Future[Any]]]:
        loop = asyncio.get_running_loop()
        if request.path in inline:
            return handle(request)
        if request.path in probes:
            if probing and not probing[0].done():
                return _refusal(unavailable, request), []
            probing[:] = [loop.run_in_executor(probe_pool, handle, request)]
            try:
                return await asyncio.wait_for(asyncio.shield(probing[0]), wait)
            except TimeoutError:
                return _refusal(unavailable, request), []
        if pool is None:
            return handle(request)
        job = _Job()
        future = loop.run_in_executor(pool, queued, request, job)
        done, _ = await asyncio.wait({future}, timeout=wait)
        if not done:
            with job.lock:
                if not job.started:  # every thread is stuck on the database: refuse, do not pile on
                    job.abandoned = True
                    return _refusal(unavailable, request), []
        return await future  # running: its own database waits are bounded by the store

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if on_shutdown:
                        await asyncio.get_running_loop().run_in_executor(None, on_shutdown)
                    if pool is not None:
                        pool.shutdown(wait=False)
                    probe_pool.shutdown(wait=False)
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        try:
            body = await read_body(scope, receive, max_body)
        except BodyTooLarge as exc:
            await _send(send, too_large(exc.limit))
            return
        if body is None:
            return
        request = Request(
            method=scope["method"], path=scope["path"],
            query=parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True),
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])},
            body=body, client=str((scope.get("client") or ("",))[0]))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + retry_for
        while True:
            try:
                response, pending = await run(request)
                break
            except Exception as exc:
                if retry_on is None or gave_up is None or not isinstance(exc, retry_on):
                    raise
                if loop.time() > deadline:
                    response, pending = Response(gave_up.status, gave_up.body, list(gave_up.headers)), []
                    break
                await asyncio.sleep(0.02)
        if pending:
            try:
                async with asyncio.timeout(wait):
                    for future in pending:
                        await asyncio.shield(asyncio.wrap_future(future))  # a time-out must not cancel it
            except TimeoutError:
                log.error("audit write took longer than %s s; the response is withheld", wait)
                response = _refusal(audit_failed, request)
            except Exception:
                log.exception("audit write failed; the response is withheld")
                response = _refusal(audit_failed, request)
        await _send(send, response)

    return app


class _Job:
    """One request handed to the database threads: refused if no thread took it up in time, never both."""

    __slots__ = ("abandoned", "lock", "started")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = False
        self.abandoned = False


def _refusal(template: Response, request: Request) -> Response:
    """A copy of ``template`` carrying the request's X-Request-ID and X-Correlation-ID back."""
    response = Response(template.status, template.body, list(template.headers))
    for name in ("x-request-id", "x-correlation-id"):
        if request.header(name):
            response.headers.append((name, request.header(name) or ""))
    return response


async def _send(send: Callable[..., Any], response: Response) -> None:
    await send({"type": "http.response.start", "status": response.status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]})
    await send({"type": "http.response.body", "body": response.body})
