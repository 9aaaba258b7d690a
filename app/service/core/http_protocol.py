"""uvicorn's httptools connection protocol with the limits uvicorn lacks (``HttpLimits``).

uvicorn bounds neither the size nor the number of request headers, has no time-out for a request that is still
arriving (only for an idle keep-alive connection), accepts connections that never send anything, and its
``limit_concurrency`` answers a bare-text 503 counting requests in flight. Here, per connection:

- the request line and headers together may be ``max_header_bytes`` long and hold ``max_headers`` fields, else
  431 — counted as bytes arrive, so an endless header is refused before it is buffered;
- a request must arrive whole within ``request_timeout`` seconds of its first byte, and no more than
  ``idle_timeout`` seconds may pass without a byte while it arrives (or before a new connection's first request
  begins), else 408 (or a silent close when nothing was sent);
- a request on a connection beyond the worker's ``max_connections`` gets 503 with ``Retry-After``;
- after ``max_requests_per_connection`` requests the response says ``Connection: close``.

Every refusal is an OperationOutcome and closes the connection. The request body limit is the ASGI adapter's.
This leans on the internals of uvicorn's ``HttpToolsProtocol`` (uvicorn is pinned); upgrading uvicorn means
running ``tests/service/test_request_limits.py`` again.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.service.core.limits import HttpLimits, refusal

RETRY_AFTER = 1  # seconds a client turned away for capacity is asked to wait


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits: HttpLimits = getattr(config, "limits", None) or HttpLimits()
        self._refused = False
        self._arriving = True  # waiting for (more of) a request from the client
        self._began = False  # ... and some of it has come
        self._started = self._last_byte = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._in_head = True
        self._head_bytes = self._head_size = self._header_count = 0
        self._requests = 0

    # --- connection events --------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._started = self._last_byte = self.loop.time()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        now = self.loop.time()
        if not self._arriving:  # the first bytes of the next request on a kept-alive connection
            self._arriving, self._started = True, now
        self._began, self._last_byte = True, now
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._refused or self.transport.is_closing():
            return
        if self._in_head and self._head_bytes > self.limits.max_header_bytes:
            self._refuse(431, "too-long", f"request line and headers over {self.limits.max_header_bytes} bytes")
        elif self._arriving:
            self._arm()

    # --- parser callbacks ---------------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()
        self._head_size = self._header_count = 0
        if not self._arriving:  # pipelined behind a request that completed in the same read
            self._arriving, self._began, self._started = True, True, self.loop.time()

    def on_url(self, url: bytes) -> None:
        if self._refused:
            return
        super().on_url(url)
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        super().on_header(name, value)
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refuse(431, "too-long", f"more than {self.limits.max_headers} header fields")
        else:
            self._count_head(len(name) + len(value) + 4)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._in_head = False
        self._requests += 1
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, "throttled", "the service is at its connection limit; retry shortly",
                         retry_after=RETRY_AFTER)
            return
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope and \
                self._requests >= self.limits.max_requests_per_connection:
            cycle.keep_alive = False

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._arriving = self._began = False
        self._in_head, self._head_bytes = True, 0
        self._disarm()

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # after a refusal the parser may still choke on what follows; nothing more is sent
            super().send_400_response(msg)

    # --- limits -------------------------------------------------------------------------------------------------

    def _count_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.limits.max_header_bytes:
            self._refuse(431, "too-long", f"request line and headers over {self.limits.max_header_bytes} bytes")

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = self.loop.call_at(self._deadline(), self._check_time)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _deadline(self) -> float:
        return min(self._last_byte + self.limits.idle_timeout, self._started + self.limits.request_timeout)

    def _check_time(self) -> None:
        self._timer = None
        if self._refused or not self._arriving or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused:  # the server, not the client, is holding this request up
            self._started = self._last_byte = now
        if now < self._deadline():
            self._arm()
        elif self._began:
            self._refuse(408, "timeout", f"the request did not arrive within {self.limits.request_timeout:g} s "
                         f"(or paused for {self.limits.idle_timeout:g} s)")
        else:
            self._refused = True
            self.transport.close()

    def _refuse(self, status: int, issue_code: str, diagnostics: str, *, retry_after: int | None = None) -> None:
        """Answer ``status`` unless another response is on its way on this connection, then close it."""
        self._refused = True
        self._disarm()
        cycle = self.cycle
        if cycle is None or cycle.response_complete or (cycle.scope is self.scope and not cycle.response_started):
            self.transport.write(refusal(status, issue_code, diagnostics, retry_after=retry_after,
                                         headers=self.server_state.default_headers))
        self.transport.close()
