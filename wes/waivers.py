"""The waivers file: accepted exceptions, each for one check ID, with a reason, who accepted it, and an end date.

Example (TOML)::

    [[waiver]]
    check = "pcsc.virtual"
    reason = "Training-room PC: the virtual reader serves the training cards"
    who = "A. Patel, IT service desk"
    until = 2027-01-31
    modes = ["training"]   # optional: only in these modes (default: training and production)

A waiver turns a matching *fail* into *waived* (never a pass, a warning or an error) and says so in the report;
from the day after ``until`` it no longer applies and the report says it expired.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable
from dataclasses import replace
from datetime import date
from pathlib import Path

from wes import schema
from wes.errors import WaiverError
from wes.model import CheckResult, Status, Waiver
from wes.spec import SPEC_DIR

SCHEMA_FILE = SPEC_DIR / "waivers.schema.json"
WAIVERS_FILE = "wes-waivers.toml"  # beside the machine-wide site configuration: users cannot add waivers


def default_waivers_path(site_config_file: Path) -> Path:
    return site_config_file.parent / WAIVERS_FILE


def load_waivers(path: Path, known_checks: Iterable[str]) -> tuple[Waiver, ...]:
    """Read and validate a waivers file; :class:`WaiverError` names the file and the entry."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WaiverError(str(path), "(file)", f"cannot be read ({exc.strerror or exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise WaiverError(str(path), "(file)", f"is not valid TOML ({exc})") from exc
    plain = {k: [{f: (v.isoformat() if isinstance(v, date) else v) for f, v in w.items()} if isinstance(w, dict)
                 else w for w in items] if isinstance(items, list) else items for k, items in doc.items()}
    problems = schema.errors(plain, json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    if problems:
        raise WaiverError(str(path), *problems[0])
    known = set(known_checks)
    waivers = []
    for i, w in enumerate(plain.get("waiver", [])):
        if w["check"] not in known:
            raise WaiverError(str(path), f"waiver[{i}].check", f"{w['check']!r} is not a check ID "
                              f"(known: {', '.join(sorted(known))})")
        waivers.append(Waiver(w["check"], w["reason"].strip(), w["who"].strip(), date.fromisoformat(w["until"]),
                              tuple(w.get("modes", ()))))
    return tuple(waivers)


def apply_waivers(result: CheckResult, waivers: Iterable[Waiver], today: date, mode: str | None = None) -> CheckResult:
    """``result`` with a matching, unexpired waiver applied (fails only); expired ones are noted. A waiver limited
    to other ``modes`` than the run's does not match."""
    if result.status is not Status.FAIL:
        return result
    mine = [w for w in waivers if w.check_id == result.id and (mode is None or w.applies_in(mode))]
    live = [w for w in mine if today <= w.until]
    if live:
        w = max(live, key=lambda x: x.until)
        return replace(result, status=Status.WAIVED, waiver=w,
                       notes=(*result.notes, f"Fail accepted until {w.until.isoformat()} by {w.who}: {w.reason}"))
    expired = [f"A waiver by {w.who} expired on {w.until.isoformat()} ({w.reason}); this fail counts again."
               for w in mine]
    return replace(result, notes=(*result.notes, *expired)) if expired else result
