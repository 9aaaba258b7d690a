"""PDS search query validation: every rule, its error code and wording, and the store filter it produces."""

from __future__ import annotations

from datetime import date

import pytest

from app.service.core.outcome import FhirError
from app.service.pds.search import CANDIDATE_LIMIT, DateRange, parse_search
from app.service.store.rows import SearchFilter

BASIC = {"family": ["Smith"], "birthdate": ["eq2010-10-22"]}


def _error(params: dict, **kwargs: object) -> FhirError:
    with pytest.raises(FhirError) as caught:
        parse_search(params, **kwargs)
    return caught.value


def _code(params: dict, **kwargs: object) -> tuple[int, str]:
    error = _error(params, **kwargs)
    return error.status, error.spine_code


# --- what is accepted -----------------------------------------------------------------------------------------


def test_minimum_non_fuzzy_search() -> None:
    query = parse_search(BASIC)
    assert query.family is not None and query.family.key == "SMITH" and not query.family.wildcard
    assert query.birthdate == DateRange(date(2010, 10, 22), date(2010, 10, 22))
    assert (query.fuzzy, query.exact, query.history, query.max_results) == (False, False, False, 50)
    assert query.filter == SearchFilter(family="SMITH", birth_date_from=date(2010, 10, 22),
                                        birth_date_to=date(2010, 10, 22), limit=CANDIDATE_LIMIT + 1)


def test_single_string_values_are_accepted_too() -> None:
    assert parse_search({"family": "Smith", "birthdate": "2010-10-22"}).birthdate.start == date(2010, 10, 22)


def test_every_sandbox_scenario_parses() -> None:
    full = {**BASIC, "gender": ["female"], "email": ["jane.smith@example.com"], "phone": ["01632960587"]}
    parse_search(full)
    parse_search({**full, "family": ["Sm*"], "_max-results": ["1"]})
    parse_search({**full, "birthdate": ["ge2010-10-21", "le2010-10-23"]})
    parse_search({**full, "given": ["Jane"], "_fuzzy-match": ["true"]})
    parse_search({"family": ["Smith"], "given": ["John Paul", "James"], "gender": ["male"],
                  "birthdate": ["eq2010-10-22"], "_fuzzy-match": ["false"], "_exact-match": ["false"],
                  "_history": ["true"]})
    parse_search({"_fuzzy-match": ["false"], "_exact-match": ["false"], "_history": ["true"], "_max-results": ["1"],
                  "family": ["Smith"], "given": ["Jane"], "gender": ["female"], "birthdate": ["eq2010-10-22"],
                  "death-date": ["eq2010-10-22"], "address-postcode": ["LS1 6AE"], "general-practitioner": ["Y12345"]})


@pytest.mark.parametrize(("values", "start", "end"), [
    (["2010-10-22"], date(2010, 10, 22), date(2010, 10, 22)),
    (["ge2010-10-21"], date(2010, 10, 21), None), (["le2010-10-23"], None, date(2010, 10, 23)),
    (["le2010-10-23", "ge2010-10-21"], date(2010, 10, 21), date(2010, 10, 23)),
])
def test_birthdate_forms(values: list[str], start: date | None, end: date | None) -> None:
    query = parse_search({"family": ["Smith"], "birthdate": values})
    assert query.birthdate == DateRange(start, end)
    assert (query.filter.birth_date_from, query.filter.birth_date_to) == (start, end)


def test_wildcards_become_a_prefix_filter_and_a_pattern() -> None:
    query = parse_search({**BASIC, "family": ["Sm*t*"], "given": ["Ja*"], "address-postalcode": ["LS1*"]})
    assert query.filter.family is None and query.filter.family_prefix == "SM"
    assert query.filter.postcode is None  # wildcard postcodes are matched in ranking
    assert query.family is not None and query.family.match("SMITH") is not None
    assert query.family.match("SMYTHE") is not None  # the specification: "Sm*t*" matches Smith, Smythe
    assert query.family.match("SMALL") is None and query.family.match("ASMITH") is None
    assert query.family.match("SMITH") < 1.0  # a wildcard hit is never an exact match
    assert query.postcode is not None and query.postcode.match("LS16AE") and not query.postcode.match("LS26AE")


def test_exact_postcode_and_gp_go_to_the_store() -> None:
    query = parse_search({**BASIC, "address-postalcode": ["ls1 6ae"], "general-practitioner": ["y12345"]})
    assert (query.filter.postcode, query.filter.gp_ods) == ("LS16AE", "Y12345")
    assert query.excludes_restricted and query.general_practitioner == "Y12345"


def test_fuzzy_filter_uses_phonetic_keys() -> None:
    query = parse_search({**BASIC, "given": ["Jane"], "_fuzzy-match": ["TRUE"], "general-practitioner": ["Y12345"]})
    assert query.fuzzy and query.history  # fuzzy always searches history
    assert query.filter.fuzzy and query.filter.family_phonetic == "S530" and query.filter.given_phonetic == "J500"
    assert query.filter.family is None and query.filter.gp_ods is None  # GP only scores in fuzzy mode


@pytest.mark.parametrize("params", [
    {"given": ["Jane"], "family": ["Smith"], "birthdate": ["eq2010-10-22"]},
    {"family": ["Smith"], "birthdate": ["eq2010-10-22"], "gender": ["female"], "address-postalcode": ["LS1 6AE"]},
    {"given": ["Jane"], "birthdate": ["eq2010-10-22"], "gender": ["female"], "address-postalcode": ["LS1 6AE"]},
])
def test_fuzzy_combinations(params: dict) -> None:
    query = parse_search({**params, "_fuzzy-match": ["true"]})
    if "family" not in params:
        assert query.filter.postcode == "LS16AE"  # needed to narrow the candidates


def test_max_results_and_mode() -> None:
    assert parse_search({**BASIC, "_max-results": ["1"]}).max_results == 1
    assert parse_search({**BASIC, "_max-results": ["50"]}).max_results == 50
    assert parse_search(BASIC, application_restricted=True).max_results == 1


def test_email_and_phone_are_normalised() -> None:
    query = parse_search({**BASIC, "email": ["Jane.Smith@Example.com"], "phone": ["01632 960-587"]})
    assert (query.email, query.phone) == ("jane.smith@example.com", "01632960587")
    assert parse_search({**BASIC, "phone": ["+44 1632 960587"]}).phone == "+441632960587"


# --- what is rejected, and how ----------------------------------------------------------------------------------


def test_no_parameters() -> None:
    assert _code({}) == (400, "UNSUPPORTED_SERVICE")


def test_unknown_parameters() -> None:
    error = _error({**BASIC, "invalidParam": ["123"]})
    assert (error.status, error.spine_code) == (400, "ADDITIONAL_PROPERTIES")
    assert error.diagnostics == ("Invalid request with error - Additional properties are not allowed "
                                 "('invalidParam' was unexpected)")
    assert _code({**BASIC, "Family": ["x"]}) == (400, "ADDITIONAL_PROPERTIES")  # names are case-sensitive
    assert _code({**BASIC, "_count": ["1"]}) == (400, "ADDITIONAL_PROPERTIES")


def test_missing_birthdate_is_missing_value() -> None:
    error = _error({"family": ["PATSON"], "given": ["PAULINE"]})
    assert (error.status, error.spine_code, error.issue_code) == (400, "MISSING_VALUE", "structure")
    assert error.diagnostics == "Missing value - 'birth_date/birth_date_range_start/birth_date_range_end'"
    assert _code({"email": ["j.smith@example.com"], "phone": ["0163"]}) == (400, "MISSING_VALUE")


def test_non_fuzzy_needs_a_family_name() -> None:
    error = _error({"given": ["PAULINE"], "birthdate": ["1979-07-27"]})
    assert (error.status, error.spine_code) == (400, "INVALID_SEARCH_DATA")
    assert error.diagnostics == ("Invalid search data provided - 'No searches were performed as the search "
                                 "criteria did not meet the minimum requirements'")
    assert _code({"birthdate": ["1979-07-27"], "email": ["a.b@example.com"]}) == (400, "INVALID_SEARCH_DATA")


@pytest.mark.parametrize("params", [
    {"family": ["Smith"], "birthdate": ["eq2010-10-22"]},
    {"given": ["Jane"], "birthdate": ["eq2010-10-22"], "gender": ["female"]},
    {"family": ["Smith"], "birthdate": ["eq2010-10-22"], "address-postalcode": ["LS1 6AE"]},
])
def test_fuzzy_needs_one_of_the_listed_combinations(params: dict) -> None:
    assert _code({**params, "_fuzzy-match": ["true"]}) == (400, "INVALID_SEARCH_DATA")


@pytest.mark.parametrize(("name", "value"), [("gender", "mal"), ("gender", "Female"), ("birthdate", "2010/10/22"),
                                             ("birthdate", "eq2010-13-01"), ("birthdate", "gt2010-10-22"),
                                             ("birthdate", "2010-02-30"), ("death-date", "yesterday"),
                                             ("_fuzzy-match", "yes"), ("_exact-match", "1"), ("_history", ""),
                                             ("_max-results", "0"), ("_max-results", "51"), ("_max-results", "ten"),
                                             ("_max-results", "-1"), ("email", "not-an-email")])
def test_bad_values_are_invalid_value(name: str, value: str) -> None:
    error = _error({**BASIC, name: [value]})
    assert (error.status, error.spine_code) == (400, "INVALID_VALUE")
    assert error.diagnostics == f"Invalid value - '{value}' in field '{name}'"


def test_gender_example_from_the_specification() -> None:
    assert _error({**BASIC, "gender": ["mal"]}).to_outcome()["issue"][0]["diagnostics"] == \
        "Invalid value - 'mal' in field 'gender'"


def test_more_than_one_result_in_application_restricted_mode_is_403() -> None:
    error = _error({**BASIC, "_max-results": ["2"]}, application_restricted=True)
    assert (error.status, error.spine_code) == (403, "INVALID_VALUE")


@pytest.mark.parametrize("dates", [["eq2010-10-22", "eq2010-10-23"], ["ge2010-10-22", "ge2010-10-23"],
                                   ["eq2010-10-22", "le2010-10-23"], ["ge2010-10-23", "le2010-10-22"]])
def test_bad_date_ranges(dates: list[str]) -> None:
    assert _code({"family": ["Smith"], "birthdate": dates}) == (400, "INVALID_SEARCH_DATA")


@pytest.mark.parametrize("params", [
    {"family": ["S*"]}, {"family": ["*mith"]}, {"given": ["J*"]}, {"address-postalcode": ["L*"]},
    {"family": ["Sm*"], "given": ["Jane"], "_fuzzy-match": ["true"]},
    {"given": ["Ja*"], "_fuzzy-match": ["true"]},
    {"email": ["jane*@example.com"]}, {"phone": ["01632*"]}, {"general-practitioner": ["Y12*"]},
])
def test_wildcard_rules(params: dict) -> None:
    base = {**BASIC, "given": ["Jane"]}
    assert _code({**base, **params}) == (400, "INVALID_SEARCH_DATA")


def test_both_postcode_parameters() -> None:
    assert _code({**BASIC, "address-postcode": ["LS1 6AE"], "address-postalcode": ["LS1 6AE"]}) == \
        (400, "INVALID_SEARCH_DATA")


@pytest.mark.parametrize(("name", "value"), [
    ("family", "Smith'; DROP TABLE patients; --"), ("family", "Robert'); --"), ("family", "x\" OR \"1\"=\"1"),
    ("family", "Smith\x00"), ("family", "Sm\nith"), ("family", "S" * 36), ("family", "A" * 10_000),
    ("family", "<script>alert(1)</script>"), ("family", "%27%20OR%201=1"), ("given", "Jane;"),
    ("given", "\u202eenaJ"), ("address-postalcode", "LS1 6AE' OR '1'='1"), ("address-postalcode", "LS1 6AE 12345"),
    ("general-practitioner", "Y12345' --"), ("general-practitioner", "Y123456789AB"), ("phone", "0163;rm -rf"),
    ("phone", "0" * 21), ("email", "a@b.c\r\nBcc: x@y.z"), ("email", "x" * 95 + "@example.com"),
    ("gender", "female\x00"), ("birthdate", "eq2010-10-22\x1b"), ("_max-results", "1" * 40),
    ("family", "'''"), ("family", "--"),
])
def test_hostile_input_is_a_clean_invalid_search_data(name: str, value: str) -> None:
    error = _error({**BASIC, name: [value]})
    assert (error.status, error.spine_code) == (400, "INVALID_SEARCH_DATA")
    assert value not in (error.diagnostics or "")  # never echoed back


def test_non_text_values_are_rejected() -> None:
    assert _code({**BASIC, "gender": [None]}) == (400, "INVALID_SEARCH_DATA")


def test_repeated_single_valued_parameters() -> None:
    assert _code({"family": ["Smith", "Jones"], "birthdate": ["2010-10-22"]}) == (400, "INVALID_SEARCH_DATA")
    assert _code({**BASIC, "given": ["A", "B", "C", "D", "E", "F"]}) == (400, "INVALID_SEARCH_DATA")
    assert _code({"family": ["Smith"], "birthdate": ["ge2010-10-22", "le2010-10-23", "eq2010-10-22"]}) == \
        (400, "INVALID_SEARCH_DATA")


def test_names_with_real_world_punctuation_and_accents_are_fine() -> None:
    for family in ("O'Brien", "O\u2019Brien", "Smith-Jones", "St. John", "Kociński", "Ní Bhriain", "Øverland"):
        assert parse_search({**BASIC, "family": [family]}).family is not None
