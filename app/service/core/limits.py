"""How much, how slowly and how many: the limits every HTTP request to the service passes before a handler runs.

``HttpLimits`` travels inside ``ServiceConfig`` to every worker process. The body limit is enforced by the ASGI
adapter (``app.service.core.http``); the login rate limit by the auth endpoints
(``app.service.core.ratelimit``); the others by the connection protocol (``app.service.core.http_protocol``)
and uvicorn.
``spinedesk service --limit NAME=VALUE`` changes one (repeat the option for several).
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

import orjson

from app.errors import AppError
from app.service.core.http import FHIR_JSON, MAX_BODY, plain_outcome
from app.service.core.tunables import Tunables
from app.service.store import DB_WAIT_SECONDS


@dataclass(frozen=True)
class HttpLimits(Tunables):
    max_body: int = MAX_BODY  # bytes of request body (413)
    max_header_bytes: int = 64 * 1024  # request line and headers together (431)
    max_headers: int = 100  # header fields in one request (431)
    request_timeout: float = 30.0  # seconds for a whole request (line, headers, body) to arrive (408)
    idle_timeout: float = 10.0  # seconds without a byte while a request is arriving, or before a new
    # connection's first request begins (408, or closed silently when nothing was sent)
    max_connections: int = 500  # open connections per worker process; a request on one beyond it gets 503
    # uvicorn's default (5 s) closes idle keep-alive connections so soon that a client reusing one races the close
    # and sees a reset (seen under 50 concurrent retrying clients); 75 s outlasts common proxy idle timeouts.
    keep_alive: int = 75  # seconds an idle connection is kept between requests
    max_requests_per_connection: int = 1000  # the response to the last one says Connection: close
    # Unauthenticated login endpoints (/auth/challenge, POST /auth/session), per client address and endpoint, in
    # each worker process: a token bucket of auth_burst refilled at auth_rate_per_minute; beyond it 429 with
    # Retry-After. At most auth_sources addresses are remembered (least recently seen forgotten first).
    auth_rate_per_minute: float = 20.0
    auth_burst: int = 10
    auth_sources: int = 10_000
    # The longest a request waits for the database on any one wait (a lock, a pooled connection, a statement, its
    # audit record's commit, its turn for a database thread): beyond it 503 + Retry-After. Well below the desktop
    # client's 15 s time-out, so that a stalled database gives a prompt refusal, not a client-side time-out.
    db_timeout: float = DB_WAIT_SECONDS


class LimitError(AppError):
    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"service limit {name}: {problem}")
        self.name = name
        self.problem = problem


HttpLimits.error = LimitError


def refusal(status: int, issue_code: str, diagnostics: str, *, retry_after: int | None = None,
            headers: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """A complete HTTP/1.1 response that ends the connection, for refusals made before the application runs."""
    body = orjson.dumps(plain_outcome(issue_code, diagnostics))
    lines = [b"HTTP/1.1 %d %s" % (status, HTTPStatus(status).phrase.encode()),
             *(name + b": " + value for name, value in headers or []),
             b"content-type: " + FHIR_JSON.encode(), b"content-length: %d" % len(body), b"connection: close"]
    if retry_after is not None:
        lines.append(b"retry-after: %d" % retry_after)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
