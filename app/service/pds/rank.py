"""Scoring and ranking of the store's candidates for a validated PDS search, and the search response itself.

Scores follow PDS's contract: 1.0 means every supplied criterion matched exactly on current data; anything less
is a partial match (wildcards, history-only matches, fuzzy similarity, score-only criteria that disagree).
The score is a weighted mean of per-criterion scores, times 0.95 for a match only on a historic name and 0.95
for transposed names; rounded to four decimals like PDS's own scores (0.9896, 0.8595, ...).

Non-fuzzy: every supplied criterion must match (family exactly or by wildcard, the first given name, birth date,
gender, postcode, GP practice, date of death, email, phone); later given names only lower the score.
Fuzzy: names match by Soundex or Jaro-Winkler >= 0.75 (either way round, for transposed names) over all names
held; date of death, GP practice and postcode (when not needed to narrow) only affect the score; birth date,
gender, email and phone must still match.

Restricted (R or V) patients: their phone numbers and e-mail addresses are withheld, so a phone or e-mail
criterion never decides whether they are returned and never changes their score: it counts as
``WITHHELD_CONTACT`` whatever was searched (a right and a wrong number give the same answer). They are returned,
or not, on the other criteria alone.

Always excluded: superseded and invalidated records, and restricted patients when the search used a postcode
or GP practice (the store excludes them too; this is the second line).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from app.service.core.normalise import jaro_winkler, name_key, postcode_key, soundex
from app.service.core.outcome import too_many_matches
from app.service.core.patient import SEARCH_NAME_USES, parse_fhir_date, search_bundle, search_view
from app.service.pds.search import CANDIDATE_LIMIT, PatientSearch, Pattern, phone_key
from app.service.store.rows import PatientRow

WEIGHTS = {"family": 3.0, "given": 2.0, "birthdate": 3.0, "gender": 1.0, "postcode": 2.0, "gp": 1.0,
           "death": 1.0, "email": 1.0, "phone": 1.0}
FUZZY_THRESHOLD = 0.75
SOUNDEX_FLOOR = 0.9  # a Soundex-equal name scores at least this
HISTORIC = 0.95
TRANSPOSED = 0.95
PHONE_SYSTEMS = frozenset({"phone", "other", "sms"})
# What a phone or e-mail criterion scores for a restricted (R or V) patient, whose telecoms PDS withholds: the
# same constant whatever was searched, and the value is never compared. If a right number could return the
# patient, or score higher, than a wrong one, the search would confirm a guessed number. 1.0, as if it matched:
# the criterion still adds to the score of a patient the other criteria matched, as it does for everyone else
# (NHS's sandbox finds 9000000025 by name, e-mail and phone with 1.0); with 0.0 a restricted patient could never
# be an exact match, so `_exact-match` would never find them once a phone or e-mail was given.
WITHHELD_CONTACT = 1.0

_NameEntry = tuple[str, tuple[str, ...], bool]  # family key, given keys, current?


def _names(resource: Mapping[str, Any], history: bool) -> list[_NameEntry]:
    entries = []
    for name in resource.get("name") or ():
        current = name.get("use", "usual") in SEARCH_NAME_USES
        if current or history:
            given = tuple(name_key(g) for g in name.get("given") or ())
            entries.append((name_key(name.get("family") or ""), given, current))
    return entries


def _exact_given(query: tuple[Pattern, ...], given: tuple[str, ...]) -> float | None:
    if not query:
        return 1.0
    if not given or (first := query[0].match(given[0])) is None:
        return None
    rest = [max((s for g in given[1:] if (s := q.match(g)) is not None), default=0.5) for q in query[1:]]
    return (first + sum(rest)) / len(query)


def _similar(query_key: str, key: str) -> float | None:
    if not key:
        return None
    score = jaro_winkler(query_key, key)
    if soundex(query_key) == soundex(key):
        score = max(score, SOUNDEX_FLOOR)
    return score if score >= FUZZY_THRESHOLD else None


def _fuzzy_pair(q: PatientSearch, family: str, given: tuple[str, ...]) -> tuple[float, float] | None:
    f = _similar(q.family.key, family) if q.family else 1.0
    g = _similar(q.given[0].key, given[0] if given else "") if q.given else 1.0
    return None if f is None or g is None else (f, g)


def _name_scores(q: PatientSearch, resource: Mapping[str, Any]) -> tuple[float, float, float] | None:
    """Best (family score, given score, factor) over the names searched, or None when no name matches."""
    best: tuple[float, float, float] | None = None
    for family, given, current in _names(resource, q.history):
        factor = 1.0 if current else HISTORIC
        options: list[tuple[float, float, float]] = []
        if q.fuzzy:
            if (pair := _fuzzy_pair(q, family, given)) is not None:
                options.append((*pair, factor))
            if q.family and q.given and given:  # transposed: family searched as given and vice versa
                as_given, as_family = _similar(q.family.key, given[0]), _similar(q.given[0].key, family)
                if as_given is not None and as_family is not None:
                    options.append((as_given, as_family, factor * TRANSPOSED))
        elif (q.family is not None and (f := q.family.match(family)) is not None
              and (g := _exact_given(q.given, given)) is not None):
            options.append((f, g, factor))
        for option in options:
            if best is None or _name_value(option) > _name_value(best):
                best = option
    return best


def _name_value(option: tuple[float, float, float]) -> float:
    return (option[0] * WEIGHTS["family"] + option[1] * WEIGHTS["given"]) * option[2]


def _postcode_score(q: PatientSearch, resource: Mapping[str, Any]) -> float | None:
    assert q.postcode is not None
    best: float | None = None
    for item in resource.get("address") or ():
        home = item.get("use") == "home"
        key = postcode_key(item.get("postalCode"))
        if key is None or not (home or q.history):
            continue
        score = q.postcode.match(key)
        if score is None and q.fuzzy and key[:-3] and key[:-3] == q.postcode.key[:-3]:
            score = 0.6  # same outward code: moved locally
        if score is not None:
            score *= 1.0 if home else HISTORIC
            best = score if best is None else max(best, score)
    if best is None and q.fuzzy:
        return 0.0
    return best


def _telecom(resource: Mapping[str, Any], systems: frozenset[str]) -> list[str]:
    return [str(t.get("value", "")) for t in resource.get("telecom") or () if t.get("system") in systems]


def score(q: PatientSearch, row: PatientRow) -> float | None:
    """The PDS score (0..1) of one candidate, or None when it is not a match at all."""
    resource = row.resource
    if not q.birthdate.contains(row.birth_date) or (q.gender and row.gender != q.gender):
        return None
    names = _name_scores(q, resource)
    if names is None:
        return None
    family, given, factor = names
    parts: dict[str, float] = {"birthdate": 1.0}
    if q.family:
        parts["family"] = family
    if q.given:
        parts["given"] = given
    if q.gender:
        parts["gender"] = 1.0
    if q.postcode is not None:
        if (postcode := _postcode_score(q, resource)) is None:
            return None
        parts["postcode"] = postcode
    if q.general_practitioner is not None:
        same = row.gp_ods == q.general_practitioner
        if not same and not q.fuzzy:
            return None
        parts["gp"] = 1.0 if same else 0.0
    if q.death_date is not None:
        died = q.death_date.contains(parse_fhir_date(resource.get("deceasedDateTime")))
        if not died and not q.fuzzy:
            return None
        parts["death"] = 1.0 if died else 0.0
    if q.email is not None:
        if row.restricted:  # withheld: never compared, see WITHHELD_CONTACT
            parts["email"] = WITHHELD_CONTACT
        elif q.email in (v.lower() for v in _telecom(resource, frozenset({"email"}))):
            parts["email"] = 1.0
        else:
            return None
    if q.phone is not None:
        if row.restricted:
            parts["phone"] = WITHHELD_CONTACT
        elif q.phone in (phone_key(v) for v in _telecom(resource, PHONE_SYSTEMS)):
            parts["phone"] = 1.0
        else:
            return None
    total = sum(WEIGHTS[k] * v for k, v in parts.items()) / sum(WEIGHTS[k] for k in parts)
    return round(min(total * factor, 1.0), 4)


def rank(query: PatientSearch, candidates: Iterable[PatientRow]) -> list[tuple[PatientRow, float]]:
    """Every matching candidate with its score, best first (ties by NHS number, so the order is stable).
    ``_exact-match`` keeps only scores of 1.0. Not truncated: see ``search_response`` for ``_max-results``."""
    ranked: list[tuple[PatientRow, float]] = []
    for row in candidates:
        if row.invalidated or row.superseded_by or (row.restricted and query.excludes_restricted):
            continue
        value = score(query, row)
        if value is None or (query.exact and value < 1.0):
            continue
        ranked.append((row, value))
    ranked.sort(key=lambda pair: (-pair[1], pair[0].nhs_number))
    return ranked


def search_response(query: PatientSearch, candidates: Iterable[PatientRow], *, base_url: str,
                    timestamp: datetime) -> dict[str, Any]:
    """The 200 body: a searchset Bundle of search views, or the TOO_MANY_MATCHES OperationOutcome when more
    patients match than ``_max-results`` allows, or when the store returned more candidates than
    ``CANDIDATE_LIMIT`` (its answer was cut short, so the result could be silently incomplete)."""
    candidates = list(candidates)
    ranked = rank(query, candidates)
    if len(ranked) > query.max_results or len(candidates) > CANDIDATE_LIMIT:
        return too_many_matches()
    return search_bundle([(search_view(row.resource, row.version), value) for row, value in ranked],
                         base_url=base_url, timestamp=timestamp)
