"""GET /Patient/{id}: which stored record answers a retrieval, following PDS's rules for merged records.

* not a valid NHS number -> 400 INVALID_RESOURCE_ID;
* no record -> 404 RESOURCE_NOT_FOUND;
* superseded (merged into another NHS number) -> the superseding record, under its own id (clients notice the
  different ``id``), following chains of merges;
* invalidated and not superseded -> 404 INVALIDATED_RESOURCE.

The store is reached only through the ``get_row`` callable, so this stays pure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from app.nhs_number import is_valid
from app.service.core.outcome import invalid_resource_id, invalidated_resource, resource_not_found


class StoredPatient(Protocol):
    """What resolving needs of a stored record (``PatientRow`` and ``PatientJson`` both have it)."""

    @property
    def superseded_by(self) -> str | None: ...
    @property
    def invalidated(self) -> bool: ...


R = TypeVar("R", bound=StoredPatient)

MAX_MERGES = 8  # a longer chain (or a loop) means damaged data: report the record as not found


def resolve_patient(nhs_number: str, get_row: Callable[[str], R | None]) -> R:
    """The row to return for ``GET /Patient/{nhs_number}``; raises ``FhirError`` (400/404) otherwise."""
    if not is_valid(nhs_number):
        raise invalid_resource_id()
    current = nhs_number
    for _ in range(MAX_MERGES):
        row = get_row(current)
        if row is None:
            raise resource_not_found(nhs_number)
        if row.superseded_by:
            current = row.superseded_by
            continue
        if row.invalidated:
            raise invalidated_resource(nhs_number)
        return row
    raise resource_not_found(nhs_number)
