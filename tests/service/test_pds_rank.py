"""Scoring and ranking of search candidates, and the search response (Bundle or TOO_MANY_MATCHES)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from app.nhs_number import synthetic
from app.service.core import patient as fp
from app.service.pds.rank import rank, score, search_response
from app.service.pds.search import CANDIDATE_LIMIT, parse_search
from app.service.pds.seed import reference_rows
from app.service.store.rows import PatientRow
from tests.service.test_fhir_spec import assert_valid

BASE = "https://api.service.nhs.uk/personal-demographics/FHIR/R4"
NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
SANDBOX = reference_rows()


def person(i: int, family: str, given: list[str], born: str, *, gender: str = "female", postcode: str = "LS1 6AE",
           gp: str = "B86001", restricted: bool = False, telecom: tuple = (), old_names: tuple = (),
           died: str | None = None, **row: object) -> PatientRow:
    names = [fp.human_name(family, given, id="N1"), *old_names]
    resource = fp.patient(synthetic(i), names=names, gender=gender, birth_date=born, deceased=died,
                          addresses=[fp.address(["1 Mill Lane", "Leeds"], postcode, id="A1")],
                          telecom=list(telecom), gp=fp.general_practitioner(gp, id="G1"), restricted=restricted)
    return dataclasses.replace(fp.to_row(resource), **row) if row else fp.to_row(resource)


def ids(ranked: list[tuple[PatientRow, float]]) -> list[str]:
    return [row.nhs_number for row, _ in ranked]


def search(params: dict, rows: list[PatientRow]) -> list[tuple[str, float]]:
    return [(row.nhs_number, s) for row, s in rank(parse_search(params), rows)]


def test_sandbox_basic_search_scores_one() -> None:
    params = {"family": ["Smith"], "gender": ["female"], "birthdate": ["eq2010-10-22"],
              "email": ["jane.smith@example.com"], "phone": ["01632960587"]}
    assert search(params, SANDBOX) == [("9000000009", 1.0)]
    assert search({**params, "email": ["deb.trotter@example.com"], "phone": ["0121111111"]}, SANDBOX) == []


def test_sandbox_wildcard_finds_two_below_one() -> None:
    result = search({"family": ["Sm*"], "gender": ["female"], "birthdate": ["eq2010-10-22"]}, SANDBOX)
    assert [n for n, _ in result] == ["9000000009", "9000000017"]
    assert all(0.8 <= s < 1.0 for _, s in result)


def test_sandbox_fuzzy_search_ranks_the_exact_name_first() -> None:
    result = search({"family": ["Smith"], "given": ["Jane"], "gender": ["female"], "birthdate": ["eq2010-10-22"],
                     "_fuzzy-match": ["true"]}, SANDBOX)
    assert result[0] == ("9000000009", 1.0)
    assert result[1][0] == "9000000017" and 0.75 < result[1][1] < 1.0  # Jayne Smyth: a homophone


def test_sandbox_restricted_patient_is_found_by_name_and_contact_details() -> None:
    params = {"family": ["Smythe"], "given": ["Janet"], "gender": ["female"], "birthdate": ["eq2005-06-16"],
              "email": ["janet.smythe@example.com"], "phone": ["01632960587"]}
    assert search(params, SANDBOX) == [("9000000025", 1.0)]


def test_restricted_patients_never_returned_for_postcode_or_gp_searches() -> None:
    rows = [person(1, "Smith", ["Ann"], "1980-01-01", restricted=True), person(2, "Smith", ["Ann"], "1980-01-01")]
    base = {"family": ["Smith"], "birthdate": ["1980-01-01"]}
    assert ids(rank(parse_search(base), rows)) == [rows[0].nhs_number, rows[1].nhs_number]
    for extra in ({"address-postalcode": ["LS1 6AE"]}, {"address-postcode": ["LS1*"]},
                  {"general-practitioner": ["B86001"]}):
        assert ids(rank(parse_search({**base, **extra}), rows)) == [rows[1].nhs_number]
    fuzzy = {"family": ["Smith"], "given": ["Ann"], "birthdate": ["1980-01-01"], "_fuzzy-match": ["true"],
             "general-practitioner": ["B86001"]}
    assert ids(rank(parse_search(fuzzy), rows)) == [rows[1].nhs_number]


def test_superseded_and_invalidated_are_never_results() -> None:
    rows = [person(1, "Smith", ["Ann"], "1980-01-01", superseded_by=synthetic(3)),
            person(2, "Smith", ["Ann"], "1980-01-01", invalidated=True),
            person(3, "Smith", ["Ann"], "1980-01-01")]
    assert ids(rank(parse_search({"family": ["Smith"], "birthdate": ["1980-01-01"]}), rows)) == [synthetic(3)]


def test_ranking_is_best_first_then_by_nhs_number() -> None:
    rows = [person(5, "Smithson", ["Ann"], "1980-01-01"), person(4, "Smith", ["Ann", "Marie"], "1980-01-01"),
            person(3, "Smith", ["Ann"], "1980-01-01"), person(2, "Smith", ["Annabel"], "1980-01-01")]
    result = rank(parse_search({"family": ["Smi*"], "given": ["Ann"], "birthdate": ["1980-01-01"]}), rows)
    assert ids(result) == [synthetic(3), synthetic(4), synthetic(5)]  # Annabel does not match "Ann" exactly
    scores = [s for _, s in result]
    assert scores == sorted(scores, reverse=True) and scores[0] == scores[1] > scores[2]
    exact = rank(parse_search({"family": ["Smith"], "given": ["Ann"], "birthdate": ["1980-01-01"]}), rows)
    assert [s for _, s in exact] == [1.0, 1.0]


def test_extra_given_names_lower_the_score_but_do_not_exclude() -> None:
    rows = [person(1, "Smith", ["John Paul", "James"], "2010-10-22", gender="male"),
            person(2, "Smith", ["John Paul"], "2010-10-22", gender="male")]
    result = search({"family": ["Smith"], "given": ["John Paul", "James"], "birthdate": ["eq2010-10-22"]}, rows)
    assert result[0] == (synthetic(1), 1.0) and result[1][0] == synthetic(2) and result[1][1] < 1.0


def test_exact_match_keeps_only_perfect_scores() -> None:
    rows = [person(1, "Smith", ["Ann"], "1980-01-01"), person(2, "Smyth", ["Ann"], "1980-01-01")]
    fuzzy = {"family": ["Smith"], "given": ["Ann"], "birthdate": ["1980-01-01"], "_fuzzy-match": ["true"]}
    assert len(search(fuzzy, rows)) == 2
    assert search({**fuzzy, "_exact-match": ["true"]}, rows) == [(synthetic(1), 1.0)]
    assert search({"family": ["Sm*"], "birthdate": ["1980-01-01"], "_exact-match": ["true"]}, rows) == []


def test_fuzzy_handles_accents_homophones_and_transposed_names() -> None:
    rows = [person(1, "PÀTTISÖN", ["PÀULINÉ"], "1979-07-27"), person(2, "Thomas", ["Adam"], "1979-07-27")]
    result = search({"family": ["PATSON"], "given": ["PAULINE"], "birthdate": ["1979-07-27"],
                     "_fuzzy-match": ["true"]}, rows)
    assert [n for n, _ in result] == [synthetic(1)] and 0.9 < result[0][1] < 1.0
    swapped = search({"family": ["Adam"], "given": ["Thomas"], "birthdate": ["1979-07-27"],
                      "_fuzzy-match": ["true"]}, rows)
    assert [n for n, _ in swapped] == [synthetic(2)] and swapped[0][1] < 1.0
    assert search({"family": ["Jones"], "given": ["Pauline"], "birthdate": ["1979-07-27"],
                   "_fuzzy-match": ["true"]}, rows) == []


def test_history_matches_old_names_with_a_lower_score() -> None:
    maiden = fp.human_name("Jones", ["Ann"], use="maiden", id="N0")
    rows = [person(1, "Smith", ["Ann"], "1980-01-01", old_names=(maiden,))]
    base = {"family": ["Jones"], "birthdate": ["1980-01-01"]}
    assert search(base, rows) == []
    found = search({**base, "_history": ["true"]}, rows)
    assert [n for n, _ in found] == [synthetic(1)] and found[0][1] == pytest.approx(0.95)


def test_fuzzy_score_only_criteria_lower_the_score() -> None:
    rows = [person(1, "Smith", ["Ann"], "1980-01-01", gp="B86001", died="2020-01-01T00:00:00+00:00")]
    base = {"family": ["Smith"], "given": ["Ann"], "birthdate": ["1980-01-01"], "_fuzzy-match": ["true"]}
    assert search({**base, "general-practitioner": ["B86001"], "death-date": ["2020-01-01"]}, rows)[0][1] == 1.0
    lowered = search({**base, "general-practitioner": ["Y99999"], "death-date": ["2021-01-01"]}, rows)
    assert lowered and lowered[0][1] < 1.0
    strict = {"family": ["Smith"], "birthdate": ["1980-01-01"]}
    assert search({**strict, "general-practitioner": ["Y99999"]}, rows) == []
    assert search({**strict, "death-date": ["le2019-12-31"]}, rows) == []
    assert search({**strict, "death-date": ["ge2019-12-31"]}, rows)[0][1] == 1.0


def test_postcode_matching() -> None:
    rows = [person(1, "Smith", ["Ann"], "1980-01-01", postcode="LS1 6AE")]
    base = {"family": ["Smith"], "birthdate": ["1980-01-01"]}
    assert search({**base, "address-postalcode": ["ls16ae"]}, rows)[0][1] == 1.0
    assert 0.8 <= search({**base, "address-postalcode": ["LS*"]}, rows)[0][1] < 1.0
    assert search({**base, "address-postalcode": ["LS2 7UE"]}, rows) == []
    fuzzy = {"family": ["Smith"], "given": ["Ann"], "birthdate": ["1980-01-01"], "_fuzzy-match": ["true"]}
    moved = search({**fuzzy, "address-postalcode": ["LS1 9ZZ"]}, rows)[0][1]
    elsewhere = search({**fuzzy, "address-postalcode": ["M13 9PL"]}, rows)[0][1]
    assert 1.0 > moved > elsewhere


def test_email_and_phone_must_match_exactly() -> None:
    telecom = (fp.contact_point("email", "Ann.Smith@Example.com"), fp.contact_point("phone", "01632 960123"))
    rows = [person(1, "Smith", ["Ann"], "1980-01-01", telecom=telecom)]
    base = {"family": ["Smith"], "birthdate": ["1980-01-01"]}
    assert search({**base, "email": ["ann.smith@example.com"], "phone": ["01632960123"]}, rows)[0][1] == 1.0
    assert search({**base, "email": ["ann.smyth@example.com"]}, rows) == []
    assert search({**base, "phone": ["01632960124"]}, rows) == []


def test_gender_and_birthdate_filter() -> None:
    rows = [person(1, "Brown", ["Ann"], "1981-01-01", gender=g) for g in ("male",)] + [
        person(2, "Brown", ["Ann"], "1981-01-02", gender="female")]
    assert search({"family": ["Brown"], "birthdate": ["1981-01-01"], "gender": ["female"]}, rows) == []
    assert len(search({"family": ["Brown"], "birthdate": ["ge1981-01-01", "le1981-01-02"]}, rows)) == 2


def test_score_is_none_for_candidates_the_store_should_not_have_sent() -> None:
    row = person(1, "Jones", ["Ann"], "1980-01-01")
    assert score(parse_search({"family": ["Smith"], "birthdate": ["1980-01-01"]}), row) is None


def test_too_many_matches_is_a_200_outcome() -> None:
    query = parse_search({"family": ["Sm*"], "gender": ["female"], "birthdate": ["eq2010-10-22"],
                          "_max-results": ["1"]})
    body = search_response(query, SANDBOX, base_url=BASE, timestamp=NOW)
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["details"]["coding"][0]["code"] == "TOO_MANY_MATCHES"
    assert body["issue"][0]["severity"] == "information" and body["issue"][0]["code"] == "multiple-matches"


def test_default_max_results_is_fifty() -> None:
    rows = [person(i, "Smith", ["Ann"], "1980-01-01") for i in range(51)]
    query = parse_search({"family": ["Smith"], "birthdate": ["1980-01-01"]})
    assert search_response(query, rows[:50], base_url=BASE, timestamp=NOW)["total"] == 50
    assert search_response(query, rows, base_url=BASE, timestamp=NOW)["resourceType"] == "OperationOutcome"


def test_a_truncated_candidate_list_is_too_many_matches() -> None:
    rows = [person(i, "Smith", ["Ann"], "1980-01-01") for i in range(CANDIDATE_LIMIT + 1)]
    query = parse_search({"family": ["Smith"], "given": ["Ann"], "birthdate": ["1980-01-01"],
                          "_exact-match": ["true"], "_max-results": ["50"]})
    assert query.filter.limit == CANDIDATE_LIMIT + 1
    assert search_response(query, rows, base_url=BASE, timestamp=NOW)["resourceType"] == "OperationOutcome"


def test_search_response_bundle_is_valid_and_strips_restricted_patients() -> None:
    query = parse_search({"family": ["Smythe"], "given": ["Janet"], "gender": ["female"],
                          "birthdate": ["eq2005-06-16"]})
    body = search_response(query, SANDBOX, base_url=BASE, timestamp=NOW)
    assert body["total"] == 1 and body["entry"][0]["search"]["score"] == 1.0
    resource = body["entry"][0]["resource"]
    assert not {"address", "telecom", "contact", "generalPractitioner"} & set(resource)
    assert_valid(body, "PatientSearch.yaml")


def test_empty_search_is_an_empty_bundle() -> None:
    body = search_response(parse_search({"family": ["Nobody"], "birthdate": ["1900-01-01"]}), SANDBOX,
                           base_url=BASE, timestamp=NOW)
    assert (body["resourceType"], body["type"], body["total"], body["entry"]) == ("Bundle", "searchset", 0, [])


def _very_restricted(row: PatientRow) -> PatientRow:
    resource = {**row.resource, "meta": {**row.resource["meta"], "security": [fp.security_label("V")]}}
    return fp.to_row(resource)


def test_phone_and_email_never_decide_or_score_a_restricted_patient() -> None:
    """For a restricted (R or V) patient, a right and a wrong phone or e-mail give the same answer — presence,
    order and score — in every mode, when the other criteria match; and never return them when they do not."""
    telecom = (fp.contact_point("email", "ann.smith@example.com"), fp.contact_point("phone", "01632 960123"))
    restricted = person(1, "Smith", ["Ann"], "1980-01-01", restricted=True, telecom=telecom)
    very = _very_restricted(person(2, "Smith", ["Ann", "Jo"], "1980-01-01", telecom=(
        fp.contact_point("phone", "01632 960555"),)))
    no_telecom = person(3, "Smyth", ["Ann"], "1980-01-01", restricted=True)
    open_row = person(4, "Smith", ["Ann"], "1980-01-01", telecom=(fp.contact_point("phone", "01632 960777"),))
    rows = [restricted, very, no_telecom, open_row]
    assert very.restricted and fp.security_code(very.resource) == "V"
    restricted_numbers = {r.nhs_number for r in rows if r.restricted}
    modes = [{"family": ["Smith"], "birthdate": ["eq1980-01-01"]},
             {"family": ["Sm*"], "birthdate": ["eq1980-01-01"]},  # a wildcard: the other criteria score < 1.0
             {"family": ["Smith"], "given": ["Ann"], "birthdate": ["eq1980-01-01"], "_history": ["true"]},
             {"family": ["Smith"], "given": ["Ann"], "birthdate": ["eq1980-01-01"], "_exact-match": ["true"]},
             {"family": ["Smith"], "given": ["Ann"], "birthdate": ["eq1980-01-01"], "_fuzzy-match": ["true"]},
             {"family": ["Smith"], "given": ["Anne"], "birthdate": ["eq1980-01-01"], "_fuzzy-match": ["true"]}]
    for base in modes:
        for name, right, wrong in (("phone", "01632960123", "01632960124"),
                                   ("email", "ann.smith@example.com", "ann.smyth@example.com")):
            answers = [[(n, s) for n, s in search({**base, name: [v]}, rows) if n in restricted_numbers]
                       for v in (right, wrong, "+441632960555" if name == "phone" else "x.y@example.org")]
            assert answers[0] and answers[0] == answers[1] == answers[2], (base, name, answers)
            assert restricted.nhs_number in [n for n, _ in answers[0]], (base, name)
            # a score is the same as with the other criteria alone when those match exactly, and otherwise
            # is what a matching number would add
            alone = dict(search(base, rows))
            for nhs, value in answers[0]:
                assert value >= alone[nhs], (base, name, nhs)
            both = [(n, s) for n, s in search({**base, "phone": ["01632960124"], "email": ["a.b@example.com"]},
                                              rows) if n in restricted_numbers]
            assert [n for n, _ in both] == [n for n, _ in answers[0]], (base, both)
    # the other criteria decide: a wrong birth date or name returns no restricted patient, right number or not
    for params in ({"family": ["Smith"], "birthdate": ["eq1980-01-02"]},
                   {"family": ["Jones"], "birthdate": ["eq1980-01-01"]}):
        for phone in ("01632960123", "01632960124"):
            assert search({**params, "phone": [phone]}, rows) == []
    # still never returned to a postcode or GP practice search, whatever the phone
    assert search({"family": ["Smith"], "birthdate": ["eq1980-01-01"], "address-postalcode": ["LS1 6AE"],
                   "phone": ["01632960123"]}, rows) == []


def test_phone_and_email_still_decide_for_patients_who_are_not_restricted() -> None:
    telecom = (fp.contact_point("email", "Bo.Green@Example.com"), fp.contact_point("phone", "01632 960321"))
    rows = [person(1, "Green", ["Bo"], "1975-05-05", telecom=telecom), person(2, "Green", ["Bo"], "1975-05-05")]
    for base in ({"family": ["Green"], "birthdate": ["eq1975-05-05"]},
                 {"family": ["Green"], "given": ["Bo"], "birthdate": ["eq1975-05-05"], "_fuzzy-match": ["true"]}):
        assert search({**base, "phone": ["01632960321"]}, rows) == [(rows[0].nhs_number, 1.0)]
        assert search({**base, "email": ["bo.green@example.com"]}, rows) == [(rows[0].nhs_number, 1.0)]
        assert search({**base, "phone": ["01632960322"]}, rows) == []
        assert search({**base, "email": ["bo.grey@example.com"]}, rows) == []
    wildcard = {"family": ["Gr*"], "birthdate": ["eq1975-05-05"]}
    assert search({**wildcard, "phone": ["01632960321"]}, rows)[0][1] > search(wildcard, rows)[0][1]
