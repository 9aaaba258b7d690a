"""The terminal report: headline verdict, one block per check with its evidence, fixes for what needs them."""

from __future__ import annotations

import textwrap

from wes.model import Report, Status
from wes.report import LABELS, RULE, summary, verdict

_WIDTH = 100


def _wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, _WIDTH, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False,
                         break_long_words=False) or [indent]


def render_text(report: Report) -> str:
    lines = [f"WES check: {verdict(report)}", ""]
    facts = [("Host", report.hostname), ("Platform", report.platform), ("Mode", report.mode),
             ("Spec", f"{report.spec_version} ({report.spec_title})"),
             ("Checker", f"Spine Desk {report.checker_version}"),
             ("Service", report.service_url or "none"),
             ("Run", f"{report.started_at:%Y-%m-%d %H:%M:%S %Z}, {report.duration_ms:.0f} ms")]
    lines += [f"  {k:<9}{v}" for k, v in facts]
    lines.append("")
    for r in report.results:
        lines.append(f"{LABELS[r.status]:<7}{r.id:<15}{r.severity.value:<10}{r.title}")
        lines += _wrap(r.evidence, " " * 7)
        for note in r.notes:
            lines += _wrap(f"Note: {note}", " " * 7)
        if r.status in (Status.FAIL, Status.WARN, Status.ERROR, Status.WAIVED):
            lines += _wrap(f"Fix: {r.remediation}" + (f" ({r.link})" if r.link else ""), " " * 7)
    lines += ["", f"Summary: {summary(report)}."]
    lines += [f"Note: {n}" for n in report.notes]
    lines += _wrap(RULE, "")
    return "\n".join(lines) + "\n"
