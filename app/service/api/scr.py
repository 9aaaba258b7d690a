"""Summary Care Record routes."""

from __future__ import annotations

from app.service.api.context import ServiceContext
from app.service.http import Router


def register(router: Router, ctx: ServiceContext) -> None:
    pass
