"""OpenAPI paths for Reasonable Adjustment Flags (merged into the service document by ``openapi.py``)."""

from __future__ import annotations

from typing import Any


def paths() -> dict[str, Any]:
    return {}
