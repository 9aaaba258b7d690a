"""Serving the ASGI app with uvicorn (uvloop + httptools): one or several worker processes, TLS 1.2+ only."""

from __future__ import annotations

import os
import signal
import ssl
from dataclasses import dataclass

import uvicorn
from uvicorn.supervisors import Multiprocess

from app.service.runtime import ENV, ServiceConfig

# uvicorn's default (5 s) closes idle keep-alive connections so soon that a client reusing one races the close
# and sees a reset (seen under 50 concurrent retrying clients); 75 s outlasts common proxy idle timeouts.
KEEP_ALIVE_SECONDS = 75


class _Config(uvicorn.Config):
    """uvicorn's config with its TLS context tightened: TLS 1.2 minimum, no compression, server cipher order."""

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
    uv = _Config("app.service.runtime:create_app", factory=True, host=listen.host, port=listen.port,
                 workers=listen.workers, loop="uvloop", http="httptools", lifespan="on", access_log=False,
                 ssl_certfile=listen.tls_cert, ssl_keyfile=listen.tls_key, log_level="warning",
                 timeout_graceful_shutdown=10, timeout_keep_alive=KEEP_ALIVE_SECONDS,
                 proxy_headers=False)  # nothing uses the client address; skip the per-request middleware
    server = uvicorn.Server(uv)
    if listen.workers > 1:
        sock = uv.bind_socket()
        _Workers(uv, sockets=[sock]).run()
    else:
        server.run()
