"""The storage engines' common ground: the core storage interface (``Store``), rows, errors, the audit chain,
group commit and the migrations runner. Never imports a feature; ``app.service.storage`` composes the features'
SQL over SQLite or PostgreSQL and opens a store (``open_store``)."""

from __future__ import annotations

from .audit_writer import AuditWriter
from .base import (
    AuditVerification,
    Challenge,
    RoleProfile,
    Session,
    SessionPrincipal,
    Store,
    StoredResponse,
    User,
)
from .errors import (
    AlreadyExists,
    NotFound,
    SchemaError,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    StoreUrlError,
    VersionConflict,
)
from .rows import Answer, AuditEntry, AuditRecord, PatientJson, PatientRow, SearchFilter
from .sqlbase import DB_WAIT_SECONDS

__all__ = [
    "DB_WAIT_SECONDS", "AlreadyExists", "Answer", "AuditEntry", "AuditRecord", "AuditVerification", "AuditWriter",
    "Challenge", "NotFound", "PatientJson", "PatientRow", "RoleProfile", "SchemaError", "SearchFilter", "Session",
    "SessionPrincipal", "Store", "StoreError", "StoreTimeout", "StoreUnavailable", "StoreUrlError", "StoredResponse",
    "User", "VersionConflict",
]
