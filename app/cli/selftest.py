"""``spinedesk --self-test``: prove an installed (usually frozen) Spine Desk has everything it needs.

Each check loads one part the way the real commands do — the Qt platform plugins and fonts, pyscard, the service
(built on an in-memory database with a throwaway training PKI, then asked ``GET /_status``), uvicorn's worker stack,
the WES specification, the machine-wide configuration — and prints one line: ``ok``, ``note`` (an optional part
this machine does not have: it does not fail the test) or ``FAIL`` with what is wrong. Exit status 0 when nothing
failed, 1 otherwise. Nothing is written outside a temporary directory; no network, no card, no display needed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from app import __version__
from app.config import Settings
from app.resources_path import bundle_root, resource


class Note(Exception):
    """Raised by a check whose part is optional on this machine (printed as ``note``, not a failure)."""


def check_bundle() -> str:
    frozen = getattr(sys, "frozen", False)
    role_table = resource("rbac.json")
    json.loads(role_table.read_text(encoding="utf-8"))
    from app.service.runtime import ROLE_TABLE

    if not Path(ROLE_TABLE).is_file():
        raise RuntimeError(f"the service's role table {ROLE_TABLE} is absent")
    files = sum(1 for p in resource().rglob("*") if p.is_file())
    kind = "frozen" if frozen else "source"
    return f"spinedesk {__version__}, {kind} build at {bundle_root()}, {files} resource files"


def check_qt() -> str:
    from app.ui.platform_check import check_offscreen_render, check_window_plugins

    rendered = check_offscreen_render()
    return f"{rendered}; window plugins load: {check_window_plugins()}"


def check_pcsc() -> str:
    from app.card import pcsc  # the only module that imports pyscard: loads its C extension and libpcsclite
    from app.errors import AppError

    try:
        readers = pcsc.PcscSystem().readers()
    except AppError as exc:  # pyscard loaded; pcscd itself is not running (a chroot, a container): not a failure
        return f"pyscard loaded; pcscd not reachable now ({type(exc).__name__}): start it with systemctl start pcscd"
    return f"pyscard loaded; pcscd answers, {len(readers)} reader(s)"


async def _asgi_get(app: Any, path: str) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "path": path,
             "raw_path": path.encode(), "query_string": b"", "headers": [(b"host", b"selftest")], "scheme": "http",
             "server": ("127.0.0.1", 0), "client": ("127.0.0.1", 0), "root_path": ""}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def check_service() -> str:
    import asyncio

    from app.service.runtime import ServiceConfig, build_service

    with tempfile.TemporaryDirectory(prefix="spinedesk-selftest-") as tmp:
        config = ServiceConfig("sqlite:///:memory:", base_url="http://127.0.0.1:0", training_pki=str(Path(tmp) / "pki"),
                               audit_key=str(Path(tmp) / "audit.key"))
        service = build_service(config)
        try:
            status, body = asyncio.run(_asgi_get(service.app, "/_status"))
            if status != 200:
                raise RuntimeError(f"GET /_status answered {status}: {body[:200]!r}")
            spec_status, _ = asyncio.run(_asgi_get(service.app, "/openapi.json"))
            if spec_status != 200:
                raise RuntimeError(f"GET /openapi.json answered {spec_status}")
        finally:
            service.close()
    return f"built on in-memory SQLite with a training PKI; GET /_status: {json.loads(body)}"


def check_server_stack() -> str:
    import httptools
    import uvicorn
    import uvicorn.lifespan.on
    import uvicorn.loops.uvloop
    import uvicorn.protocols.http.httptools_impl
    import uvloop

    from app.service import runtime

    loop = uvloop.new_event_loop()
    loop.close()
    if not callable(getattr(runtime, "create_app", None)):
        raise RuntimeError("app.service.runtime:create_app (the worker factory) is absent")
    return f"uvicorn {uvicorn.__version__}, uvloop {uvloop.__version__}, httptools {httptools.__version__}"


def check_postgres_driver() -> str:
    try:
        import psycopg
    except ImportError as exc:  # psycopg's message lists every implementation it tried: keep the last line
        reason = str(exc).strip().splitlines()[-1].lstrip("- ")
        if "libpq" in reason:
            reason = "libpq is not installed"
        raise Note(f"PostgreSQL stores unavailable ({reason}); SQLite works. For PostgreSQL: apt-get install "
                   "libpq5 (Debian) or any libpq 10+") from exc
    return f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__} implementation, libpq {psycopg.pq.version()})"


def check_wes() -> str:
    try:
        from wes.spec import available_versions, load_spec
    except ImportError as exc:
        raise RuntimeError(f"the WES checker is not in this build ({exc})") from exc
    spec = load_spec(None)
    return f"WES specification {spec.version} loaded ({len(spec.checks)} checks; installed: " \
           f"{', '.join(available_versions())})"


def check_site_config() -> str:
    from app.config import load_settings

    settings = load_settings()  # a malformed machine-wide file raises ConfigError naming the file and field
    where = settings.paths.site_config_file
    if settings.training:
        return f"training mode (no site configuration at {where})"
    cards = " then ".join(b.value for b in settings.card_backends)
    modules = ", ".join(f"{m}{'' if m.exists() else ' (missing)'}" for m in settings.pkcs11_modules) or "none"
    return (f"production: service {settings.service_url}, card removal {settings.card_removal.value}, cards {cards}, "
            f"PKCS#11 modules {modules} ({where})")


CHECKS: tuple[tuple[str, Callable[[], str]], ...] = (
    ("bundle", check_bundle), ("qt", check_qt), ("pcsc", check_pcsc), ("service", check_service),
    ("server", check_server_stack), ("postgresql", check_postgres_driver), ("wes", check_wes),
    ("site-config", check_site_config),
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Nothing to add: the self-test is the top-level ``--self-test`` option (``app.cli.build_parser``)."""


def run(args: argparse.Namespace, settings: Settings | None, *, stdout: TextIO | None = None,
        stdin: TextIO | None = None) -> int:
    """Runs before the site configuration is read (``settings`` is None): reading it is one of the checks."""
    return run_checks(stdout)


def run_checks(stdout: TextIO | None = None) -> int:
    """Run every check, print one line each, return the exit status (0: nothing failed)."""
    out = stdout or sys.stdout
    failed = []
    for name, check in CHECKS:
        try:
            print(f"ok    {name}: {check()}", file=out, flush=True)
        except Note as note:
            print(f"note  {name}: {note}", file=out, flush=True)
        except Exception as exc:
            failed.append(name)
            print(f"FAIL  {name}: {type(exc).__name__}: {exc}", file=out, flush=True)
    if failed:
        print(f"self-test FAILED: {', '.join(failed)}", file=out)
        return 1
    print(f"self-test passed ({len(CHECKS)} checks)", file=out)
    return 0
