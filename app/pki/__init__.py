"""Certificates: the training CA, card certificates, and chain / expiry / revocation checks (cryptography).

No Qt, no HTTP, no smartcard I/O: callers hand in certificates and get back frozen verdicts or typed errors.
"""

from app.pki.ca import TrainingCA
from app.pki.identity import IdentityAttribute, IdentityPolicy, nhs_uuid, require_identity, subject_identity
from app.pki.validation import (
    RENEWAL_WINDOW_DAYS,
    Status,
    TrustStore,
    Verdict,
    card_uuid,
    load_certificate,
    require_trusted,
    validate,
)

__all__ = [
    "RENEWAL_WINDOW_DAYS",
    "IdentityAttribute",
    "IdentityPolicy",
    "Status",
    "TrainingCA",
    "TrustStore",
    "Verdict",
    "card_uuid",
    "load_certificate",
    "nhs_uuid",
    "require_identity",
    "require_trusted",
    "subject_identity",
    "validate",
]
