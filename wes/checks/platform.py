"""os.supported, client.version, screen, removal.mode, time.sync."""

from __future__ import annotations

from wes.checks.base import Context, Outcome, check, version_tuple
from wes.model import Status
from wes.probes.facts import OsInfo
from wes.spec import OsEntry


def _matches(entry: OsEntry, info: OsInfo) -> bool:
    if entry.platform != info.platform:
        return False
    if info.platform == "macos":
        return info.version.split(".")[0] == entry.version
    if info.platform == "linux":
        return entry.distro == info.distro and entry.version == info.version
    if info.platform == "windows":
        return entry.version == info.version and (not entry.editions or info.edition in entry.editions)
    return entry.version == info.version


@check("os.supported")
def os_supported(ctx: Context) -> Outcome:
    info = ctx.probes.os_info()
    shown = info.display_version and info.display_version not in info.name
    found = f"{info.name}" + (f" ({info.display_version})" if shown else "") + \
        f", version key {info.version or '?'} from {info.source}"
    entry = next((e for e in ctx.spec.os if _matches(e, info)), None)
    if entry is None:
        listed = [e.name for e in ctx.spec.os if e.platform == info.platform]
        return Outcome(Status.FAIL, f"{found}: not listed in WES spec {ctx.spec.version}. Listed for "
                       f"{info.platform}: {', '.join(listed) or 'none'}.")
    today = ctx.now.date()
    if entry.end_of_support is None:
        return Outcome(Status.PASS, f"{found}: listed as {entry.name}; the vendor publishes no end-of-support date.")
    days = (entry.end_of_support - today).days
    if days < 0:
        return Outcome(Status.FAIL, f"{found}: {entry.name}, whose vendor support ended on "
                       f"{entry.end_of_support.isoformat()} ({-days} days ago).")
    if days <= ctx.spec.thresholds.os_end_of_support_warn_days:
        return Outcome(Status.WARN, f"{found}: {entry.name}; vendor support ends on "
                       f"{entry.end_of_support.isoformat()}, in {days} days. Plan the upgrade now.")
    return Outcome(Status.PASS, f"{found}: listed as {entry.name}; vendor support until "
                   f"{entry.end_of_support.isoformat()} ({days} days).")


@check("client.version")
def client_version(ctx: Context) -> Outcome:
    rt = ctx.probes.runtime()
    policy = ctx.spec.client
    found = f"Spine Desk {rt.client_version}, Python {rt.python_version}, PySide6 {rt.qt_version or 'not installed'}"
    problems = []
    if version_tuple(rt.client_version) < version_tuple(policy.min_version):
        problems.append(f"Spine Desk {rt.client_version} is older than the minimum {policy.min_version}")
    if ".".join(rt.python_version.split(".")[:2]) not in policy.python:
        problems.append(f"Python {rt.python_version} is not a supported runtime ({', '.join(policy.python)})")
    if rt.qt_version and version_tuple(rt.qt_version) < version_tuple(policy.min_qt):
        problems.append(f"PySide6 {rt.qt_version} is older than the minimum {policy.min_qt}")
    if problems:
        return Outcome(Status.FAIL, f"{found}: {'; '.join(problems)}.")
    if rt.qt_version is None:
        return Outcome(Status.WARN, f"{found}: the desktop client needs PySide6 {policy.min_qt} or later.")
    return Outcome(Status.PASS, f"{found}: supported (minimum Spine Desk {policy.min_version}, "
                   f"Python {'/'.join(policy.python)}, PySide6 {policy.min_qt}+).")


@check("screen")
def screen(ctx: Context) -> Outcome:
    facts = ctx.probes.screen()
    t = ctx.spec.thresholds
    if facts is None:
        return Outcome(Status.NOT_APPLICABLE, "No display was found (a headless or remote session), so the "
                       "resolution could not be read.")
    found = f"{facts.width} x {facts.height} (from {facts.source})"
    if facts.width < t.min_screen_width or facts.height < t.min_screen_height:
        return Outcome(Status.FAIL, f"{found}: below {t.min_screen_width} x {t.min_screen_height}.")
    return Outcome(Status.PASS, f"{found}: at least {t.min_screen_width} x {t.min_screen_height}.")


@check("removal.mode")
def removal_mode(ctx: Context) -> Outcome:
    policy = ctx.probes.removal_policy()
    notes = (f"Windows smart card removal policy: {policy.value} ({policy.source}).",) if policy.value else ()
    where = "site configuration [client] card_removal" if ctx.production else "training default"
    found = f"Spine Desk will {ctx.card_removal} the session when the card is removed ({where})"
    if ctx.card_removal not in ctx.spec.client.card_removal:
        return Outcome(Status.FAIL, f"{found}; the spec allows only {', '.join(ctx.spec.client.card_removal)}.",
                       notes=notes)
    if policy.value and policy.value.startswith("0") and ctx.production:
        return Outcome(Status.WARN, f"{found}, but Windows itself takes no action on removal (ScRemoveOption 0): "
                       "other applications stay open.", remediation="Set the Group Policy 'Interactive logon: "
                       "Smart card removal behavior' to Lock Workstation.", notes=notes)
    return Outcome(Status.PASS, f"{found}.", notes=notes)


@check("time.sync")
def time_sync(ctx: Context) -> Outcome:
    clock = ctx.probes.clock()
    t = ctx.spec.thresholds
    parts = [f"synchronised: {_yes_no(clock.synchronised)} ({clock.source}: {clock.detail})"]
    drift = None
    if ctx.service_url:
        service = ctx.probes.service(ctx.service_url)
        if service.server_date and service.local_time:
            # the Date header is truncated to the second: compare with this clock truncated the same way
            local = service.local_time.replace(microsecond=0)
            drift = (local - service.server_date).total_seconds()
            parts.append(f"drift against the service's Date header {drift:+.0f} s")
        else:
            parts.append("drift not measured (the service did not answer with a Date header)")
    found = "; ".join(parts)
    if drift is not None and abs(drift) > t.clock_drift_fail_seconds:
        return Outcome(Status.FAIL, f"{found}: more than {t.clock_drift_fail_seconds:g} s; certificates and login "
                       "challenges will be rejected.")
    if clock.synchronised is False:
        return Outcome(Status.WARN, f"{found}: the clock is not synchronised with a time server.")
    if drift is not None and abs(drift) > t.clock_drift_warn_seconds:
        return Outcome(Status.WARN, f"{found}: more than {t.clock_drift_warn_seconds:g} s.")
    if clock.synchronised is None and drift is None:
        return Outcome(Status.WARN, f"{found}: synchronisation could not be confirmed.")
    return Outcome(Status.PASS, found + ".")


def _yes_no(value: bool | None) -> str:
    return {True: "yes", False: "no", None: "unknown"}[value]

