"""The Warrantied Environment Specification and its checker. No Qt; no app.ui.

The client's gate::

    from wes import run_checks, Report, CheckResult, Status

    report = run_checks(mode="training", service_url="http://127.0.0.1:8443", on_progress=show)
    if not report.compliant:
        for result in report.failures: ...

``on_progress`` is called from worker threads (see :func:`wes.runner.run_checks`).
"""

from wes.model import CheckResult, Report, Severity, Status, Waiver
from wes.runner import run_checks

__all__ = ["CheckResult", "Report", "Severity", "Status", "Waiver", "run_checks"]
