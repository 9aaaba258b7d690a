"""Serving the ASGI app with uvicorn (uvloop + httptools): one or several worker processes, TLS 1.2+ only."""

from __future__ import annotations

import os
import signal
import ssl
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from app.service.core.http_protocol import LimitedHttpToolsProtocol
from app.service.core.limits import HttpLimits
from app.service.runtime import ENV, ServiceConfig


class _Config(uvicorn.Config):
    """uvicorn's config with its TLS context tightened (TLS 1.2 minimum, no compression, server cipher order) and
    carrying the request limits to the connection protocol (it is pickled into each worker process)."""

    def __init__(self, app: Any, *, limits: HttpLimits, **options: Any) -> None:
        super().__init__(app, **options)
        self.limits = limits

    def load(self) -> None:
        super().load()
        if self.ssl is not None:
            self.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
            self.ssl.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE


class _Workers(Multiprocess):
    """uvicorn's supervisor, except that SIGHUP is passed on to the workers, each of which re-reads its CRLs (see
    ``runtime.reload_on_sighup``), instead of replacing every worker."""

    def handle_hup(self) -> None:
        for process in self.processes:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signal.SIGHUP)


def uvicorn_config(app: Any, limits: HttpLimits, **options: Any) -> uvicorn.Config:
    """The one uvicorn configuration every server of the service uses (``options``: host, port, TLS, logging …).

    HTTP/1.1 through httptools with the limits uvicorn lacks (``app.service.core.http_protocol``), no WebSocket
    support (the service has none to offer), keep-alive from ``limits``."""
    return _Config(app, limits=limits, http=LimitedHttpToolsProtocol, ws="none", timeout_keep_alive=limits.keep_alive,
                   **options)


@dataclass(frozen=True)
class Listen:
    host: str = "127.0.0.1"
    port: int = 8443
    workers: int = 1
    tls_cert: str | None = None
    tls_key: str | None = None


def serve(config: ServiceConfig, listen: Listen) -> None:
    """Run until SIGINT/SIGTERM; SIGHUP makes every worker re-read its CRLs. Workers build their own service from
    ``config`` (passed in the environment)."""
    os.environ[ENV] = config.to_env()
    uv = uvicorn_config("app.service.runtime:create_app", config.limits, factory=True, host=listen.host,
                        port=listen.port, workers=listen.workers, loop="uvloop", lifespan="on",
                        access_log=False, ssl_certfile=listen.tls_cert, ssl_keyfile=listen.tls_key,
                        log_level="warning", timeout_graceful_shutdown=10,
                        proxy_headers=False)  # nothing uses the client address; skip the per-request middleware
    server = uvicorn.Server(uv)
    if listen.workers > 1:
        sock = uv.bind_socket()
        _Workers(uv, sockets=[sock]).run()
    else:
        server.run()
