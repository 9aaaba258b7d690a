"""The routes the service really serves: ``(method, path template)`` from the router ``build_asgi`` runs."""

from __future__ import annotations

from app.service.app import build_router
from app.service.app import openapi_document as document

Route = tuple[str, str]


class _Context:
    """Routes are registered without touching the context's parts (handlers use them only when called)."""

    base_url = ""

    def __getattr__(self, name: str) -> None:
        return None


def served(prefix: str = "") -> set[Route]:
    """Every (method, path template) the service's router serves, optionally only those under ``prefix``."""
    routes = build_router(_Context(), document()).routes()  # type: ignore[arg-type]
    return {(m, p) for m, p in routes if p.startswith(prefix)}
