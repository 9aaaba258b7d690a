"""Synthetic CP-IS content for seeded patients (deterministic per seed)."""

from __future__ import annotations

from collections.abc import Sequence

from app.service.store import PatientRow, Store


def seed_rows(store: Store, rows: Sequence[PatientRow], seed: int) -> int:
    """Write content for some of ``rows`` (one chunk of seeded patients); returns how many records were written."""
    return 0
