"""The WES specification: versioned data files beside this module (``<version>.toml``), checked against
``schema.json`` when loaded. :func:`load_spec` returns typed, frozen data; any problem is a :class:`SpecError`
naming the file and the field."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from wes import schema
from wes.errors import SpecError
from wes.model import Severity

SPEC_DIR = Path(__file__).resolve().parent
SCHEMA_FILE = SPEC_DIR / "schema.json"
PLACEHOLDER = "PLACEHOLDER-IT-MUST-FILL-IN"
RUNTIME_TRAINING = "runtime:training-ca"


@dataclass(frozen=True)
class Thresholds:
    certificate_renewal_days: int
    os_end_of_support_warn_days: int
    clock_drift_warn_seconds: float
    clock_drift_fail_seconds: float
    service_latency_warn_ms: float
    min_screen_width: int
    min_screen_height: int


@dataclass(frozen=True)
class Timeouts:
    check_seconds: float
    network_seconds: float


@dataclass(frozen=True)
class TlsPolicy:
    accepted: tuple[str, ...]
    refused: tuple[str, ...]
    require_aead: bool


@dataclass(frozen=True)
class ClientPolicy:
    min_version: str
    python: tuple[str, ...]
    min_qt: str
    card_removal: tuple[str, ...]


@dataclass(frozen=True)
class OsEntry:
    platform: str
    name: str
    version: str
    distro: str | None = None
    editions: tuple[str, ...] = ()
    end_of_support: date | None = None


@dataclass(frozen=True)
class CardFamily:
    name: str
    atr: str
    training_only: bool = False
    family: str | None = None  # the client's card family (app.card.backend.CardFamily value), e.g. "NHS series 4-6"
    source: str | None = None  # where the ATR was published
    read_on: date | None = None  # when that source was read
    blocked_from: date | None = None  # NHS England blocks logins with these cards from this day

    def matches(self, atr: bytes) -> bool:
        pattern = self.atr.split()
        if len(pattern) != len(atr):
            return False
        return all(p == ".." or int(p, 16) == b for p, b in zip(pattern, atr, strict=True))


@dataclass(frozen=True)
class VirtualReaders:
    reader_names: tuple[str, ...]
    drivers: tuple[str, ...]
    tcp_ports: tuple[int, ...] = (35963, 35964)  # where a virtual reader driver (vpcd) listens for virtual cards


@dataclass(frozen=True)
class Anchor:
    id: str
    name: str
    role: str
    status: str
    modes: tuple[str, ...]
    sha256: str
    subject: str | None = None
    sha1_published: str | None = None
    download: str | None = None

    @property
    def placeholder(self) -> bool:
        return self.sha256 == PLACEHOLDER

    @property
    def from_training_ca(self) -> bool:
        return self.sha256 == RUNTIME_TRAINING

    @property
    def fingerprint(self) -> str | None:
        """Normalised (upper-case hex, no colons), or None for a placeholder or a runtime value."""
        if self.placeholder or self.from_training_ca:
            return None
        return normalise_fingerprint(self.sha256)


@dataclass(frozen=True)
class CheckSpec:
    title: str
    severity: Severity
    remediation: str
    link: str
    platforms: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Spec:
    version: str
    title: str
    source: str
    reviewed: date
    thresholds: Thresholds
    timeouts: Timeouts
    tls: TlsPolicy
    client: ClientPolicy
    os: tuple[OsEntry, ...]
    card_families: tuple[CardFamily, ...]
    virtual_readers: VirtualReaders
    anchors: tuple[Anchor, ...]
    checks: dict[str, CheckSpec]
    file: Path


def normalise_fingerprint(value: str) -> str:
    return value.replace(":", "").upper()


def available_versions(directory: Path = SPEC_DIR) -> list[str]:
    """Spec versions present, oldest first (``2026.1`` < ``2026.2`` < ``2026.10``)."""
    found = [p.stem for p in directory.glob("*.toml") if re.fullmatch(r"[0-9]{4}\.[0-9]+", p.stem)]
    return sorted(found, key=lambda v: tuple(int(x) for x in v.split(".")))


def load_spec(version: str | None = None, directory: Path = SPEC_DIR) -> Spec:
    """Load spec ``version`` (default: the newest present) from ``directory``."""
    versions = available_versions(directory)
    if version is None:
        if not versions:
            raise SpecError(str(directory), "", "no WES specification file (<version>.toml) is installed")
        version = versions[-1]
    if version not in versions:
        raise SpecError(str(directory / f"{version}.toml"), "",
                        f"there is no WES specification {version!r}; installed: {', '.join(versions) or 'none'}")
    return load_spec_file(directory / f"{version}.toml")


def load_spec_file(path: Path) -> Spec:
    doc, plain = schema.read_toml(path, lambda problem: SpecError(str(path), "", problem))
    problems = schema.errors(plain, load_schema())
    if problems:
        field, problem = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise SpecError(str(path), field, problem + more)
    if plain["spec_version"] != path.stem:
        raise SpecError(str(path), "spec_version", f"is {plain['spec_version']!r} but the file is named {path.name}")
    return _build(doc, path)


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def _date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value)


def _required_date(value: Any) -> date:
    parsed = _date(value)
    if parsed is None:  # the schema requires it; this is for the type checker and a hand-built document
        raise ValueError("reviewed: a date is required")
    return parsed


def _build(doc: dict[str, Any], path: Path) -> Spec:
    for i, family in enumerate(doc["card_families"]):
        if not family["atr"].strip():
            raise SpecError(str(path), f"card_families[{i}].atr", "must not be empty")
    checks = {cid: CheckSpec(c["title"], Severity(c["severity"]), c["remediation"], c["link"],
                             tuple(c.get("platforms", ())), tuple(c.get("modes", ())))
              for cid, c in doc["checks"].items()}
    return Spec(
        version=doc["spec_version"], title=doc["title"], source=doc["source"], reviewed=_required_date(doc["reviewed"]),
        thresholds=Thresholds(**doc["thresholds"]), timeouts=Timeouts(**doc["timeouts"]),
        tls=TlsPolicy(tuple(doc["tls"]["accepted"]), tuple(doc["tls"]["refused"]), doc["tls"]["require_aead"]),
        client=ClientPolicy(doc["client"]["min_version"], tuple(doc["client"]["python"]), doc["client"]["min_qt"],
                            tuple(doc["client"]["card_removal"])),
        os=tuple(OsEntry(o["platform"], o["name"], o["version"], o.get("distro"), tuple(o.get("editions", ())),
                         _date(o.get("end_of_support"))) for o in doc["os"]),
        card_families=tuple(CardFamily(f["name"], f["atr"].upper(), f.get("training_only", False), f.get("family"),
                                       f.get("source"), _date(f.get("read_on")), _date(f.get("blocked_from")))
                            for f in doc["card_families"]),
        virtual_readers=VirtualReaders(tuple(doc["virtual_readers"]["reader_names"]),
                                       tuple(doc["virtual_readers"]["drivers"]),
                                       tuple(doc["virtual_readers"].get("tcp_ports", VirtualReaders.tcp_ports))),
        anchors=tuple(Anchor(a["id"], a["name"], a["role"], a["status"], tuple(a["modes"]), a["sha256"],
                             a.get("subject"), a.get("sha1_published"), a.get("download")) for a in doc["anchors"]),
        checks=checks, file=path,
    )
