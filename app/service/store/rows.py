"""Typed rows exchanged between the service's domain and its storage (both SQLite and PostgreSQL).

The domain builds rows (the features' rules); the store persists and indexes them; neither knows the other's
internals. Search columns are normalised by the domain so that both stores compare plain strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class PatientRow:
    """One PDS patient: the full (unrestricted) FHIR Patient JSON plus the columns search uses."""

    nhs_number: str  # 10 digits, modulus-11 valid
    version: int  # meta.versionId, ETag W/"n"
    resource: dict[str, Any]  # the FHIR R4 Patient as stored (never stripped; stripping happens on the way out)
    family: str  # upper-case ASCII, accents folded, no punctuation ("O'NEILL" -> "ONEILL")
    given: str  # first given name, same normalisation
    family_phonetic: str  # phonetic key of family (domain's choice of algorithm), for fuzzy search
    given_phonetic: str
    birth_date: date | None
    gender: str  # "male" | "female" | "other" | "unknown"
    postcode: str | None  # upper-case, no spaces ("LS1 6AE" -> "LS16AE")
    gp_ods: str | None  # ODS code of the registered GP practice
    restricted: bool  # meta.security R: never found by postcode or GP, details stripped on output
    deceased: bool
    superseded_by: str | None = None  # merged into another NHS number
    invalidated: bool = False


@dataclass(frozen=True, slots=True)
class PatientJson:
    """A stored patient as its JSON text, undecoded: what a read serves as it is when nothing must be stripped.

    The text is the stored resource (``meta.versionId`` equal to ``version``); PostgreSQL returns it in its own
    canonical spacing and key order."""

    nhs_number: str
    version: int
    json: str
    restricted: bool
    superseded_by: str | None = None
    invalidated: bool = False


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """What a store must pre-filter on; the domain scores and ranks what comes back.

    Empty fields do not filter. ``family_prefix`` is a normalised prefix (wildcard searches), ``family`` an exact
    normalised value; with ``fuzzy`` the store matches on the phonetic keys instead. Restricted patients are
    excluded by the store whenever ``postcode`` or ``gp_ods`` is set. Superseded and invalidated records are
    never returned by search.
    """

    family: str | None = None
    family_prefix: str | None = None
    family_phonetic: str | None = None
    given_phonetic: str | None = None
    birth_date_from: date | None = None
    birth_date_to: date | None = None
    gender: str | None = None
    postcode: str | None = None
    gp_ods: str | None = None
    fuzzy: bool = False
    limit: int = 200


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One access to patient data. ``prev_hash``/``hash`` chain every record to the one before it."""

    seq: int
    at: datetime
    user_id: str
    role_profile_id: str
    org: str
    action: str  # e.g. "pds.read", "pds.search", "pds.patch"
    nhs_number: str | None
    request_id: str
    outcome: str  # HTTP status as text, or a short code
    prev_hash: str
    hash: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Answer:
    """A response to store for an ``X-Request-ID`` in the same transaction as the change it reports."""

    request_id: str
    user_id: str
    method: str
    path: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    request_hash: str = ""  # SHA-256 (hex) of the request it answers: a repeat must be that request


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What a caller knows about one access; the store adds ``seq``, ``prev_hash`` and ``hash`` (and ``at``)."""

    user_id: str
    role_profile_id: str
    org: str
    action: str
    nhs_number: str | None
    request_id: str
    outcome: str
    details: dict[str, Any] = field(default_factory=dict)
    at: datetime | None = None  # None: the time the record is written, taken under the chain lock
