"""Run every check concurrently, each in its own thread, within the spec's time-out; build the report."""

from __future__ import annotations

import logging
import platform as _platform
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from app import __version__
from app.config import Mode, Settings, load_settings
from wes.checks import CHECKS, ORDER, Context, Outcome
from wes.errors import SpecError
from wes.model import CheckResult, Report, Severity, Status, Waiver
from wes.probes import CachedProbes, Probes, default_probes, platform_name
from wes.probes.facts import ScreenFacts
from wes.spec import Spec, load_spec
from wes.waivers import apply_waivers, default_waivers_path, load_waivers

log = logging.getLogger(__name__)
Progress = Callable[[CheckResult], None]


def run_checks(*, mode: str = "training", spec_version: str | None = None, service_url: str | None = None,
               on_progress: Progress | None = None, waivers_path: Path | None = None,
               settings: Settings | None = None, probes: Probes | None = None, spec: Spec | None = None,
               now: datetime | None = None, checks: Sequence[str] | None = None, timeout: float | None = None,
               platform: str | None = None, hostname: str | None = None,
               screen: tuple[int, int] | None = None) -> Report:
    """Check this workstation against the WES and return the :class:`Report`; never raises for a failed or
    crashed check (that check's result says ``error``).

    ``mode`` is ``"training"`` or ``"production"``; a machine with a site configuration (production settings)
    is always checked as production. ``service_url`` defaults to the site's. ``waivers_path`` defaults to
    ``wes-waivers.toml`` beside the site configuration when that file exists; a path given must exist. The call
    blocks until every check has finished or the spec's time-out (5 s) has passed: call it off the GUI thread.
    ``on_progress`` is called once per check as it finishes, **from the check's worker thread** (or, for a check
    that timed out, from the thread that called ``run_checks``), never after ``run_checks`` returns: a GUI must
    hand the result over to its own thread (e.g. a queued Qt signal). An exception raised by ``on_progress`` is
    logged and ignored.

    Raises :class:`wes.errors.SpecError` / :class:`wes.errors.WaiverError` when the spec or waivers file cannot
    be used, and ``ValueError`` for an unknown mode or check ID. The other keyword arguments inject
    collaborators for tests and the composition root: ``settings``, ``probes``, ``spec``, ``now``, ``checks``
    (a subset of IDs), ``timeout`` (seconds for the whole run), ``platform``, ``hostname``; and ``screen``:
    the desktop client passes the size of the screen it shows its window on (Qt knows it better than any probe).
    """
    if mode not in ("training", "production"):
        raise ValueError(f"mode must be 'training' or 'production', not {mode!r}")
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    settings = settings or load_settings()
    if settings.mode is Mode.PRODUCTION:
        mode = "production"
    spec = spec or load_spec(spec_version or settings.wes_spec_version)
    _check_spec_covers(spec)
    ids = list(checks) if checks is not None else list(ORDER)
    unknown = [i for i in ids if i not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check ID(s): {', '.join(unknown)}")
    if waivers_path is None:  # the site's waivers file, when there is one
        site = default_waivers_path(settings.paths.site_config_file)
        waivers_path = site if site.exists() else None
    waivers = load_waivers(waivers_path, CHECKS) if waivers_path else ()
    plat = platform_name(platform)
    overrides = {"screen": ScreenFacts(screen[0], screen[1], "the desktop client's screen")} if screen else {}
    probes = CachedProbes(probes or default_probes(settings, network_timeout=spec.timeouts.network_seconds,
                                                   platform=platform), overrides)
    ctx = Context(spec, mode, plat, probes, service_url or settings.service_url, settings.card_removal.value, now)
    results = _run_all(ctx, ids, waivers, on_progress, timeout or spec.timeouts.check_seconds)
    report = Report(
        results=[results[i] for i in ids], mode=mode, spec_version=spec.version, spec_title=spec.title,
        checker_version=__version__, hostname=hostname or socket.gethostname(),
        platform=f"{plat} ({_platform.platform()})", started_at=now,
        duration_ms=(time.perf_counter() - started) * 1000, service_url=ctx.service_url,
        notes=_notes(waivers, waivers_path, now),
    )
    log.info("WES check: %s, %d fail(s), %.0f ms", "compliant" if report.compliant else "not compliant",
             len(report.failures), report.duration_ms)
    return report


def _check_spec_covers(spec: Spec) -> None:
    for cid in CHECKS:
        if cid not in spec.checks:
            raise SpecError(str(spec.file), f'checks."{cid}"', "is missing: every check needs its title, severity, "
                            "remediation and link")
    for cid in spec.checks:
        if cid not in CHECKS:
            raise SpecError(str(spec.file), f'checks."{cid}"', f"is not a check this checker knows "
                            f"({', '.join(ORDER)})")


def _notes(waivers: tuple[Waiver, ...], path: Path | None, now: datetime) -> tuple[str, ...]:
    if not waivers:
        return ()
    live = sum(1 for w in waivers if now.date() <= w.until)
    return (f"Waivers file {path}: {live} in force, {len(waivers) - live} expired.",)


def _applies(ctx: Context, cid: str) -> str | None:
    cs = ctx.spec.checks[cid]
    if cs.platforms and ctx.platform not in cs.platforms:
        return f"Applies only on {', '.join(cs.platforms)} (this is {ctx.platform}), per WES spec {ctx.spec.version}."
    if cs.modes and ctx.mode not in cs.modes:
        return f"Applies only in {', '.join(cs.modes)} mode (this is {ctx.mode}), per WES spec {ctx.spec.version}."
    return None


def _result(ctx: Context, cid: str, outcome: Outcome, elapsed_ms: float, waivers: tuple[Waiver, ...]) -> CheckResult:
    cs = ctx.spec.checks[cid]
    status, notes = outcome.status, outcome.notes
    if cs.severity is Severity.ADVISORY and status is Status.FAIL:
        status, notes = Status.WARN, (*notes, "Advisory check: a fail is reported as a warning.")
    result = CheckResult(cid, cs.title, status, cs.severity, outcome.evidence, outcome.remediation or cs.remediation,
                         cs.link, elapsed_ms, None, tuple(notes))
    return apply_waivers(result, waivers, ctx.now.date(), ctx.mode)


def _evaluate(ctx: Context, cid: str) -> Outcome:
    if why := _applies(ctx, cid):
        return Outcome(Status.NOT_APPLICABLE, why)
    try:
        return CHECKS[cid](ctx)
    except Exception as exc:  # a crashing check reports an error for itself; the run carries on
        log.warning("WES check %s crashed: %s", cid, type(exc).__name__, exc_info=True)
        return Outcome(Status.ERROR, f"The check could not complete: {type(exc).__name__}: {exc}",
                       remediation="Re-run the check; if this persists, report it to your IT service desk with "
                       "this report.")


def _run_all(ctx: Context, ids: list[str], waivers: tuple[Waiver, ...], on_progress: Progress | None,
             timeout: float) -> dict[str, CheckResult]:
    results: dict[str, CheckResult] = {}
    lock = threading.Lock()
    all_done = threading.Condition(lock)
    closed = False

    def report(result: CheckResult) -> None:
        if on_progress is None:
            return
        try:
            on_progress(result)
        except Exception:
            log.exception("WES on_progress callback failed")

    def work(cid: str) -> None:
        start = time.perf_counter()
        result = _result(ctx, cid, _evaluate(ctx, cid), (time.perf_counter() - start) * 1000, waivers)
        with lock:
            if closed:
                return  # timed out already: its error result stands
            results[cid] = result
            report(result)  # under the lock: never after run_checks returned
            all_done.notify_all()

    for cid in ids:
        threading.Thread(target=work, args=(cid,), name=f"wes-{cid}", daemon=True).start()
    deadline = time.monotonic() + timeout
    with lock:
        while len(results) < len(ids) and (left := deadline - time.monotonic()) > 0:
            all_done.wait(left)
        closed = True
        for cid in ids:
            if cid not in results:
                outcome = Outcome(Status.ERROR, f"The check did not finish within {timeout:g} s (a probe is hanging: "
                                  "the smart card service, the network, or an OS command).")
                results[cid] = _result(ctx, cid, outcome, timeout * 1000, waivers)
                report(results[cid])
    return results


__all__ = ["run_checks"]
