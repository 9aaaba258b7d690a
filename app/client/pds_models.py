"""Typed PDS patients (FHIR R4 Patient resources as PDS shapes them), parsed once at the client edge."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

RESTRICTED_CODES = frozenset({"R", "V"})


@dataclass(frozen=True, slots=True)
class HumanName:
    use: str
    family: str
    given: tuple[str, ...] = ()
    prefix: tuple[str, ...] = ()
    suffix: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Address:
    use: str
    lines: tuple[str, ...]
    postcode: str | None
    id: str | None = None
    index: int = -1  # position in the resource's address list (PATCH paths use it)
    ended: bool = False  # its period has ended: a past address
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def one_line(self) -> str:
        return ", ".join([*self.lines, *([self.postcode] if self.postcode else [])])


@dataclass(frozen=True, slots=True)
class Telecom:
    system: str  # phone | email | ...
    value: str
    use: str | None
    id: str | None = None
    index: int = -1
    ended: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Patient:
    nhs_number: str
    version: int
    names: tuple[HumanName, ...]
    gender: str | None
    birth_date: date | None
    deceased: datetime | None
    addresses: tuple[Address, ...]
    telecom: tuple[Telecom, ...]
    restricted: bool
    gp_ods: str | None = None

    @property
    def usual_name(self) -> HumanName | None:
        for name in self.names:
            if name.use == "usual":
                return name
        return self.names[0] if self.names else None

    @property
    def preferred_name(self) -> HumanName | None:
        """A nickname the patient prefers to be called, if recorded."""
        for name in self.names:
            if name.use == "nickname":
                return name
        return None

    @property
    def home_address(self) -> Address | None:
        """The current home address (or, failing that, the latest one recorded)."""
        homes = [a for a in self.addresses if a.use == "home"]
        return next((a for a in homes if not a.ended), homes[0] if homes else None)

    @property
    def temporary_address(self) -> Address | None:
        return next((a for a in self.addresses if a.use == "temp" and not a.ended), None)

    def contact(self, system: str, use: str | None = None) -> Telecom | None:
        """The current contact point of this kind (and use)."""
        return next((t for t in self.telecom if t.system == system and (use is None or t.use == use)
                     and not t.ended), None)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    family: str = ""
    given: str = ""
    birth_date: date | None = None
    gender: str = ""
    postcode: str = ""
    fuzzy: bool = False
    max_results: int = 50

    def params(self) -> list[tuple[str, str]]:
        """PDS search parameters (``_fuzzy-match`` and ``_max-results`` as the specification names them)."""
        out: list[tuple[str, str]] = []
        for name, value in (("family", self.family), ("given", self.given), ("gender", self.gender),
                            ("address-postalcode", self.postcode)):
            if value.strip():
                out.append((name, value.strip()))
        if self.birth_date:
            out.append(("birthdate", f"eq{self.birth_date.isoformat()}"))
        if self.fuzzy:
            out.append(("_fuzzy-match", "true"))
        out.append(("_max-results", str(self.max_results)))
        return out


@dataclass(frozen=True, slots=True)
class SearchMatch:
    patient: Patient
    score: float | None


@dataclass(frozen=True, slots=True)
class SearchResults:
    matches: tuple[SearchMatch, ...]
    too_many: bool = False  # PDS found more matches than it returns: refine the search
    message: str = ""


# --- parsing ------------------------------------------------------------------------------------------------


def _date(value: object) -> date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _datetime(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        day = _date(value)
        return datetime(day.year, day.month, day.day) if day else None


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _ended(item: Mapping[str, Any], today: date) -> bool:
    """Whether a name/address/telecom item's period has ended."""
    end = _date((item.get("period") or {}).get("end"))
    return end is not None and end < today


def parse_patient(doc: Mapping[str, Any], version: int | None = None, *, today: date | None = None) -> Patient:
    """A Patient resource to the typed model; ``version`` (from the ETag) wins over ``meta.versionId``."""
    today = today or date.today()
    meta = doc.get("meta") or {}
    restricted = any(label.get("code") in RESTRICTED_CODES for label in meta.get("security") or ())
    names = tuple(HumanName(str(n.get("use") or "usual"), str(n.get("family") or ""), _strings(n.get("given")),
                            _strings(n.get("prefix")), _strings(n.get("suffix")))
                  for n in doc.get("name") or () if isinstance(n, dict))
    addresses = tuple(Address(str(a.get("use") or "home"), _strings(a.get("line")), a.get("postalCode"), a.get("id"),
                              i, _ended(a, today), dict(a))
                      for i, a in enumerate(doc.get("address") or ()) if isinstance(a, dict))
    telecom = tuple(Telecom(str(t.get("system") or ""), str(t.get("value") or ""), t.get("use"), t.get("id"), i,
                            _ended(t, today), dict(t))
                    for i, t in enumerate(doc.get("telecom") or ()) if isinstance(t, dict))
    gp = None
    for ref in doc.get("generalPractitioner") or ():
        gp = (ref.get("identifier") or {}).get("value") or gp
    if version is None:
        try:
            version = int(meta.get("versionId") or 0)
        except (TypeError, ValueError):
            version = 0
    return Patient(nhs_number=str(doc.get("id") or ""), version=version, names=names, gender=doc.get("gender"),
                   birth_date=_date(doc.get("birthDate")), deceased=_datetime(doc.get("deceasedDateTime")),
                   addresses=addresses, telecom=telecom, restricted=restricted, gp_ods=gp)


def parse_search(doc: Mapping[str, Any], *, today: date | None = None) -> SearchResults:
    """A searchset Bundle, or the 200 OperationOutcome PDS gives for too many matches."""
    if doc.get("resourceType") == "OperationOutcome":
        issue = (doc.get("issue") or [{}])[0]
        text = issue.get("diagnostics") or ((issue.get("details") or {}).get("text")) or "Too many matches"
        return SearchResults((), too_many=True, message=str(text))
    matches = tuple(SearchMatch(parse_patient(e.get("resource") or {}, today=today),
                                (e.get("search") or {}).get("score"))
                    for e in doc.get("entry") or () if isinstance(e, dict))
    return SearchResults(matches)
