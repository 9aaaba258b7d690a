"""A restricted patient's withheld details, kept out of every answer about them that is not a PDS Patient.

PDS strips a restricted (meta.security R) or very restricted (V) patient's location from their Patient resource
(``read_view``). The other services hold the same facts in other shapes: the patient's GP practice writes their
Summary Care Record and records most of their flags; a CP-IS access history, a local authority's notification or
the audit trail names the organisation of whoever looked, the practice included. :func:`withheld_of` gives what one
restricted patient's answers must not carry, :func:`redact` takes it out of any JSON value:

* the values themselves — address lines, postcodes (with and without the space), telephone numbers and e-mail
  addresses (the patient's and their contacts'), the GP practice's, managing organisation's and pharmacies' ODS
  codes, the place of birth — wherever they stand as a whole word in a string, become ``[withheld]``;
* an object that names an organisation by one of those ODS codes (its ``identifier``, or a value of its own, as in a
  notification's ``organisationCode``) loses its name, display, alias, address and telecom as well: the practice's
  name places the patient as well as its code does;
* a Patient or RelatedPerson inside the answer (an SCR Bundle carries one) loses what PDS withholds.

Pure: the caller looks the patient up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from app.service.core.patient import BIRTH_PLACE_URL, PHARMACY_URLS, is_restricted, restricted_view

WITHHELD = "[withheld]"
MIN_LENGTH = 4  # shorter values ("UK", a house number) would blank ordinary words
NAME_KEYS = frozenset({"name", "display", "alias", "address", "telecom", "contact", "organisationName", "orgName"})
PERSON_TYPES = frozenset({"Patient", "RelatedPerson"})


@dataclass(frozen=True)
class Withheld:
    """What one restricted patient's answers must not carry (empty for anyone else)."""

    values: frozenset[str] = frozenset()
    codes: frozenset[str] = frozenset()  # the ODS codes among them

    def __bool__(self) -> bool:
        return bool(self.values)

    def __or__(self, other: Withheld) -> Withheld:
        return Withheld(self.values | other.values, self.codes | other.codes)

    @property
    def pattern(self) -> re.Pattern[str]:
        return _pattern(self.values)


NOTHING = Withheld()


@lru_cache(maxsize=256)
def _pattern(values: frozenset[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(v) for v in sorted(values, key=lambda v: (-len(v), v)))
    return re.compile(f"(?<![0-9A-Za-z])(?:{alternatives})(?![0-9A-Za-z])")


def _strings(items: Iterable[Mapping[str, Any]], key: str) -> Iterable[str]:
    return (item[key] for item in items if isinstance(item.get(key), str))


def _ods(reference: object) -> str | None:
    ident = reference.get("identifier") if isinstance(reference, Mapping) else None
    value = ident.get("value") if isinstance(ident, Mapping) else None
    return value if isinstance(value, str) else None


def withheld_of(patient: Mapping[str, Any] | None) -> Withheld:
    """The withheld values of a full stored Patient resource; nothing unless it is restricted (R or V)."""
    if not patient or not is_restricted(patient):
        return NOTHING
    values: set[str] = set()
    codes: set[str] = set()
    for address in _list(patient.get("address")):
        lines = address.get("line")
        if isinstance(lines, list):
            values.update(v for v in lines if isinstance(v, str))
        postcode = address.get("postalCode")
        if isinstance(postcode, str):
            values.update({postcode, postcode.replace(" ", "")})
    values.update(_strings(_list(patient.get("telecom")), "value"))
    for contact in _list(patient.get("contact")):
        values.update(_strings(_list(contact.get("telecom")), "value"))
    organisations = [*_list(patient.get("generalPractitioner")), patient.get("managingOrganization")]
    for ext in _list(patient.get("extension")):
        if ext.get("url") in PHARMACY_URLS:
            organisations.append(ext.get("valueReference"))
        elif ext.get("url") == BIRTH_PLACE_URL and isinstance(ext.get("valueAddress"), Mapping):
            values.update(v for k, v in ext["valueAddress"].items() if k != "country" and isinstance(v, str))
    codes.update(code for code in map(_ods, organisations) if code)
    values |= codes
    keep = frozenset(v for v in values if len(v.strip()) >= MIN_LENGTH)
    return Withheld(keep, frozenset(codes) & keep)


def _list(value: object) -> list[Mapping[str, Any]]:
    """The objects in a JSON array (anything else, or not an array: none)."""
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _names_withheld_organisation(item: Mapping[str, Any], codes: frozenset[str]) -> bool:
    idents = item.get("identifier")
    for ident in idents if isinstance(idents, list) else [idents]:
        if isinstance(ident, Mapping) and ident.get("value") in codes:
            return True
    return any(isinstance(v, str) and v in codes for v in item.values())


def redact(value: Any, withheld: Withheld) -> Any:
    """``value`` (decoded JSON) without anything in ``withheld``; returned as is when there is nothing to hide."""
    if not withheld:
        return value
    return _redact(value, withheld.pattern, withheld.codes)


def _redact(value: Any, pattern: re.Pattern[str], codes: frozenset[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(WITHHELD, value)
    if isinstance(value, list):
        return [_redact(v, pattern, codes) for v in value]
    if not isinstance(value, Mapping):
        return value
    item: Mapping[str, Any] = value
    if item.get("resourceType") in PERSON_TYPES:
        item = restricted_view(item)
    if codes and _names_withheld_organisation(item, codes):
        item = {k: v for k, v in item.items() if k not in NAME_KEYS}
    return {k: _redact(v, pattern, codes) for k, v in item.items()}
