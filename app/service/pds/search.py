"""PDS patient search: validate a query string the way NHS's PDS FHIR API does, producing a typed query and the
``SearchFilter`` the store pre-filters with. Ranking of the store's candidates is in ``pds_rank``.

Rules (from the PDS specification and NHS's own sandbox/integration suites), checked in this order:

1. no parameters -> 400 UNSUPPORTED_SERVICE; unknown parameters -> 400 ADDITIONAL_PROPERTIES;
2. hostile or malformed text (control characters, over-long values, characters no name/postcode/phone/email
   can contain, repeated single-valued parameters) -> 400 INVALID_SEARCH_DATA, without echoing the value;
3. bad values of typed parameters (gender, dates, booleans, ``_max-results`` outside 1..50) -> 400
   INVALID_VALUE ``Invalid value - 'mal' in field 'gender'``;
4. wildcards: ``*`` only in family, given and postcode, never in the first two characters, never with
   ``_fuzzy-match``; ``address-postcode`` together with ``address-postalcode`` -> INVALID_SEARCH_DATA;
5. no birthdate -> 400 MISSING_VALUE; then the minimum combinations: non-fuzzy needs family (+ birthdate);
   fuzzy needs given+family+birthdate, family+birthdate+gender+postcode or given+birthdate+gender+postcode
   -> otherwise 400 INVALID_SEARCH_DATA.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from app.service.core.normalise import name_key, postcode_key, soundex
from app.service.core.outcome import (
    FhirError,
    additional_properties,
    invalid_search_data,
    invalid_value,
    missing_value,
)
from app.service.store.rows import SearchFilter

PARAMETERS = ("family", "given", "gender", "birthdate", "death-date", "address-postalcode", "address-postcode",
              "general-practitioner", "email", "phone", "_fuzzy-match", "_exact-match", "_history", "_max-results")
MAX_VALUES = {"given": 5, "birthdate": 2, "death-date": 2}  # everything else may appear once
MAX_LENGTH = {"family": 35, "given": 35, "address-postalcode": 10, "address-postcode": 10,
              "general-practitioner": 10, "email": 90, "phone": 20}
GENDERS = ("male", "female", "other", "unknown")
MAX_RESULTS_LIMIT = 50
CANDIDATE_LIMIT = 200  # the store is asked for one more, so a full answer means "too many to rank"
MISSING_BIRTHDATE = "birth_date/birth_date_range_start/birth_date_range_end"
TOO_FEW = "No searches were performed as the search criteria did not meet the minimum requirements"

# Names: letters (ASCII and Latin-1/Extended-A, as PDS allows in names), digits, space, apostrophes, hyphen, full
# stop; plus the wildcard. Anything else (quotes, semicolons, brackets, ...) is rejected outright.
_NAME_CHARS = re.compile(r"[A-Za-z0-9 '\u2019.\-*\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u017f]+")
_POSTCODE_CHARS = re.compile(r"[A-Za-z0-9 *]+")
_ODS_CHARS = re.compile(r"[A-Za-z0-9]+")
_PHONE_CHARS = re.compile(r"\+?[0-9 ()\-]+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DATE = re.compile(r"(eq|ge|le)?([0-9]{4}-[0-9]{2}-[0-9]{2})")
_BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True, slots=True)
class Pattern:
    """A name or postcode as searched: an exact normalised key, or a wildcard pattern over normalised keys."""

    raw: str
    key: str  # normalised, wildcards removed: the exact key, or the literal prefix before the first "*"
    regex: re.Pattern[str] | None = None  # set when the value holds "*"

    @property
    def wildcard(self) -> bool:
        return self.regex is not None

    def match(self, candidate_key: str) -> float | None:
        """1.0 for an exact match; below 1.0 (0.80..0.99 by how much the literal part covers) for a wildcard
        match, since PDS never scores a wildcard hit as exact; ``None`` when it does not match."""
        if self.regex is None:
            return 1.0 if candidate_key == self.key else None
        if not self.regex.match(candidate_key):
            return None
        literal = sum(1 for ch in self.raw if ch != "*")
        return round(0.8 + 0.19 * min(literal / max(len(candidate_key), 1), 1.0), 4)


@dataclass(frozen=True, slots=True)
class DateRange:
    start: date | None  # inclusive; None = open
    end: date | None

    def contains(self, value: date | None) -> bool:
        return value is not None and (self.start is None or value >= self.start) and (
            self.end is None or value <= self.end)


@dataclass(frozen=True, slots=True)
class PatientSearch:
    """A validated PDS search. ``filter`` is what the store pre-filters on; ``pds_rank.rank`` does the rest."""

    family: Pattern | None
    given: tuple[Pattern, ...]
    gender: str | None
    birthdate: DateRange
    death_date: DateRange | None
    postcode: Pattern | None
    general_practitioner: str | None
    email: str | None  # lower case
    phone: str | None  # digits (and a leading "+") only
    fuzzy: bool
    exact: bool
    history: bool
    max_results: int
    filter: SearchFilter

    @property
    def excludes_restricted(self) -> bool:
        """Restricted patients are never returned to a search by postcode or registered GP practice."""
        # Phone and e-mail do not exclude them: for restricted patients those criteria are never compared and
        # score a constant (pds_rank.WITHHELD_CONTACT), so a search cannot confirm a guessed number or e-mail;
        # see docs/decisions/restricted-patients.md.
        return self.postcode is not None or self.general_practitioner is not None


def _values(params: Mapping[str, str | Sequence[str]], name: str) -> list[str]:
    raw = params.get(name)
    if raw is None:
        return []
    return [raw] if isinstance(raw, str) else list(raw)


def _screen(name: str, value: object) -> str:
    """Reject hostile input before anything else looks at it (INVALID_SEARCH_DATA, value not echoed)."""
    if not isinstance(value, str):
        raise invalid_search_data(f"{name} must be text")
    if any(not ch.isprintable() for ch in value):
        raise invalid_search_data(f"{name} contains control characters")
    if len(value) > MAX_LENGTH.get(name, 35):
        raise invalid_search_data(f"{name} is longer than {MAX_LENGTH.get(name, 35)} characters")
    return value.strip()


def _pattern(name: str, value: str, *, key_of: Callable[[str], str | None], fuzzy: bool) -> Pattern:
    if "*" not in value:
        key = key_of(value) or ""
        if not key:
            raise invalid_search_data(f"{name} contains no searchable characters")
        return Pattern(value, key)
    if fuzzy:
        raise invalid_search_data(f"wildcards cannot be used in {name} with a fuzzy search")
    if "*" in value[:2]:
        raise invalid_search_data(f"wildcards cannot be used in the first two characters of {name}")
    parts = [key_of(part) or "" for part in value.split("*")]
    if not parts[0]:
        raise invalid_search_data(f"{name} must start with at least two characters before a wildcard")
    # Literal segments in order, anything between; the pattern is anchored at the start, and at the end only if
    # the value does not end with "*".
    regex = ".*".join(re.escape(p) for p in parts) + ("" if parts[-1] == "" else "$")
    return Pattern(value, parts[0], re.compile(regex))


def _date_range(name: str, values: list[str]) -> DateRange | None:
    if not values:
        return None
    bounds: dict[str, date] = {}
    for value in values:
        match = _DATE.fullmatch(value)
        try:
            day = date.fromisoformat(match.group(2)) if match else None
        except ValueError:
            day = None
        if match is None or day is None:
            raise invalid_value(name, value)
        prefix = match.group(1) or "eq"
        if prefix in bounds or (len(values) > 1 and prefix == "eq"):
            raise invalid_search_data(f"{name} takes one eq date, or one ge and/or one le date")
        bounds[prefix] = day
    if "eq" in bounds:
        return DateRange(bounds["eq"], bounds["eq"])
    start, end = bounds.get("ge"), bounds.get("le")
    if start and end and start > end:
        raise invalid_search_data(f"{name} range starts after it ends")
    return DateRange(start, end)


def _boolean(params: Mapping[str, str | Sequence[str]], name: str) -> bool:
    values = _values(params, name)
    if not values:
        return False
    flag = _BOOLEANS.get(values[0].lower())
    if flag is None:
        raise invalid_value(name, values[0])
    return flag


def _max_results(values: list[str], application_restricted: bool) -> int:
    if not values:
        return 1 if application_restricted else MAX_RESULTS_LIMIT
    text = values[0]
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_RESULTS_LIMIT:
        raise invalid_value("_max-results", text)
    if application_restricted and int(text) != 1:  # only a unique match in application-restricted mode
        raise invalid_value("_max-results", text, status=403)
    return int(text)


def parse_search(params: Mapping[str, str | Sequence[str]], *, application_restricted: bool = False) -> PatientSearch:
    """Validate a PDS search query (parameter -> values, as parsed from the query string)."""
    if not params:
        raise FhirError("UNSUPPORTED_SERVICE", "No search parameters provided")
    unknown = [name for name in params if name not in PARAMETERS]
    if unknown:
        raise additional_properties(unknown[:5])
    cleaned: dict[str, list[str]] = {}
    for name in params:
        values = _values(params, name)
        if len(values) > MAX_VALUES.get(name, 1):
            raise invalid_search_data(f"{name} is repeated too many times")
        cleaned[name] = [_screen(name, v) for v in values]
    get = cleaned.get
    fuzzy, exact, history = (_boolean(cleaned, n) for n in ("_fuzzy-match", "_exact-match", "_history"))
    max_results = _max_results(get("_max-results", []), application_restricted)

    gender = (get("gender") or [None])[0]
    if gender is not None and gender not in GENDERS:
        raise invalid_value("gender", gender)
    birthdate = _date_range("birthdate", get("birthdate", []))
    death_date = _date_range("death-date", get("death-date", []))

    for name in ("family", "given"):
        for value in get(name, []):
            if not _NAME_CHARS.fullmatch(value):
                raise invalid_search_data(f"{name} contains characters that are not allowed")
    family_text = (get("family") or [None])[0]
    family = _pattern("family", family_text, key_of=name_key, fuzzy=fuzzy) if family_text else None
    given = tuple(_pattern("given", v, key_of=name_key, fuzzy=fuzzy) for v in get("given", []) if v)

    if "address-postalcode" in cleaned and "address-postcode" in cleaned:
        raise invalid_search_data("address-postcode and address-postalcode cannot both be used")
    postcode_text = (get("address-postalcode") or get("address-postcode") or [None])[0]
    if postcode_text is not None and not _POSTCODE_CHARS.fullmatch(postcode_text):
        raise invalid_search_data("address-postalcode contains characters that are not allowed")
    postcode = _pattern("address-postalcode", postcode_text, key_of=postcode_key, fuzzy=fuzzy) \
        if postcode_text else None

    gp = (get("general-practitioner") or [None])[0]
    if gp is not None and not _ODS_CHARS.fullmatch(gp):
        raise invalid_search_data("general-practitioner must be an ODS code (letters and digits only)")
    email = (get("email") or [None])[0]
    if email is not None:
        if "*" in email:
            raise invalid_search_data("wildcards cannot be used in email")
        if not (6 < len(email) < 90 and _EMAIL.fullmatch(email)):
            raise invalid_value("email", email)
        email = email.lower()
    phone = (get("phone") or [None])[0]
    if phone is not None:
        if not _PHONE_CHARS.fullmatch(phone):
            raise invalid_search_data("phone contains characters that are not allowed")
        phone = phone_key(phone)

    if birthdate is None:
        raise missing_value(MISSING_BIRTHDATE, issue_code="structure")
    # fuzzy: given+family+birthdate, or family or given with birthdate+gender+postcode
    fuzzy_enough = bool(given and family) or bool(gender and postcode and (family or given))
    if not (fuzzy_enough if fuzzy else family is not None):
        raise invalid_search_data(TOO_FEW)

    query_filter = _store_filter(family, given, gender, birthdate, postcode, gp, fuzzy)
    return PatientSearch(family, given, gender, birthdate, death_date, postcode, gp.upper() if gp else None,
                         email, phone, fuzzy, exact, history or fuzzy, max_results, query_filter)


def phone_key(value: str) -> str:
    """Digits only, keeping a leading "+" (so "01632 960587" and "01632-960587" compare equal)."""
    digits = "".join(ch for ch in value if ch.isdigit())
    return "+" + digits if value.strip().startswith("+") else digits


def _store_filter(family: Pattern | None, given: tuple[Pattern, ...], gender: str | None, birthdate: DateRange,
                  postcode: Pattern | None, gp: str | None, fuzzy: bool) -> SearchFilter:
    """What the store can narrow on. Wildcard postcodes and fuzzy-mode GP/postcode (score-only) are left to
    ranking; the store's restricted exclusion is a first line only — ``rank`` enforces it again."""
    if fuzzy:
        narrow_by_postcode = postcode is not None and not (family and given)
        return SearchFilter(
            family_phonetic=soundex(family.key) if family else None,
            given_phonetic=soundex(given[0].key) if given else None,
            birth_date_from=birthdate.start, birth_date_to=birthdate.end, gender=gender,
            postcode=postcode.key if narrow_by_postcode and postcode else None,
            fuzzy=True, limit=CANDIDATE_LIMIT + 1)
    assert family is not None
    return SearchFilter(
        family=None if family.wildcard else family.key,
        family_prefix=family.key if family.wildcard else None,
        birth_date_from=birthdate.start, birth_date_to=birthdate.end, gender=gender,
        postcode=postcode.key if postcode and not postcode.wildcard else None,
        gp_ods=gp.upper() if gp else None, limit=CANDIDATE_LIMIT + 1)
