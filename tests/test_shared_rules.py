"""The rules the service and its client both apply are written once (app.flag_rules, app.pds_rules). Until the
service reads them from there too, these tests hold its own copies to the shared ones, and the client's search form
to the service's own verdicts."""

from __future__ import annotations

import itertools
from datetime import date

import pytest

from app import flag_rules, pds_rules
from app.client.pds_models import SearchQuery
from app.service.core.outcome import FhirError
from app.service.flags import codes as flags_codes
from app.service.flags import model as flags_model
from app.service.flags import parse as flags_parse
from app.service.pds import search as pds_search


def test_the_services_flag_constants_are_the_shared_ones():
    for name in ("PATIENT_CONSENT", "BEST_INTEREST", "ATTORNEY_OR_DEPUTY", "PARENTAL", "OTHER_IMPAIRMENT",
                 "PREFER_NOT_TO_SAY", "BESPOKE", "CONSENT_GIVEN"):
        assert getattr(flags_model, name) == getattr(flag_rules, name), name
    for name in ("MAX_TEXT", "MAX_ITEMS"):
        assert getattr(flags_parse, name) == getattr(flag_rules, name), name
    for name in ("CATEGORY_SYSTEM", "NRAF", "EXT_FLAG_NOTES", "EXT_CONSENT_CREATE", "SNOMED", "SNOMED_ALIASES",
                 "CODES_FILE"):
        assert getattr(flags_codes, name) == getattr(flag_rules, name), name


def test_the_services_code_tables_are_the_shared_ones():
    theirs, ours = flags_codes.load_codes(), flag_rules.load_codes()
    for field in ("category", "impairment", "condition_category", "consent_purpose", "adjustment_category",
                  "proxy_role", "adjustment", "removal_reason"):
        assert getattr(theirs, field).system == getattr(ours, field).system, field
        assert dict(getattr(theirs, field).codes) == dict(getattr(ours, field).codes), field


def test_the_services_genders_are_the_shared_ones():
    assert pds_search.GENDERS == pds_rules.GENDERS


@pytest.mark.parametrize(("fuzzy", "family", "given", "gender", "postcode"),
                         list(itertools.product((False, True), repeat=5)))
def test_the_search_minimum_is_the_services(fuzzy, family, given, gender, postcode):
    query = SearchQuery(family="Smith" if family else "", given="Jane" if given else "", birth_date=date(1970, 3, 7),
                        gender="female" if gender else "", postcode="LS1 4AP" if postcode else "", fuzzy=fuzzy)
    params: dict[str, list[str]] = {}
    for name, value in query.params():  # what the client sends
        params.setdefault(name, []).append(value)
    try:
        pds_search.parse_search(params)
        accepted = True
    except FhirError:
        accepted = False
    assert pds_rules.meets_minimum(fuzzy=fuzzy, family=family, given=given, gender=gender,
                                   postcode=postcode) is accepted
