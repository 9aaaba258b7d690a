"""The storage interface for Reasonable Adjustment Flags (Patient Flags model): flags, their history.

A ``typing.Protocol``: what flags needs of the store
(``app.service.storage`` implements it); the common rules in ``app/service/store/base.py`` apply.
Methods that change data take ``audit`` entries (and an ``answer`` where the request is idempotent) and commit
them in the same transaction as the change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from app.service.store.rows import Answer, AuditEntry


@dataclass(frozen=True, slots=True)
class FlagRow:
    """One version of one flag: the full FHIR Flag (content never stripped; views strip on the way out)."""

    id: str
    nhs_number: str
    category: str  # PatientFlagCategory code, e.g. "NRAF"
    status: str  # "active" | "inactive" | "entered-in-error"
    version: int  # meta.versionId, ETag W/"n"
    resource: dict[str, Any]
    updated_at: datetime


class FlagStore(Protocol):
    def get_flag(self, flag_id: str) -> FlagRow | None:
        """The flag's current version (removed flags included)."""

    def flags_for_patient(self, nhs_number: str, *, category: str = "NRAF",
                          statuses: Sequence[str] | None = None) -> list[FlagRow]:
        """The patient's flags of ``category`` (any status unless ``statuses``), active first, newest first."""

    def flag_history(self, flag_id: str) -> list[FlagRow]:
        """Every version of the flag, newest first; empty if there is no such flag."""

    def create_flag(self, row: FlagRow, *, audit: Sequence[AuditEntry] = (), answer: Answer | None = None
                    ) -> FlagRow:
        """Insert version 1 (``row.version`` must be 1). Raises ``AlreadyExists`` if the id is taken or the
        patient already has an active flag of that category (then writes none of it)."""

    def update_flag(self, flag_id: str, expected_version: int, row: FlagRow, *, audit: Sequence[AuditEntry] = (),
                    answer: Answer | None = None) -> FlagRow:
        """Compare-and-swap to ``row`` (version ``expected_version + 1``), keeping the old version in the history.
        Raises ``VersionConflict`` (stale) or ``NotFound`` and then writes none of it."""

    def put_flags(self, rows: Iterable[FlagRow]) -> int:
        """Bulk insert version-1 flags (seeding); rows whose id, or whose patient's active flag, already exists
        are skipped. Returns how many rows were given."""
