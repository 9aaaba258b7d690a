"""Route tables: each feature lists its handlers as ``ROUTES`` — ``(method, path, handler)`` rows whose handler is
a module-level function ``handler(ctx, request) -> Response`` — and ``app.py`` registers every table here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from app.service.core.context import ServiceContext
from app.service.core.http import Request, Response, Router

Handler = Callable[[ServiceContext, Request], Response]
Route = tuple[str, str, Handler]


def register(router: Router, ctx: ServiceContext, routes: Sequence[Route]) -> None:
    """Serve every row of ``routes`` from ``router``, each handler bound to ``ctx``."""
    for method, path, handler in routes:
        router.add(method, path, partial(handler, ctx))
