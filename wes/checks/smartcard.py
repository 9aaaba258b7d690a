"""pcsc.service, pcsc.reader, pcsc.virtual, card.present, card.series."""

from __future__ import annotations

from wes.checks.base import Context, Outcome, check
from wes.model import Status
from wes.probes.facts import PcscFacts, Reader

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
    return Outcome(Status.WARN, f"Virtual reader present (acceptable for training and test machines only): {what}.",
                   remediation="Fine for training. Never install the virtual reader driver on a production "
                   "workstation: anyone who can reach its TCP port can insert a card.")


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
    return Outcome(Status.PASS, f"{found}: {family.name}.")
