"""Resource versions on the wire: the weak ETag ``W/"n"`` a read answers and the ``If-Match`` an update sends.

PDS Patients and flags share the rules: ``If-Match`` missing or not ``W/"n"`` -> 412 PRECONDITION_FAILED; not
the current version -> 409 RESOURCE_VERSION_MISMATCH.
"""

from __future__ import annotations

import re

from app.service.core.outcome import FhirError

_IF_MATCH = re.compile(r'W/"([0-9]{1,9})"')


def etag(version: int) -> str:
    return f'W/"{int(version)}"'


def parse_if_match(value: str | None) -> int:
    match = _IF_MATCH.fullmatch((value or "").strip())
    if match is None:
        raise FhirError("PRECONDITION_FAILED",
                        "Invalid update with error - If-Match header must be supplied to update this resource")
    return int(match.group(1))


def check_version(if_match: str | None, current_version: int) -> int:
    """The version the client read; raises 412 (missing/malformed) or 409 (stale)."""
    version = parse_if_match(if_match)
    if version != current_version:
        raise FhirError("RESOURCE_VERSION_MISMATCH",
                        "Invalid update with error - This resource has changed since you last read. "
                        "Please re-read and try again with the new version number.")
    return version
