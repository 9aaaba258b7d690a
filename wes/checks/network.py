"""tls and net.spine."""

from __future__ import annotations

import json
import re

from wes.checks.base import Context, Outcome, check
from wes.model import Status
from wes.probes.net import host_port

NO_URL = "No service URL to check: the training service runs inside the client on this machine."


def _aead(version: str, cipher: str | None) -> bool:
    if version == "TLSv1.3":
        return True
    return cipher is not None and any(x in cipher.upper() for x in ("GCM", "CCM", "CHACHA20"))


@check("tls")
def tls(ctx: Context) -> Outcome:
    url = ctx.service_url
    if not url:
        return Outcome(Status.NOT_APPLICABLE, NO_URL)
    host, port, scheme = host_port(url)
    if scheme != "https":
        if ctx.production:
            return Outcome(Status.FAIL, f"The service URL {url} is plain HTTP: nothing is encrypted.")
        return Outcome(Status.NOT_APPLICABLE, f"The training service at {url} is plain HTTP on this machine; "
                       "TLS applies to a production service.")
    facts = ctx.probes.tls(url)
    if facts.error:
        return Outcome(Status.NOT_APPLICABLE, f"Not checked: {host}:{port} could not be reached ({facts.error}; "
                       "see net.spine).")
    policy = ctx.spec.tls
    lines = [f"{a.version} {'accepted (' + (a.cipher or '?') + ')' if a.accepted else a.detail}"
             for a in facts.attempts]
    found = f"{host}:{port}: " + "; ".join(lines)
    bad = [a.version for a in facts.attempts if a.accepted and a.version in policy.refused]
    good = [a for a in facts.attempts if a.accepted and a.version in policy.accepted]
    untested = [a.version for a in facts.attempts if not a.tested and a.version in policy.refused]
    if bad:
        return Outcome(Status.FAIL, f"{found}. The service accepts {', '.join(bad)}, which the spec forbids.")
    if not good:
        return Outcome(Status.FAIL, f"{found}. No handshake at {' or '.join(policy.accepted)} succeeded.")
    weak = [f"{a.version} {a.cipher}" for a in good if policy.require_aead and not _aead(a.version, a.cipher)]
    if weak:
        return Outcome(Status.WARN, f"{found}. Not an AEAD cipher suite: {', '.join(weak)}.")
    if untested:
        return Outcome(Status.WARN, f"{found}. Could not test {', '.join(untested)} from this machine, so "
                       "their refusal is not confirmed.")
    return Outcome(Status.PASS, found + ".")


@check("net.spine")
def net_spine(ctx: Context) -> Outcome:
    url = ctx.service_url
    if not url:
        return Outcome(Status.NOT_APPLICABLE, NO_URL)
    facts = ctx.probes.service(url)
    target = f"{url.rstrip('/')}/_status"
    if not facts.reachable:
        return Outcome(Status.FAIL, f"{target}: {facts.error}.")
    found = f"{target} answered HTTP {facts.status_code} in {facts.latency_ms:.0f} ms"
    if facts.status_code != 200:
        return Outcome(Status.FAIL, f"{found}: {facts.body[:160] or 'no body'}.")
    if _reported(facts.body) == "warn":  # answering, but it says something needs attention (e.g. CP-IS delivery)
        return Outcome(Status.WARN, f"{found} and reports a problem: {_problems(facts.body)}.")
    limit = ctx.spec.thresholds.service_latency_warn_ms
    if facts.latency_ms is not None and facts.latency_ms > limit:
        return Outcome(Status.WARN, f"{found}: slower than {limit:g} ms.")
    return Outcome(Status.PASS, f"{found}.")


_STATUS = re.compile(r'^\s*\{\s*"status"\s*:\s*"(\w+)"')


def _reported(body: str) -> str | None:
    """The health status the service reports (``{"status": "pass" | "warn" | "fail", …}``); read from the start
    of the body, which the probe may have cut short."""
    found = _STATUS.match(body or "")
    return found.group(1) if found else None


def _problems(body: str) -> str:
    try:
        checks = json.loads(body).get("checks", {})
        lines = [f"{name}: {entry.get('output') or entry.get('status')}" for name, entries in checks.items()
                 for entry in entries if entry.get("status") != "pass"]
    except (ValueError, AttributeError, TypeError):
        lines = []
    return "; ".join(lines) or body[:200]
