"""A self-contained, printable HTML report (no scripts, no external files). It keeps to the HTML subset Qt's
rich text engine lays out (tables, bgcolor, simple CSS), because the PDF is printed from the same document."""

from __future__ import annotations

from html import escape

from wes.model import CheckResult, Report, Status
from wes.report import LABELS, MEANING, RULE, summary, verdict

COLOURS = {Status.PASS: ("#d7f0dd", "#0b6b2a"), Status.WARN: ("#fff1c2", "#7a5300"),
           Status.FAIL: ("#f9d2d2", "#9b1111"), Status.NOT_APPLICABLE: ("#eceff1", "#4a5560"),
           Status.ERROR: ("#f4d6f0", "#7a1670"), Status.WAIVED: ("#dde6fb", "#1d3f8f")}

_STYLE = """
body { font-family: 'DejaVu Sans', Arial, Helvetica, sans-serif; font-size: 9pt; color: #1b1f23; }
h1 { font-size: 16pt; margin: 0 0 4pt 0; }
h2 { font-size: 12pt; margin: 12pt 0 4pt 0; }
table.results { border-collapse: collapse; }
table.results th { background-color: #e4e8ec; text-align: left; padding: 4pt; }
table.results td { padding: 4pt; vertical-align: top; border-top: 1px solid #c9d1d9; }
.muted { color: #57606a; }
.small { font-size: 8.5pt; }
.id { font-family: 'DejaVu Sans Mono', monospace; }
@media print { a { color: #1b1f23; text-decoration: none; } tr { page-break-inside: avoid; } }
"""


def _badge(status: Status) -> str:
    bg, fg = COLOURS[status]
    return (f'<td bgcolor="{bg}" style="background-color:{bg}; color:{fg}; font-weight:bold; white-space:nowrap">'
            f"{LABELS[status]}</td>")


def _row(r: CheckResult) -> str:
    details = [f"<div>{escape(r.evidence)}</div>"]
    details += [f'<div class="small muted">Note: {escape(n)}</div>' for n in r.notes]
    if r.status in (Status.FAIL, Status.WARN, Status.ERROR, Status.WAIVED):
        link = f' <a href="{escape(r.link, quote=True)}">{escape(r.link)}</a>' if r.link else ""
        details.append(f'<div class="small"><b>Fix:</b> {escape(r.remediation)}{link}</div>')
    return (f"<tr>{_badge(r.status)}<td><b>{escape(r.title)}</b><br/><span class=\"id small muted\">{escape(r.id)}"
            f"</span></td><td class=\"small\">{escape(r.severity.value)}</td><td>{''.join(details)}</td></tr>")


def render_html(report: Report) -> str:
    ok = report.compliant
    bg, fg = COLOURS[Status.PASS if ok else Status.FAIL]
    facts = [("Workstation", report.hostname), ("Platform", report.platform), ("Mode", report.mode),
             ("WES spec", f"{report.spec_version} — {report.spec_title}"),
             ("Checker", f"Spine Desk {report.checker_version}"), ("Service", report.service_url or "none"),
             ("Checked", f"{report.started_at:%d %B %Y %H:%M:%S %Z} ({report.duration_ms:.0f} ms)")]
    fact_rows = "".join(f'<tr><td class="muted" width="110">{escape(k)}</td><td>{escape(v)}</td></tr>'
                        for k, v in facts)
    legend = "".join(f"<tr>{_badge(s)}<td class=\"small\">{escape(MEANING[s])}</td></tr>" for s in Status)
    notes = "".join(f'<p class="small">{escape(n)}</p>' for n in report.notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/>
<title>WES compliance report — {escape(report.hostname)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>Spine Desk — WES compliance report</h1>
<table width="100%" cellpadding="8" cellspacing="0"><tr><td bgcolor="{bg}" style="background-color:{bg}; color:{fg};
 font-size:14pt; font-weight:bold">{escape(verdict(report))}</td></tr></table>
<p class="small muted">{escape(summary(report))}.</p>
<table class="facts" cellspacing="0" cellpadding="1">{fact_rows}</table>
<h2>Checks</h2>
<table class="results" width="100%" cellspacing="0" cellpadding="4">
<tr><th width="10%">Status</th><th width="25%">Check</th><th width="11%">Severity</th><th>What was found</th></tr>
{''.join(_row(r) for r in report.results)}
</table>
{notes}
<h2>Reading this report</h2>
<p class="small">{escape(RULE)}</p>
<table cellspacing="2" cellpadding="3">{legend}</table>
</body></html>
"""
