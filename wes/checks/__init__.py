"""One check per WES requirement, each under a stable ID. A check reads probes through its :class:`Context`
and returns an :class:`Outcome`; the runner adds the spec's title, severity, remediation and link."""

from wes.checks import network, platform, smartcard, trust  # noqa: F401  (importing them registers the checks)
from wes.checks.base import CHECKS, ORDER, Check, Context, Outcome, check, version_tuple

__all__ = ["CHECKS", "ORDER", "Check", "Context", "Outcome", "check", "version_tuple"]
