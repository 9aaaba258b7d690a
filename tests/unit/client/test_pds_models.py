"""Parsing PDS resources into typed patients, and the JSON Patch the contact edit sends (pure)."""

from __future__ import annotations

from datetime import date

import pytest

from app.client.pds import contact_patches
from app.client.pds_models import SearchQuery, parse_patient, parse_search

TODAY = date(2026, 3, 1)


def _doc(**over):
    doc = {"resourceType": "Patient", "id": "9434765919", "meta": {"versionId": "4", "security": [{"code": "U"}]},
           "name": [{"id": "n1", "use": "usual", "family": "Smith", "given": ["Jane"], "prefix": ["Mrs"]}],
           "gender": "female", "birthDate": "1964-09-30",
           "address": [{"id": "old", "use": "home", "period": {"start": "2000-01-01", "end": "2010-01-01"},
                        "line": ["1 Old Road"], "postalCode": "LS1 1AA"},
                       {"id": "a1", "use": "home", "period": {"start": "2010-01-02"}, "line": ["2 New Street", "Leeds"],
                        "postalCode": "LS2 2BB", "extension": [{"url": "x", "valueString": "kept"}]}],
           "telecom": [{"id": "t1", "system": "phone", "use": "home", "value": "0113 496 0000"},
                       {"id": "t2", "system": "email", "use": "home", "value": "jane@example.com"},
                       {"id": "t3", "system": "phone", "use": "mobile", "value": "07700 900000"}],
           "generalPractitioner": [{"type": "Organization", "identifier": {"value": "Y12345"}}]}
    doc.update(over)
    return doc


def test_parse_patient():
    p = parse_patient(_doc(), today=TODAY)
    assert (p.nhs_number, p.version, p.gender, p.birth_date, p.restricted, p.gp_ods) == (
        "9434765919", 4, "female", date(1964, 9, 30), False, "Y12345")
    assert p.usual_name.family == "Smith" and p.home_address.id == "a1" and p.home_address.index == 1
    assert p.addresses[0].ended and not p.addresses[1].ended
    assert p.home_address.one_line == "2 New Street, Leeds, LS2 2BB"
    assert p.contact("phone", "mobile").value == "07700 900000" and p.contact("phone", "work") is None
    assert parse_patient(_doc(), version=9, today=TODAY).version == 9  # the ETag wins


def test_restricted_and_deceased():
    p = parse_patient(_doc(meta={"versionId": "1", "security": [{"code": "R"}]},
                           deceasedDateTime="2020-05-01T10:00:00+00:00"), today=TODAY)
    assert p.restricted and p.deceased.date() == date(2020, 5, 1)


def test_parse_search_and_too_many():
    bundle = {"resourceType": "Bundle", "entry": [{"resource": _doc(), "search": {"score": 0.9}}]}
    results = parse_search(bundle, today=TODAY)
    assert [m.score for m in results.matches] == [0.9] and not results.too_many
    outcome = {"resourceType": "OperationOutcome", "issue": [{"diagnostics": "Too many matches"}]}
    assert parse_search(outcome).too_many


def test_search_query_parameters():
    q = SearchQuery(family=" Smith ", given="Jane", birth_date=date(1964, 9, 30), gender="female", postcode="LS2",
                    fuzzy=True, max_results=10)
    assert q.params() == [("family", "Smith"), ("given", "Jane"), ("gender", "female"), ("address-postalcode", "LS2"),
                          ("birthdate", "eq1964-09-30"), ("_fuzzy-match", "true"), ("_max-results", "10")]


def test_patches_replace_whole_items_keeping_ids_and_extensions():
    p = parse_patient(_doc(), today=TODAY)
    ops = contact_patches(p, address=(("3 Other Lane", "", "Leeds"), "ls3 3cc"), phones={"home": "0113 496 1111"})
    assert ops == [
        {"op": "replace", "path": "/address/1", "value": {
            "id": "a1", "use": "home", "period": {"start": "2010-01-02"}, "line": ["3 Other Lane", "Leeds"],
            "postalCode": "LS3 3CC", "extension": [{"url": "x", "valueString": "kept"}]}},
        {"op": "replace", "path": "/telecom/0", "value": {"id": "t1", "system": "phone", "use": "home",
                                                            "value": "0113 496 1111"}},
    ]


def test_patches_remove_after_a_test_of_the_id_last_index_first_and_add_at_the_end():
    p = parse_patient(_doc(), today=TODAY)
    ops = contact_patches(p, address=None, phones={"home": "", "mobile": "", "work": "0113 496 2222"})
    assert ops == [
        {"op": "test", "path": "/telecom/2/id", "value": "t3"}, {"op": "remove", "path": "/telecom/2"},
        {"op": "test", "path": "/telecom/0/id", "value": "t1"}, {"op": "remove", "path": "/telecom/0"},
        {"op": "add", "path": "/telecom/-", "value": {"system": "phone", "use": "work", "value": "0113 496 2222"}},
    ]


def test_no_change_no_patch_and_bad_use_refused():
    p = parse_patient(_doc(), today=TODAY)
    assert contact_patches(p, address=(("2 New Street", "Leeds"), "LS2 2BB"), phones={"home": "0113 496 0000"}) == []
    with pytest.raises(ValueError):
        contact_patches(p, address=None, phones={"fax": "1"})


def test_a_patient_without_a_home_address_gets_one_added():
    p = parse_patient(_doc(address=[]), today=TODAY)
    ops = contact_patches(p, address=(("5 Fresh Road",), "LS5 5EE"), phones={})
    assert ops == [{"op": "add", "path": "/address/-", "value": {"use": "home", "line": ["5 Fresh Road"],
                                                                 "postalCode": "LS5 5EE"}}]


def test_an_ended_home_address_is_replaced_from_today():
    p = parse_patient(_doc(address=[_doc()["address"][0]]), today=TODAY)
    ops = contact_patches(p, address=(("5 Fresh Road",), "LS5 5EE"), phones={}, today=TODAY)
    assert ops == [{"op": "replace", "path": "/address/0", "value": {
        "id": "old", "use": "home", "period": {"start": "2026-03-01"}, "line": ["5 Fresh Road"],
        "postalCode": "LS5 5EE"}}]
