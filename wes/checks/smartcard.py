"""pcsc.service, pcsc.reader, pcsc.virtual, pcsc.apdu_logging, card.present, card.series."""

from __future__ import annotations

from wes.checks.base import Context, Outcome, check
from wes.model import Status
from wes.probes.facts import (
    CONNECTED,
    FAILED,
    REFUSED,
    TIMEOUT,
    ConnectAttempt,
    ListeningSocket,
    PcscFacts,
    ReachFacts,
    Reader,
)

SERVICE_DOWN = "Not checked: the smart card service is not running (see pcsc.service)."


def _contains(name: str, patterns: tuple[str, ...]) -> bool:
    low = name.lower()
    return any(p.lower() in low for p in patterns)


def virtual_readers(ctx: Context, facts: PcscFacts) -> list[Reader]:
    return [r for r in facts.readers if _contains(r.name, ctx.spec.virtual_readers.reader_names)]


def card_reader(ctx: Context) -> Reader | None:
    """The reader whose card the card checks look at: the first with a card (a physical one first)."""
    facts = ctx.probes.pcsc()
    if not facts.running:
        return None
    present = [r for r in facts.readers if r.card_present]
    virtual = {r.name for r in virtual_readers(ctx, facts)}
    present.sort(key=lambda r: r.name in virtual)
    return present[0] if present else None


def no_card(ctx: Context) -> Outcome:
    facts = ctx.probes.pcsc()
    if not facts.running:
        return Outcome(Status.NOT_APPLICABLE, SERVICE_DOWN)
    if not facts.readers:
        return Outcome(Status.NOT_APPLICABLE, "Not checked: no reader is connected (see pcsc.reader).")
    return Outcome(Status.NOT_APPLICABLE, "Not checked: no card is inserted (see card.present).")


def _atr(atr: bytes) -> str:
    return atr.hex(" ").upper() or "none"


@check("pcsc.service")
def pcsc_service(ctx: Context) -> Outcome:
    facts = ctx.probes.pcsc()
    if facts.running:
        detail = f"; {facts.detail}" if facts.detail else ""
        return Outcome(Status.PASS, f"The smart card service answered ({facts.source}); "
                       f"{len(facts.readers)} reader(s){detail}.")
    return Outcome(Status.FAIL, f"The smart card service did not answer: {facts.detail or 'not running'}.")


@check("pcsc.reader")
def pcsc_reader(ctx: Context) -> Outcome:
    facts = ctx.probes.pcsc()
    if not facts.running:
        return Outcome(Status.NOT_APPLICABLE, SERVICE_DOWN)
    virtual = {r.name for r in virtual_readers(ctx, facts)}
    names = [f"{r.name}{' (virtual)' if r.name in virtual else ''}" for r in facts.readers]
    try:
        drivers = ctx.probes.drivers()
        driver_note = (f"Drivers installed ({drivers.source}): {', '.join(drivers.drivers) or 'none found'}.",)
    except Exception as exc:  # the listing is evidence only; the verdict comes from PC/SC
        driver_note = (f"Driver list unavailable: {exc}.",)
    if not facts.readers:
        return Outcome(Status.FAIL, "No reader is listed by the smart card service. If a reader is plugged in, "
                       "its driver is missing or wrong.", notes=driver_note)
    physical = [r for r in facts.readers if r.name not in virtual]
    if ctx.production and not physical:
        return Outcome(Status.FAIL, f"Only virtual readers are listed: {', '.join(names)}; a production "
                       "workstation needs a physical reader.", notes=driver_note)
    return Outcome(Status.PASS, f"{len(facts.readers)} reader(s): {', '.join(names)}.", notes=driver_note)


@check("pcsc.virtual")
def pcsc_virtual(ctx: Context) -> Outcome:
    drivers = ctx.probes.drivers()
    found = [d for d in drivers.drivers if _contains(d, ctx.spec.virtual_readers.drivers)]
    facts = ctx.probes.pcsc()
    readers = [r.name for r in virtual_readers(ctx, facts)] if facts.running else []
    if not found and not readers:
        scope = f"{drivers.source}" + ("" if facts.running else "; readers not listed: the service is down")
        return Outcome(Status.PASS, f"No virtual reader driver or reader found (looked in {scope}).")
    what = "; ".join(filter(None, [f"driver(s): {', '.join(found)}" if found else "",
                                   f"reader(s): {', '.join(readers)}" if readers else ""]))
    if ctx.production:
        return Outcome(Status.FAIL, f"Virtual reader present on a production workstation: {what}.")
    exposed, where = _virtual_reader_exposure(ctx)
    if exposed:
        return Outcome(Status.FAIL, f"Virtual reader present and {where}: anyone who can reach those ports can "
                       f"present a card to it and read the PIN typed for that card ({what}).",
                       remediation=ISOLATION_REMEDIATION)
    return Outcome(Status.PASS, f"Virtual reader present (training and test machines only): {what}; {where}.",
                   remediation="Fine for training. Never install the virtual reader driver on a production "
                   "workstation: anyone who can reach its TCP port can insert a card.")


ISOLATION_REMEDIATION = (
    "Training and test machines only, and only where nobody else can reach the virtual reader's ports. On Linux, "
    "run scripts/setup.sh as root: it loads a host firewall table (scripts/vpcd-guard.nft) that drops connections "
    "to those ports from any address but loopback, and reloads it whenever pcscd starts; or remove the virtual "
    "reader driver (Debian: apt-get purge vsmartcard-vpcd). If the machine is on an isolated training network, IT "
    "records that with a waiver for pcsc.virtual, modes = [\"training\"], in wes-waivers.toml beside the site "
    "configuration: who accepted it, why, and until when.")


def _address(sock: ListeningSocket) -> str:
    return f"[{sock.address}]:{sock.port}" if ":" in sock.address else f"{sock.address}:{sock.port}"


def _target(attempt: ConnectAttempt) -> str:
    return f"[{attempt.address}]:{attempt.port}" if ":" in attempt.address else f"{attempt.address}:{attempt.port}"


def _virtual_reader_exposure(ctx: Context) -> tuple[bool, str]:
    """Whether the virtual reader's TCP ports can be reached from another machine, and what shows it. Its ports
    listening on loopback only (or not at all) are safe. Otherwise each port is tried from each of this machine's
    addresses but loopback (:func:`_reachable`). When the system cannot tell, they count as reachable (fail
    closed)."""
    ports = ctx.spec.virtual_readers.tcp_ports
    port_list = ", ".join(str(p) for p in ports)
    cannot_tell = f"this system could not tell whether its TCP ports ({port_list}) are reachable from the network"
    beyond: list[ListeningSocket] = []
    try:
        facts = ctx.probes.listening()
        listed = f"could not list listening sockets ({facts.error})" if facts.error else ""
    except Exception as exc:  # tried below by connecting instead
        facts, listed = None, f"could not list listening sockets ({exc})"
    if facts is not None and not facts.error:
        mine = [s for s in facts.sockets if s.port in ports]
        beyond = [s for s in mine if not s.loopback_only]
        if not beyond:
            if mine:
                return False, (f"its TCP ports listen on loopback only: {', '.join(_address(s) for s in mine)} "
                               f"({facts.source})")
            return False, f"nothing is listening on its TCP ports {port_list} ({facts.source})"
        listed = f"listening beyond loopback on {', '.join(_address(s) for s in beyond)} ({facts.source})"
        waiting = [s for s in beyond if s.queued]
        if waiting:  # vpcd takes one connection at a time: another would go unanswered, firewall or not
            return True, f"{cannot_tell} ({listed}; a connection is already waiting to be accepted on " \
                         f"{', '.join(_address(s) for s in waiting)}, so one from the network could not be told " \
                         "from one held back: not tried; run the check again once the virtual reader has accepted it)"
    try:
        reach = ctx.probes.reachability(tuple(ports))
    except Exception as exc:
        return True, f"{cannot_tell} ({listed}; connecting: {exc})"
    if reach.error:
        return True, f"{cannot_tell} ({listed}; this machine's addresses: {reach.error})"
    return _reachable(reach, beyond, listed, cannot_tell)


def _reachable(reach: ReachFacts, listeners: list[ListeningSocket], listed: str, cannot_tell: str
               ) -> tuple[bool, str]:
    """The verdict from connect attempts. Any connection made from an address other than loopback: reachable.
    Every attempt refused or unanswered: guarded (a host firewall drops what is not from loopback), provided an
    unanswered attempt can only mean that: the port's accept queue was seen empty (vpcd listens with a backlog of 0,
    so one connection it has not accepted fills it and leaves any other unanswered; a queue the system does not
    show proves nothing). An attempt that could not be made
    leaves it unknown (reachable)."""
    if not reach.addresses:
        return False, (f"{listed}, but this machine has no address other than loopback ({reach.source}): isolated, "
                       "nothing else can reach it")
    tried = f"tried {', '.join(reach.addresses)} (from {reach.source}) on ports " \
            f"{', '.join(str(p) for p in reach.ports)}, each from a socket bound to that address"
    connected = [a for a in reach.attempts if a.result == CONNECTED]
    if connected:
        return True, f"{listed}; it answers connections from the network: {tried}: connected to " \
                     f"{', '.join(_target(a) for a in connected)}"
    failed = [a for a in reach.attempts if a.result == FAILED]
    if failed:
        return True, f"{cannot_tell} ({listed}; {tried}; could not try " \
                     f"{', '.join(f'{_target(a)} ({a.detail})' for a in failed)})"
    unanswered = sorted({a.port for a in reach.attempts if a.result == TIMEOUT})
    for port in unanswered:
        waiting = [s.queued for s in listeners if s.port == port]
        if not waiting or None in waiting:
            return True, f"{cannot_tell} ({listed}; {tried}; port {port} did not answer within {reach.timeout:g} s " \
                         "and this system does not show whether connections were already waiting to be accepted " \
                         "there, so a host firewall cannot be told from a busy port)"
    dropped = sorted({_target(a) for a in reach.attempts if a.result == TIMEOUT})
    refused = sorted({_target(a) for a in reach.attempts if a.result == REFUSED})
    seen = "; ".join(filter(None, [
        f"dropped (no answer within {reach.timeout:g} s, nothing waiting in the accept queue): {', '.join(dropped)}"
        if dropped else "",
        f"refused: {', '.join(refused)}" if refused else ""]))
    return False, f"{listed}, but guarded: nothing from the network gets through ({tried}: {seen})"


# pcscd's options (pcsc-lite): those taking an argument, and the long ones getopt_long accepts by unique prefix.
_PCSCD_SHORT_WITH_ARGUMENT = frozenset("ctrs")
_PCSCD_LONG = ("apdu", "auto-exit", "config", "color", "critical", "debug", "disable-polkit", "error", "foreground",
               "help", "hotplug", "info", "max-card-handle-per-reader", "max-card-handle-per-thread",
               "max-thread", "reader-name-no-interface", "reader-name-no-serial", "version")


def logs_apdus(argv: tuple[str, ...]) -> bool:
    """Whether pcscd with this command line logs APDUs: ``-a``, ``--apdu`` (or an unambiguous prefix such as
    ``--apd``), or ``a`` among combined short options (``-fa``, ``-adf``); an option argument (``-c -a``, ``-ca``)
    is not an option."""
    args = iter(argv[1:])
    for arg in args:
        if arg == "--":
            return False
        if arg.startswith("--"):
            name = arg[2:].split("=", 1)[0]
            matches = [o for o in _PCSCD_LONG if o.startswith(name)] if name else []
            if name == "apdu" or matches == ["apdu"]:
                return True
            if "=" not in arg and len(matches) == 1 and matches[0] in ("config", "max-thread",
                                                                      "max-card-handle-per-thread",
                                                                      "max-card-handle-per-reader"):
                next(args, None)  # its argument
            continue
        if arg.startswith("-") and len(arg) > 1:
            for i, ch in enumerate(arg[1:], start=1):
                if ch == "a":
                    return True
                if ch in _PCSCD_SHORT_WITH_ARGUMENT:
                    if i == len(arg) - 1:
                        next(args, None)  # the argument is the next word
                    break  # the rest of this word is the argument
    return False


@check("pcsc.apdu_logging")
def pcsc_apdu_logging(ctx: Context) -> Outcome:
    facts = ctx.probes.processes("pcscd")
    if facts.error:
        return Outcome(Status.WARN, f"Could not tell whether pcscd logs APDUs: {facts.error}.")
    if not facts.commands:
        return Outcome(Status.NOT_APPLICABLE, f"pcscd is not running ({facts.source}); its options when it starts "
                       "are in pcscd.service.")
    shown = "; ".join(" ".join(argv) for argv in facts.commands)
    logging = [argv for argv in facts.commands if logs_apdus(argv)]
    if logging:
        return Outcome(Status.FAIL, f"pcscd runs with APDU logging ({'; '.join(' '.join(a) for a in logging)}): "
                       f"every command sent to a card, PIN VERIFY included, is written to its log in clear "
                       f"({facts.source}).")
    return Outcome(Status.PASS, f"pcscd runs without APDU logging: {shown} ({facts.source}).")


@check("card.present")
def card_present(ctx: Context) -> Outcome:
    reader = card_reader(ctx)
    if reader is None:
        facts = ctx.probes.pcsc()
        if not facts.running or not facts.readers:
            return no_card(ctx)
        return Outcome(Status.WARN, f"No card in {', '.join(r.name for r in facts.readers)}; card.series and "
                       "card.cert were not checked.")
    return Outcome(Status.PASS, f"Card in {reader.name}, ATR {_atr(reader.atr)}.")


@check("card.series")
def card_series(ctx: Context) -> Outcome:
    reader = card_reader(ctx)
    if reader is None:
        return no_card(ctx)
    family = next((f for f in ctx.spec.card_families if f.matches(reader.atr)), None)
    found = f"ATR {_atr(reader.atr)} in {reader.name}"
    if family is None:
        return Outcome(Status.WARN, f"{found} is not a card family listed in WES spec {ctx.spec.version} "
                       f"({len(ctx.spec.card_families)} listed).",
                       remediation="If this is a card your Registration Authority issued, ask IT to add its ATR "
                       "to the spec's card_families.")
    if family.training_only and ctx.production:
        return Outcome(Status.FAIL, f"{found}: {family.name}, which is for training only.")
    if family.blocked_from is not None and ctx.now.date() >= family.blocked_from:
        return Outcome(Status.FAIL, f"{found}: {family.name}, which NHS England has blocked from logging in since "
                       f"{family.blocked_from.isoformat()}.",
                       remediation="Ask your Registration Authority for a replacement smartcard (series 8 or later).")
    return Outcome(Status.PASS, f"{found}: {family.name}.")
