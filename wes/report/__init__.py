"""Report renderers: plain text for terminals, self-contained printable HTML (also the PDF's source)."""

from __future__ import annotations

from wes.model import Report, Status

LABELS = {Status.PASS: "PASS", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.NOT_APPLICABLE: "N/A",
          Status.ERROR: "ERROR", Status.WAIVED: "WAIVED"}
MEANING = {
    Status.PASS: "meets the requirement",
    Status.WARN: "works, but needs attention (does not affect compliance)",
    Status.FAIL: "does not meet the requirement",
    Status.NOT_APPLICABLE: "does not apply here, or could not be checked because another check failed",
    Status.ERROR: "the check could not run (counts against compliance unless the check is advisory)",
    Status.WAIVED: "a fail accepted in the waivers file, until the date shown",
}
RULE = ("Compliant means: no check failed, and no check other than an advisory one ended in an error. "
        "Warnings, waived fails and checks that do not apply do not count against it.")


def verdict(report: Report) -> str:
    if report.compliant:
        return "COMPLIANT"
    ids = ", ".join(r.id for r in report.failures)
    return f"NOT COMPLIANT ({len(report.failures)} blocking: {ids})"


def summary(report: Report) -> str:
    counts = report.counts()
    return ", ".join(f"{counts[s.value]} {LABELS[s].lower()}" for s in Status if counts[s.value])
