"""The typed PDS client against the real service on loopback (tests/service/live.py)."""

from __future__ import annotations

import httpx
import pytest

from app.client.client import SpineClient
from app.client.models import Auth
from app.client.pds import Pds
from app.client.pds_models import SearchQuery
from app.errors import PatientNotFound, RecordChanged, ServiceRejected
from tests.service.live import serve


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from app.pki import TrainingCA
    from app.service.storage import open_store

    base = tmp_path_factory.mktemp("spine-live")
    store = open_store(f"sqlite:///{base / 'pds.db'}")
    with serve(store, TrainingCA.load_or_create(base / "pki")) as running:
        yield running
    store.close()


@pytest.fixture
def pds(live):
    with httpx.Client(timeout=15) as http:
        yield Pds(SpineClient(live.url, http), Auth(live.login("alice"), "clin-1"))


def test_read_search_and_typed_errors(pds):
    jane = pds.read("900 000 0009")
    assert jane.nhs_number == "9000000009" and jane.usual_name.family == "Smith" and jane.version >= 1
    restricted = pds.read("9000000025")
    assert restricted.restricted and restricted.addresses == () and restricted.telecom == ()
    with pytest.raises(PatientNotFound):
        pds.read("9434765919")
    with pytest.raises(ServiceRejected) as bad:
        pds.read("9000000000")
    assert bad.value.code == "INVALID_RESOURCE_ID"
    results = pds.search(SearchQuery(family="Smith", given="Jane", birth_date=jane.birth_date, fuzzy=True))
    assert "9000000009" in [m.patient.nhs_number for m in results.matches]


def test_contact_update_uses_if_match_and_refuses_stale_versions(pds):
    before = pds.read("9000000017")
    after = pds.update_contact(before, phones={"mobile": "07700 900123"})
    assert after.version == before.version + 1 and after.contact("phone", "mobile").value == "07700 900123"
    with pytest.raises(RecordChanged):  # the copy read before the change is stale now: nothing overwritten
        pds.update_contact(before, phones={"mobile": "07700 900999"})
    assert pds.read("9000000017").contact("phone", "mobile").value == "07700 900123"
    moved = pds.update_contact(after, address=(("10 Test Street", "Leeds"), "LS1 4AP"))
    assert moved.home_address.lines == ("10 Test Street", "Leeds") and moved.home_address.postcode == "LS1 4AP"


def test_a_role_without_the_amend_activity_is_refused(live):
    with httpx.Client(timeout=15) as http:
        clerk = Pds(SpineClient(live.url, http), Auth(live.login("bob"), "po-1"))
        with pytest.raises(ServiceRejected) as refused:
            clerk.read("9000000009")
    assert refused.value.status == 403
