"""Is a patched Patient still a valid PDS record? The PDS business rules for updates, as pure checks.

``check_update(before, after)`` raises ``FhirError``:

* 400 VALIDATION_ERROR: the result is no longer shaped like a Patient (wrong types, a name without family);
* 400 ADDITIONAL_PROPERTIES: an item carries properties its type does not have (``name[0].pets``);
* 400 INVALID_VALUE: a value outside what the field allows (``gender`` "mal", a bad date, a bad email);
* 400 INVALID_UPDATE: a business rule (gender/birth date/date of death removed, birth in the future, end before
  start, a second usual name, a temp address without dates, ...);
* 403 FORBIDDEN_UPDATE: changes only national systems may make (a formal death notification, changing a
  formally notified date of death, removing the registered GP practice).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from datetime import date
from typing import Any

from app.service.core.outcome import FhirError, invalid_update, invalid_value
from app.service.core.patient import DEATH_NOTIFICATION_URL, PHARMACY_URLS, parse_fhir_date

_KEYS = {
    "name": {"id", "use", "period", "given", "family", "prefix", "suffix"},
    "address": {"id", "period", "use", "text", "line", "postalCode", "extension"},
    "telecom": {"id", "period", "system", "value", "use", "extension"},
    "contact": {"id", "period", "relationship", "telecom"},
    "generalPractitioner": {"id", "type", "identifier", "reference"},
}
NAME_USES = ("usual", "temp", "nickname", "old", "maiden")
ADDRESS_USES = ("home", "temp", "billing")  # "work" may be held (legacy) but never added or changed
TEMP_ADDRESS_TEXTS = ("Second Home", "Student Accommodation", "Respite Care Address", "Temporary Residence Address",
                      "Convalescence Home", "Mobile Home", "Holiday Home")
TELECOM_SYSTEMS = ("phone", "fax", "email", "other")
TELECOM_USES = ("home", "work", "temp", "mobile")
GENDERS_SETTABLE = ("male", "female", "unknown")
_NAME_TEXT = re.compile(r"[A-Za-z0-9 '.\-\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u017f]*")
_DATE = re.compile(r"[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])")
_DEATH = re.compile(_DATE.pattern + r"(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\+00:00)?)?")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_ODS = re.compile(r"[0-9A-Z]+")


def _shape(ok: bool, what: str) -> None:
    if not ok:
        raise FhirError("VALIDATION_ERROR", f"Invalid update with error - {what}")


def _items(resource: Mapping[str, Any], field: str) -> list[dict[str, Any]]:
    items = resource.get(field, [])
    _shape(isinstance(items, list) and all(isinstance(i, dict) for i in items), f"{field} must be a list of objects")
    return items


def _death_status(resource: Mapping[str, Any]) -> str | None:
    for ext in resource.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == DEATH_NOTIFICATION_URL:
            for sub in ext.get("extension") or ():
                if isinstance(sub, dict) and sub.get("url") == "deathNotificationStatus":
                    return str(sub.get("valueCodeableConcept", {}).get("coding", [{}])[0].get("code"))
            return ""
    return None


def _period(field: str, item: Mapping[str, Any], changed: bool, today: date) -> None:
    period = item.get("period")
    if period is None:
        return
    _shape(isinstance(period, dict), f"{field}.period must be an object")
    start, end = period.get("start"), period.get("end")
    if start is None:
        raise invalid_update(f"a {field} period needs a start date")
    for value in (start, end):
        if value is not None and not (isinstance(value, str) and _DATE.fullmatch(value) and parse_fhir_date(value)):
            raise invalid_value(f"{field}.period", value)
    if changed and start > today.isoformat():
        raise invalid_update(f"a {field} period cannot start in the future")
    if end is not None and end < start:
        raise invalid_update(f"a {field} period cannot end before it starts")


def _check_names(before: Mapping[str, Any], names: list[dict[str, Any]], today: date) -> None:
    old = {n.get("id"): n for n in _items(before, "name") if n.get("id")}
    for name in names:
        changed = name != old.get(name.get("id"))
        if name.get("use") not in NAME_USES:
            raise invalid_value("name.use", name.get("use"))
        if name.get("id") in old and old[name["id"]].get("use") != name.get("use"):
            raise invalid_update("the use of an existing name cannot be changed; remove it and add a new one")
        family, given = name.get("family"), name.get("given", [])
        _shape(isinstance(family, str) and bool(family.strip()), "every name needs a family name")
        _shape(isinstance(given, list) and all(isinstance(g, str) for g in given), "name.given must be a list")
        if len(given) > 5:
            raise FhirError("TOO_MANY_VALUES_SUBMITTED", "Invalid update with error - at most 5 given names")
        for text in (family, *given):
            if changed and (len(text) > 35 or not _NAME_TEXT.fullmatch(text)):
                raise invalid_value("name", text)
        for suffix in name.get("suffix", []):
            if changed and not (isinstance(suffix, str) and suffix[:1].isascii() and suffix[:1].isupper()):
                raise invalid_value("name.suffix", suffix)
        if changed and name.get("prefix"):
            name["prefix"] = [p.rstrip(".") if isinstance(p, str) else p for p in name["prefix"]]
        _period("name", name, changed, today)
    uses = Counter(n.get("use") for n in names)
    if uses["usual"] == 0 and any(n.get("use") == "usual" for n in _items(before, "name")):
        raise invalid_update("the usual name cannot be removed")
    if uses["usual"] > 1 or uses["nickname"] > 1:
        raise invalid_update("a patient has at most one usual name and one nickname")


def _check_addresses(before: Mapping[str, Any], addresses: list[dict[str, Any]], today: date) -> None:
    old = list(_items(before, "address"))
    for item in addresses:
        changed = item not in old
        if changed and item.get("use") not in ADDRESS_USES:
            raise invalid_value("address.use", item.get("use"))
        line = item.get("line", [])
        _shape(isinstance(line, list) and len(line) <= 5 and all(isinstance(x, str) for x in line),
               "address.line must be at most 5 lines of text")
        if changed and item.get("use") in ("temp", "billing"):
            period = item.get("period") or {}
            if not (period.get("start") and period.get("end")):
                raise invalid_update(f"a {item['use']} address needs a period with start and end dates")
            if item["use"] == "temp" and item.get("text") not in TEMP_ADDRESS_TEXTS:
                raise invalid_value("address.text", item.get("text"))
        _period("address", item, changed, today)
    before_uses = Counter(a.get("use") for a in old)
    for use, count in Counter(a.get("use") for a in addresses).items():
        if use in ADDRESS_USES and count > max(1, before_uses[use]):
            raise invalid_update(f"a patient can have only one {use} address")


def _check_telecom(before: Mapping[str, Any], telecom: list[dict[str, Any]], today: date) -> None:
    old = {t.get("id"): t for t in _items(before, "telecom") if t.get("id")}
    for item in telecom:
        changed = item != old.get(item.get("id"))
        if item.get("system") not in TELECOM_SYSTEMS:
            raise invalid_value("telecom.system", item.get("system"))
        if item.get("use") is not None and item.get("use") not in TELECOM_USES:
            raise invalid_value("telecom.use", item.get("use"))
        value = item.get("value")
        _shape(isinstance(value, str) and bool(value), "every telecom needs a value")
        if changed and item["system"] == "email" and not (6 < len(value) < 90 and _EMAIL.fullmatch(value)):
            raise invalid_value("telecom.value", value)
        prior = old.get(item.get("id"))
        if prior is not None and (prior.get("system"), prior.get("use")) != (item["system"], item.get("use")):
            raise invalid_update("a telecom's system and use cannot be replaced; remove it and add a new one")
        _period("telecom", item, changed, today)


def _check_contacts(contacts: list[dict[str, Any]], today: date) -> None:
    for item in contacts:
        codes = [c.get("code") for r in item.get("relationship") or [] for c in r.get("coding") or []]
        if codes != ["C"]:
            raise invalid_value("contact.relationship", ",".join(map(str, codes)))
        for point in item.get("telecom") or []:
            if "use" in point or point.get("system") not in ("phone", "email", "other"):
                raise invalid_update("contact telecom takes system (not fax) and value only")
        _period("contact", item, True, today)


def _check_practice(before: Mapping[str, Any], practices: list[dict[str, Any]]) -> None:
    if len(practices) > 1:
        raise invalid_update("a patient has at most one registered general practice")
    if before.get("generalPractitioner") and not practices:
        raise FhirError("FORBIDDEN_UPDATE",
                        "Invalid update with error - only NHAIS or the National Back Office can remove a GP practice")
    for gp in practices:
        identifier = gp.get("identifier")
        _shape(isinstance(identifier, dict), "generalPractitioner needs an identifier")
        if not (isinstance(identifier.get("value"), str) and _ODS.fullmatch(identifier["value"])):
            raise invalid_value("generalPractitioner", identifier.get("value"))
        if gp not in (before.get("generalPractitioner") or []) and (identifier.get("period") or {}).get("end"):
            raise invalid_update("do not send an end date for the general practice")


def _check_life(before: Mapping[str, Any], after: Mapping[str, Any], today: date) -> None:
    for field in ("gender", "birthDate", "deceasedDateTime"):
        if field in before and field not in after:
            raise invalid_update(f"{field} cannot be removed")
    gender = after.get("gender")
    if gender is not None and gender != before.get("gender") and gender not in GENDERS_SETTABLE:
        raise invalid_value("gender", gender)
    born, died = after.get("birthDate"), after.get("deceasedDateTime")
    if born is not None and born != before.get("birthDate"):
        if not (isinstance(born, str) and _DATE.fullmatch(born) and parse_fhir_date(born)):
            raise invalid_value("birthDate", born)
        if born > today.isoformat():
            raise invalid_update("birthDate cannot be in the future")
    status, old_status = _death_status(after), _death_status(before)
    if died != before.get("deceasedDateTime"):
        if not (isinstance(died, str) and _DEATH.fullmatch(died) and parse_fhir_date(died)):
            raise invalid_value("deceasedDateTime", died)
        if old_status == "2":
            raise FhirError("FORBIDDEN_UPDATE", "Invalid update with error - a formally notified date of death "
                                                "cannot be changed")
        if died[:10] > today.isoformat():
            raise invalid_update("deceasedDateTime cannot be in the future")
        if status is None:
            raise invalid_update("a date of death needs a death notification status")
    if born and died and died[:10] < born:
        raise invalid_update("deceasedDateTime cannot be before birthDate")
    if old_status is not None and status is None:
        raise invalid_update("the death notification cannot be removed")
    if status != old_status:
        if status == "2" or old_status == "2":
            raise FhirError("FORBIDDEN_UPDATE", "Invalid update with error - only national systems can set or "
                                                "change a formal death notification")
        if status is not None and died is None:
            raise invalid_update("a death notification needs a date of death")
    multiple = after.get("multipleBirthInteger")
    if multiple is not None and (isinstance(multiple, bool) or multiple not in range(1, 10)):
        raise invalid_value("multipleBirthInteger", multiple)


def check_update(before: Mapping[str, Any], after: dict[str, Any], *, today: date) -> None:
    """Raise ``FhirError`` unless ``after`` (``before`` patched) is a valid PDS Patient. May tidy ``after`` in
    place the way PDS does (trailing full stops of name prefixes)."""
    try:
        _check(before, after, today)
    except (AttributeError, TypeError, KeyError, IndexError) as exc:  # a value of the wrong JSON type somewhere
        raise FhirError("VALIDATION_ERROR", "Invalid update with error - the patient resource is malformed") from exc


def _check(before: Mapping[str, Any], after: dict[str, Any], today: date) -> None:
    for field in ("resourceType", "id", "identifier"):
        _shape(after.get(field) == before.get(field), f"{field} cannot change")
    for field, allowed in _KEYS.items():
        for item in _items(after, field):
            extra = sorted(set(item) - allowed)
            if extra:
                raise FhirError("ADDITIONAL_PROPERTIES", f"Invalid update with error - Additional properties are "
                                f"not allowed ('{extra[0]}' was unexpected in {field})")
    _check_life(before, after, today)
    _check_names(before, _items(after, "name"), today)
    _check_addresses(before, _items(after, "address"), today)
    _check_telecom(before, _items(after, "telecom"), today)
    _check_contacts(_items(after, "contact"), today)
    _check_practice(before, _items(after, "generalPractitioner"))
    extensions = _items(after, "extension")
    _shape(all(isinstance(e.get("url"), str) for e in extensions), "every extension needs a url")
    urls = Counter(e["url"] for e in extensions)
    if any(urls[u] > 1 for u in PHARMACY_URLS) or urls[DEATH_NOTIFICATION_URL] > 1:
        raise invalid_update("only one pharmacy of each type and one death notification are allowed")
