"""OperationOutcome errors in the shape NHS's PDS FHIR API returns them.

Every error is one issue: ``severity``, a FHIR issue-type ``code``, ``details.coding`` with the Spine code system
(version "1"), the Spine code and its display text, and optional ``diagnostics``. Display texts are the ones
NHS's PDS specification and its own test suites show, where they show one; the few the published material
never shows are marked "ours" below.

``FhirError`` is the typed error the domain raises; the HTTP layer turns it into ``status`` + ``to_outcome()``
(and a ``Retry-After`` header when ``retry_after`` is set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.errors import AppError

SPINE_ERROR_SYSTEM = "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode"
SPINE_ERROR_VERSION = "1"


@dataclass(frozen=True, slots=True)
class SpineCode:
    """One Spine error code: its default HTTP status, FHIR issue type and display text."""

    code: str
    status: int
    issue_code: str
    display: str


_CODES = (
    SpineCode("INVALID_RESOURCE_ID", 400, "value", "Resource Id is invalid"),
    SpineCode("UNSUPPORTED_SERVICE", 400, "not-supported", "Unsupported Service"),
    SpineCode("MISSING_VALUE", 400, "required", "Required value is missing"),
    SpineCode("INVALID_VALUE", 400, "value", "Provided value is invalid"),
    SpineCode("INVALID_SEARCH_DATA", 400, "value", "Search data is invalid"),
    SpineCode("ADDITIONAL_PROPERTIES", 400, "structure", "Additional properties are not allowed"),  # ours
    SpineCode("INVALID_UPDATE", 400, "structure", "Update is invalid"),
    SpineCode("VALIDATION_ERROR", 400, "invalid", "A parameter or value has resulted in a validation error"),  # ours
    SpineCode("ACCESS_DENIED", 403, "forbidden", "Access Denied - Forbidden"),  # ours; 401 text below
    SpineCode("FORBIDDEN_UPDATE", 403, "forbidden", "Forbidden update"),  # ours
    SpineCode("RESOURCE_NOT_FOUND", 404, "not-found", "Resource not found"),  # ours
    SpineCode("INVALIDATED_RESOURCE", 404, "not-found",
              "Resource that has been marked as invalid was requested"),  # ours
    SpineCode("RESOURCE_VERSION_MISMATCH", 409, "conflict", "Resource version supplied does not match actual version"),
    SpineCode("PRECONDITION_FAILED", 412, "structure", "Required condition was not fulfilled"),
    SpineCode("UNSUPPORTED_MEDIA_TYPE", 415, "not-supported", "Unsupported media type"),  # ours
    SpineCode("TOO_MANY_REQUESTS", 429, "throttled", "You have exceeded your application's rate limit"),  # ours
    SpineCode("SERVICE_UNAVAILABLE", 503, "timeout", "Service unavailable"),
    SpineCode("UNABLE_TO_CALL_SERVICE", 408, "timeout", "Unable to call service"),  # ours
    SpineCode("TOO_MANY_VALUES_SUBMITTED", 400, "invalid", "Too many values submitted"),  # ours
    SpineCode("TOO_FEW_VALUES_SUBMITTED", 400, "invalid", "Too few values submitted"),  # ours
    SpineCode("UNSUPPORTED_VALUE", 400, "value", "Unsupported value"),  # ours
    SpineCode("TOO_MANY_MATCHES", 200, "multiple-matches", "Too Many Matches"),
)
CODES: dict[str, SpineCode] = {c.code: c for c in _CODES}

# The 401 form of ACCESS_DENIED, exactly as NHS's PDS integration tests expect it.
ACCESS_DENIED_UNAUTHORISED = "Access Denied - Unauthorised"


def issue(code: str, diagnostics: str | None = None, *, severity: str = "error", issue_code: str | None = None,
          display: str | None = None, expression: str | None = None) -> dict[str, Any]:
    """One ``OperationOutcome.issue`` for a Spine code, keys in the order NHS's examples use."""
    spec = CODES[code]
    item: dict[str, Any] = {
        "severity": severity,
        "code": issue_code or spec.issue_code,
        "details": {"coding": [{
            "system": SPINE_ERROR_SYSTEM,
            "version": SPINE_ERROR_VERSION,
            "code": code,
            "display": display or spec.display,
        }]},
    }
    if diagnostics is not None:
        item["diagnostics"] = diagnostics
    if expression is not None:
        item["expression"] = expression
    return item


def operation_outcome(*issues: dict[str, Any]) -> dict[str, Any]:
    if not issues:
        raise ValueError("an OperationOutcome needs at least one issue")
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


def too_many_matches() -> dict[str, Any]:
    """The 200 response PDS gives when more patients match than ``_max-results`` allows."""
    return operation_outcome(issue("TOO_MANY_MATCHES", severity="information"))


class FhirError(AppError):
    """An error that becomes an HTTP status plus an OperationOutcome.

    ``spine_code`` picks the defaults (status, issue type, display); any of them can be overridden, e.g.
    ``FhirError("ACCESS_DENIED", "...", status=401)`` or INVALID_VALUE with 403 in application-restricted mode.
    """

    def __init__(self, spine_code: str, diagnostics: str | None = None, *, status: int | None = None,
                 issue_code: str | None = None, display: str | None = None, severity: str = "error",
                 retry_after: int | None = None, expression: str | None = None) -> None:
        spec = CODES.get(spine_code)
        if spec is None:
            raise ValueError(f"unknown Spine error code {spine_code!r}")
        super().__init__(diagnostics or spec.display)
        self.spine_code = spine_code
        self.status = status if status is not None else spec.status
        self.issue_code = issue_code or spec.issue_code
        if display is None and spine_code == "ACCESS_DENIED" and self.status == 401:
            display = ACCESS_DENIED_UNAUTHORISED
        self.display = display or spec.display
        self.diagnostics = diagnostics
        self.severity = severity
        self.retry_after = retry_after
        self.expression = expression

    def to_outcome(self) -> dict[str, Any]:
        return operation_outcome(issue(self.spine_code, self.diagnostics, severity=self.severity,
                                       issue_code=self.issue_code, display=self.display,
                                       expression=self.expression))

    def __repr__(self) -> str:
        return f"FhirError({self.spine_code!r}, {self.diagnostics!r}, status={self.status})"


# --- the diagnostics texts PDS uses (kept here so every caller words them the same way) --------------------


def quote_value(value: object, limit: int = 60) -> str:
    """A request value made safe to echo in diagnostics: printable, single line, bounded length."""
    text = str(value)
    text = "".join(ch if ch.isprintable() else "\ufffd" for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def invalid_value(field: str, value: object, *, where: str = "field", status: int | None = None) -> FhirError:
    """INVALID_VALUE: ``Invalid value - 'mal' in field 'gender'`` (the PDS specification's own example)."""
    return FhirError("INVALID_VALUE", f"Invalid value - '{quote_value(value)}' in {where} '{field}'", status=status)


def missing_value(what: str, *, issue_code: str = "required") -> FhirError:
    """MISSING_VALUE: ``Missing value - 'birth_date/birth_date_range_start/birth_date_range_end'``.

    The specification shows issue type ``structure`` for the search-parameter case and ``required`` for a
    missing header; callers pick.
    """
    return FhirError("MISSING_VALUE", f"Missing value - '{what}'", issue_code=issue_code)


def invalid_search_data(reason: str) -> FhirError:
    """INVALID_SEARCH_DATA: ``Invalid search data provided - '<reason>'``."""
    return FhirError("INVALID_SEARCH_DATA", f"Invalid search data provided - '{reason}'")


def invalid_update(reason: str) -> FhirError:
    """INVALID_UPDATE: ``Invalid update with error - <reason>``."""
    return FhirError("INVALID_UPDATE", f"Invalid update with error - {reason}")


def additional_properties(names: list[str]) -> FhirError:
    """ADDITIONAL_PROPERTIES worded as PDS words it for unknown query parameters."""
    quoted = ", ".join(f"'{quote_value(n, 40)}'" for n in names)
    verb = "was" if len(names) == 1 else "were"
    return FhirError("ADDITIONAL_PROPERTIES",
                     f"Invalid request with error - Additional properties are not allowed ({quoted} {verb} unexpected)")


def invalid_resource_id() -> FhirError:
    """INVALID_RESOURCE_ID exactly as NHS's sandbox returns it: no diagnostics (the id is not echoed)."""
    return FhirError("INVALID_RESOURCE_ID")


def resource_not_found(nhs_number: str) -> FhirError:
    return FhirError("RESOURCE_NOT_FOUND", f"Patient '{nhs_number}' not found")


def invalidated_resource(nhs_number: str) -> FhirError:
    return FhirError("INVALIDATED_RESOURCE", f"Patient '{nhs_number}' has been invalidated")


def service_unavailable(retry_after: int) -> FhirError:
    """503 with the specification's own diagnostics text; send ``Retry-After: <retry_after>`` with it."""
    return FhirError("SERVICE_UNAVAILABLE",
                     "The downstream domain processing has not completed within the configured timeout period. "
                     "Using the same 'X-Request-ID' header, retry your request after the time specified by the "
                     "'Retry-After' response header.", retry_after=retry_after)
