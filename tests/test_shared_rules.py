"""The rules the service and its client both apply are written once (app.flag_rules, app.pds_rules) and both read
them from there; these tests hold the client's search form to the service's own verdicts."""

from __future__ import annotations

import itertools
from datetime import date

import pytest

from app import flag_rules, pds_rules
from app.client.pds_models import SearchQuery
from app.service.core.outcome import FhirError
from app.service.flags import codes as flags_codes
from app.service.pds import search as pds_search


def test_the_service_reads_the_shared_flag_vocabulary():
    assert flags_codes.load_codes is flag_rules.load_codes  # one code table, loaded once for both ends
    assert flags_codes.FlagCodes is flag_rules.FlagCodes


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
