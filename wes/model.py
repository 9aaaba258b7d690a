"""What a WES check run produces: typed results and the report, with the one compliance rule. Rendering it as text
or HTML is :mod:`wes.report`'s job (``render_text``, ``render_html``), which reads this model, never the reverse."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 (a status, not a password)
    WARN = "warn"
    FAIL = "fail"
    NOT_APPLICABLE = "not_applicable"
    ERROR = "error"
    WAIVED = "waived"


class Severity(StrEnum):
    """How much a requirement matters. An ``advisory`` check never fails: the runner reports its fail as a warn,
    and an error in it does not stop a workstation being compliant."""

    CRITICAL = "critical"
    REQUIRED = "required"
    ADVISORY = "advisory"


@dataclass(frozen=True)
class Waiver:
    """An accepted exception from the waivers file: it turns a matching fail into ``waived`` until ``until``."""

    check_id: str
    reason: str
    who: str
    until: date
    modes: tuple[str, ...] = ()  # only in these modes ("training", "production"); empty: both

    def applies_in(self, mode: str) -> bool:
        return not self.modes or mode in self.modes

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"check": self.check_id, "reason": self.reason, "who": self.who,
                               "until": self.until.isoformat()}
        if self.modes:
            doc["modes"] = list(self.modes)
        return doc


@dataclass(frozen=True)
class CheckResult:
    """One requirement's verdict. ``evidence`` says what was found, so every verdict can be checked by a person."""

    id: str
    title: str
    status: Status
    severity: Severity
    evidence: str
    remediation: str = ""
    link: str = ""
    duration_ms: float = 0.0
    waiver: Waiver | None = None
    notes: tuple[str, ...] = ()

    @property
    def blocks_compliance(self) -> bool:
        if self.status is Status.FAIL:
            return True
        return self.status is Status.ERROR and self.severity is not Severity.ADVISORY

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "status": self.status.value, "severity": self.severity.value,
            "evidence": self.evidence, "remediation": self.remediation, "link": self.link,
            "duration_ms": round(self.duration_ms, 1), "waiver": self.waiver.to_json() if self.waiver else None,
            "notes": list(self.notes),
        }


REPORT_FORMAT = 1  # bump when the JSON layout changes incompatibly (documented in docs/wes.md)


@dataclass(frozen=True)
class Report:
    """The outcome of :func:`wes.run_checks`.

    ``compliant`` is True when no check failed and no check that is not advisory ended in an error; warnings,
    waived fails and not-applicable checks do not count against it.
    """

    results: list[CheckResult]
    mode: str
    spec_version: str
    spec_title: str
    checker_version: str
    hostname: str
    platform: str
    started_at: datetime
    duration_ms: float
    service_url: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def compliant(self) -> bool:
        return not any(r.blocks_compliance for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        """The results that make the workstation non-compliant (fails, and errors in non-advisory checks)."""
        return [r for r in self.results if r.blocks_compliance]

    @property
    def warnings(self) -> list[CheckResult]:
        return [r for r in self.results if r.status is Status.WARN]

    def counts(self) -> dict[str, int]:
        return {s.value: sum(1 for r in self.results if r.status is s) for s in Status}

    def result(self, check_id: str) -> CheckResult:
        for r in self.results:
            if r.id == check_id:
                return r
        raise KeyError(check_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "compliant": self.compliant,
            "hostname": self.hostname,
            "platform": self.platform,
            "mode": self.mode,
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "duration_ms": round(self.duration_ms, 1),
            "spec_version": self.spec_version,
            "spec_title": self.spec_title,
            "checker_version": self.checker_version,
            "service_url": self.service_url,
            "counts": self.counts(),
            "failures": [r.id for r in self.failures],
            "notes": list(self.notes),
            "results": [r.to_json() for r in self.results],
        }
