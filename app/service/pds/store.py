"""The storage interface for PDS: patient reads, searches, versioned updates, related people and bulk loads.

A ``typing.Protocol``: what PDS needs of the store (``app.service.storage`` implements it; its SQL is the
patient part of ``app/service/storage/composed.py``); the common rules in ``app/service/store/base.py`` apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from app.service.store.rows import Answer, AuditEntry, PatientRow, SearchFilter


class PdsStore(Protocol):
    """Reading one patient (``get_patient``, ``get_patient_json``) is the core ``Store``'s: every feature does."""

    def put_patients(self, rows: Iterable[PatientRow], *, analyze: bool = True) -> int:
        """Insert or replace rows in bulk (seeding); returns how many were written. Streams large iterables.
        A large load refreshes the planner's statistics unless ``analyze`` is False (a caller loading many
        chunks calls :meth:`analyze` once at the end)."""

    def analyze(self) -> None:
        """Refresh the query planner's statistics (after bulk loads)."""

    def update_patient(self, nhs_number: str, expected_version: int, row: PatientRow, *,
                       audit: Sequence[AuditEntry] = (), answer: Answer | None = None) -> PatientRow:
        """Compare-and-swap: store ``row`` iff the stored version is ``expected_version``.

        ``row.version`` must be ``expected_version + 1`` (the domain bumps ``meta.versionId`` with it).
        ``audit`` records and the request's ``answer`` commit in the SAME transaction as the change, so a crash
        can never leave a change unaudited or a done change unanswered. Raises ``VersionConflict`` (stale) or
        ``NotFound`` (and then writes none of it).
        """

    def search(self, f: SearchFilter) -> list[PatientRow]:
        """Pre-filtered candidates, at most ``f.limit``, in NHS-number order (the domain scores and ranks).

        Superseded and invalidated records never appear; restricted ones never when ``postcode`` or ``gp_ods``
        is set. Without ``fuzzy``: ``family`` (exact) / ``family_prefix``; with ``fuzzy``: the phonetic keys
        instead of those two. When more than ``limit`` rows match, which ``limit`` come back is unspecified: ask
        for one more than you can show to detect "too many matches".
        """

    def related_persons(self, nhs_number: str) -> list[dict[str, Any]]:
        """The patient's FHIR RelatedPerson resources, in the order they were put.

        Kept in their own table, not inside the Patient resource: they are separate FHIR resources with their own
        ids, the stored Patient stays exactly the Patient, and changing them does not bump the Patient's version.
        """

    def put_related_persons(self, items: Iterable[tuple[str, Sequence[dict[str, Any]]]]) -> int:
        """For each ``(nhs_number, resources)``, replace that patient's related persons; returns patients done."""
