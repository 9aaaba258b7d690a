"""What both ends of the connection agree on: the login protocol's constants, resource paths and header names.

Imported by the service (``app.service``) and its client (``app.client``) alike, so neither imports the other.
"""

from __future__ import annotations

LOGIN_CONTEXT = b"SpineDesk-Login-v1\x00"
AUTH_CHALLENGE_PATH = "/auth/challenge"
AUTH_SESSION_PATH = "/auth/session"
PDS_BASE = "/personal-demographics/FHIR/R4"
SCR_BASE = "/summary-care-record/FHIR/R4"
FLAGS_BASE = "/patient-flags/FHIR/R4"
CPIS_BASE = "/cpis/FHIR/R4"

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"

HEADER_REQUEST_ID = "X-Request-ID"
HEADER_CORRELATION_ID = "X-Correlation-ID"
HEADER_URID = "NHSD-Session-URID"


def login_message(nonce: str) -> bytes:
    """What the card signs: a fixed context (never a bare value another protocol might sign too) + the nonce."""
    return LOGIN_CONTEXT + nonce.encode("ascii")
