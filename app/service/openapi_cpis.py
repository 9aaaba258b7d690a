"""OpenAPI paths for CP-IS (merged into the service's document by ``openapi.py``)."""

from __future__ import annotations

from typing import Any


def paths() -> dict[str, Any]:
    return {}
