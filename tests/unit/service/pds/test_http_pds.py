"""The PDS API over real HTTP on loopback, on both stores: headers, reads, restricted, search, PATCH, audit."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from app.pki import TrainingCA
from tests.support.service.live import serve


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return TrainingCA.load_or_create(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def live(store, ca):
    with serve(store, ca) as service:
        yield service


@pytest.fixture
def alice(live):
    return live.login("alice")


def test_read_full_record_with_etag_and_echoed_ids(live, alice):
    h = live.headers(alice, "clin-1", **{"X-Correlation-ID": "corr-1"})
    r = httpx.get(live.pds("/Patient/9000000009"), headers=h)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    assert r.json()["id"] == "9000000009" and r.headers["etag"] == f'W/"{r.json()["meta"]["versionId"]}"'
    assert r.headers["x-request-id"] == h["X-Request-ID"] and r.headers["x-correlation-id"] == "corr-1"
    records = live.store.query_audit(nhs_number="9000000009")
    assert records[0].action == "pds.read" and records[0].outcome == "200"
    assert records[0].user_id == "alice" and records[0].request_id == h["X-Request-ID"].lower()


@pytest.mark.parametrize(("request_id", "code"), [(None, "MISSING_VALUE"), ("not-a-uuid", "INVALID_VALUE")])
def test_x_request_id_rules(live, alice, request_id, code):
    h = live.headers(alice, "clin-1")
    if request_id is None:
        del h["X-Request-ID"]
    else:
        h["X-Request-ID"] = request_id
    r = httpx.get(live.pds("/Patient/9000000009"), headers=h)
    assert r.status_code == 400
    assert r.json()["issue"][0]["details"]["coding"][0]["code"] == code


@pytest.mark.parametrize(("nhs", "status", "code"), [
    ("9000000000", 400, "INVALID_RESOURCE_ID"), ("9434765870", 404, "RESOURCE_NOT_FOUND"),
    ("12345", 400, "INVALID_RESOURCE_ID"), ("9000000009%27%20OR%201=1", 400, "INVALID_RESOURCE_ID")])
def test_bad_and_unknown_numbers(live, alice, nhs, status, code):
    r = httpx.get(live.pds(f"/Patient/{nhs}"), headers=live.headers(alice, "clin-1"))
    assert r.status_code == status, r.text
    assert r.json()["issue"][0]["details"]["coding"][0]["code"] == code


def test_restricted_patient_details_are_withheld(live, alice):
    r = httpx.get(live.pds("/Patient/9000000025"), headers=live.headers(alice, "clin-1"))
    assert r.status_code == 200
    body = r.json()
    assert body["meta"]["security"][0]["code"] == "R"
    assert not {"address", "telecom", "generalPractitioner", "contact"} & set(body)


def test_search_and_its_audit(live, alice):
    params = {"family": "Smith", "gender": "female", "birthdate": "eq2010-10-22"}
    h = live.headers(alice, "clin-1")
    r = httpx.get(live.pds("/Patient"), params=params, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resourceType"] == "Bundle" and body["total"] >= 1
    assert body["entry"][0]["resource"]["id"] == "9000000009" and body["entry"][0]["search"]["score"] == 1
    record = live.store.query_audit(action="pds.search")[0]
    assert "9000000009" in record.details["returned"]


def test_unknown_search_parameter(live, alice):
    r = httpx.get(live.pds("/Patient"), params={"family": "Smith", "birthdate": "eq2010-10-22", "colour": "x"},
                  headers=live.headers(alice, "clin-1"))
    assert r.status_code == 400 and r.json()["issue"][0]["details"]["coding"][0]["code"] == "ADDITIONAL_PROPERTIES"


def test_patch_with_if_match_then_stale_then_idempotent_replay(live, alice):
    h = live.headers(alice, "clin-1")
    current = httpx.get(live.pds("/Patient/9000000009"), headers=h)
    version = current.headers["etag"]
    body = {"patches": [{"op": "replace", "path": "/gender", "value": "male"}]}
    patch_headers = live.headers(alice, "clin-1", **{"If-Match": version,
                                                     "Content-Type": "application/json-patch+json"})
    r = httpx.patch(live.pds("/Patient/9000000009"), json=body, headers=patch_headers)
    assert r.status_code == 200, r.text
    assert r.json()["gender"] == "male" and r.headers["etag"] != version
    again = httpx.patch(live.pds("/Patient/9000000009"), json=body, headers=patch_headers)  # same X-Request-ID
    assert (again.status_code, again.content) == (r.status_code, r.content)
    stale = httpx.patch(live.pds("/Patient/9000000009"), json=body,
                        headers={**patch_headers, "X-Request-ID": str(uuid.uuid4())})
    assert stale.status_code == 409
    assert stale.json()["issue"][0]["details"]["coding"][0]["code"] == "RESOURCE_VERSION_MISMATCH"
    missing = httpx.patch(live.pds("/Patient/9000000009"), json=body,
                          headers={k: v for k, v in live.headers(alice, "clin-1").items()}
                          | {"Content-Type": "application/json-patch+json"})
    assert missing.status_code == 412


def test_role_without_the_activity_is_denied_and_audited(live, alice):
    r = httpx.patch(live.pds("/Patient/9000000009"), json={"patches": []},
                    headers=live.headers(alice, "clerk-1", **{"If-Match": 'W/"1"',
                                                              "Content-Type": "application/json-patch+json"}))
    assert r.status_code == 403 and r.json()["issue"][0]["details"]["coding"][0]["code"] == "ACCESS_DENIED"
    assert live.store.query_audit(nhs_number="9000000009", action="pds.patch")[0].outcome == "403"


def test_privacy_officer_queries_the_audit(live, alice):
    httpx.get(live.pds("/Patient/9000000009"), headers=live.headers(alice, "clin-1"))
    bob = live.login("bob")
    r = httpx.get(f"{live.url}/audit/records", params={"patient": "9000000009"}, headers=live.headers(bob, "po-1"))
    assert r.status_code == 200 and r.json()["records"][0]["user"] == "alice"
    denied = httpx.get(f"{live.url}/audit/records", headers=live.headers(alice, "clin-1"))
    assert denied.status_code == 403
    assert live.store.verify_audit().ok


def test_unknown_path_and_method(live):
    assert httpx.get(f"{live.url}/nothing").status_code == 404
    r = httpx.put(live.pds("/Patient/9000000009"))
    assert r.status_code == 405 and "GET" in r.headers["allow"]
    assert httpx.get(f"{live.url}/openapi.json").json()["openapi"].startswith("3.")


def test_patch_with_unstorable_values_is_a_400_and_changes_nothing(live, alice):
    """Values no store can keep (deep nesting, NUL, unpaired surrogates) are refused up front, never a 500."""
    h = live.headers(alice, "clin-1")
    before = httpx.get(live.pds("/Patient/9000000009"), headers=h)
    deep: dict = {"url": "https://example.org", "valueString": "x"}
    for _ in range(300):
        deep = {"url": "https://example.org", "extension": [deep]}
    for value in (deep, "nul \x00", "surrogate \ud800"):
        body = json.dumps({"patches": [{"op": "add", "path": "/extension/-", "value": value}]})
        r = httpx.patch(live.pds("/Patient/9000000009"), content=body.encode("utf-8", "surrogatepass"),
                        headers=live.headers(alice, "clin-1", **{"If-Match": before.headers["etag"],
                                                                  "Content-Type": "application/json-patch+json"}))
        assert r.status_code == 400, r.text
        assert r.json()["issue"][0]["details"]["coding"][0]["code"] == "INVALID_UPDATE"
    after = httpx.get(live.pds("/Patient/9000000009"), headers=h)
    assert after.headers["etag"] == before.headers["etag"]


@pytest.mark.parametrize("count", ["²", "0", "1001", "-1", "ten", "١٢"])
def test_audit_query_count_must_be_a_plain_number_in_range(live, alice, count):
    bob = live.login("bob")
    r = httpx.get(f"{live.url}/audit/records", params={"_count": count}, headers=live.headers(bob, "po-1"))
    assert r.status_code == 400, r.text
    assert r.json()["issue"][0]["details"]["coding"][0]["code"] == "INVALID_VALUE"
