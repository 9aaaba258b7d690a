"""CP-IS over real HTTP on both stores: plans, access history, errors, who notifies, the audit trail, and the
outbox delivering each notification exactly once to the built-in local-authority inbox."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from app.pki import TrainingCA
from app.protocol import CPIS_BASE
from app.service.cpis import rules
from app.service.store import Store

from .cpis_helpers import NHS_SYSTEM, CpisWorld, serve_cpis, wait_for

SPINE = "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode"


@pytest.fixture(scope="module")
def world(shared_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CpisWorld]:
    ca = TrainingCA.load_or_create(tmp_path_factory.mktemp("pki"))
    with serve_cpis(shared_store, ca) as w:
        yield w


def records(store: Store, request_id: str) -> list:
    return [r for r in store.query_audit(limit=100_000) if r.request_id == request_id.lower()]


def notifications(store: Store, nhs: str) -> list:
    return store.cpis_notifications(nhs_number=nhs)


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    coding = body["issue"][0]["details"]["coding"][0]
    assert coding["system"] == SPINE
    return coding["code"]


def test_plans_with_the_local_authority_contacts(world: CpisWorld) -> None:
    nhs = world.children["cpp"]
    r = world.care_team(nhs, "sched-1", unscheduled="false")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    body = r.json()
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset" and body["total"] == 1
    team = body["entry"][0]["resource"]
    assert team["resourceType"] == "CareTeam" and team["status"] == "active"
    assert team["category"][0]["coding"][0] == {"system": "http://snomed.info/sct", "code": "342191000000101",
                                               "display": "Subject to child protection plan"}
    la = world.store.local_authority("TLA01")
    assert team["name"] == la.team
    assert team["subject"]["identifier"] == {"system": NHS_SYSTEM, "value": nhs}
    assert [t["value"] for t in team["telecom"]] == [la.office_hours, la.out_of_hours]
    assert [t["extension"][0]["valueCode"] for t in team["telecom"]] == ["office-hours", "out-of-hours"]
    assert team["managingOrganization"][0]["identifier"]["value"] == "TLA01"
    assert "end" not in team["period"] and team["period"]["start"]


@pytest.mark.parametrize(("label", "code", "count"), [
    ("lac", "764841000000100", 1), ("ucpp", "818901000000100", 1), ("two-las", None, 2),
    ("ended-recently", "342191000000101", 1), ("ended-long-ago", None, 0), ("none", None, 0)])
def test_plan_kinds_and_the_12_month_window(world: CpisWorld, label: str, code: str | None, count: int) -> None:
    r = world.care_team(world.children[label], "sched-1", unscheduled="false")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == count and len(body.get("entry", [])) == count
    if code:
        assert body["entry"][0]["resource"]["category"][0]["coding"][0]["code"] == code
    if label == "ended-recently":
        assert body["entry"][0]["resource"]["status"] == "inactive"
        assert body["entry"][0]["resource"]["period"]["end"]


def test_unknown_but_valid_nhs_number_is_total_0(world: CpisWorld) -> None:
    r = world.care_team("9434765919", "unsched-1")
    assert r.status_code == 200 and r.json()["total"] == 0 and "entry" not in r.json()
    assert world.store.cpis_notifications(nhs_number="9434765919") == []


@pytest.mark.parametrize(("params", "code"), [
    ({"patient:identifier": f"{NHS_SYSTEM}|9434765918"}, "INVALID_SEARCH_DATA"),  # fails modulus 11
    ({"patient:identifier": f"{NHS_SYSTEM}|12345"}, "INVALID_SEARCH_DATA"),
    ({"patient:identifier": "https://example.org/other|9434765919"}, "INVALID_SEARCH_DATA"),
    ({}, "INVALID_SEARCH_DATA"),
    ({"patient:identifier": f"{NHS_SYSTEM}|9434765919", "family": "x"}, "INVALID_SEARCH_DATA"),
])
def test_invalid_searches(world: CpisWorld, params: dict, code: str) -> None:
    for path in ("CareTeam", "AuditEvent"):
        headers = world.headers("unsched-1")
        r = world.http.get(f"{world.url}{CPIS_BASE}/{path}", params=params, headers=headers)
        assert r.status_code == 400 and error_code(r) == code, r.text
        assert r.json()["issue"][0]["code"] == "invalid"
        assert [x.outcome for x in records(world.store, headers["X-Request-ID"])] == ["400"]


@pytest.mark.parametrize("value", ["yes", "", "TRUE1", "0"])
def test_invalid_unscheduled_header_is_precondition_failed(world: CpisWorld, value: str) -> None:
    r = world.care_team(world.children["cpp"], "unsched-1", unscheduled=value)
    assert r.status_code == 400 and error_code(r) == "PRECONDITION_FAILED", r.text


def test_header_values_are_case_insensitive(world: CpisWorld) -> None:
    assert world.care_team(world.children["none"], "unsched-1", unscheduled="FALSE").status_code == 200


def _unscheduled_view(world: CpisWorld, label: str, urid: str, header: str | None) -> tuple[httpx.Response, list]:
    nhs = world.children[label]
    before = {n.id for n in notifications(world.store, nhs)}
    request_id = str(uuid.uuid4())
    r = world.care_team(nhs, urid, unscheduled=header, request_id=request_id)
    assert r.status_code == 200, r.text
    new = [n for n in notifications(world.store, nhs) if n.id not in before]
    return r, new


def test_unscheduled_b0107_view_notifies_once_and_is_delivered_once(world: CpisWorld) -> None:
    nhs = world.children["cpp"]
    request_id = str(uuid.uuid4())
    r = world.care_team(nhs, "unsched-1", request_id=request_id)  # header omitted: unscheduled
    assert r.status_code == 200 and r.json()["total"] == 1
    assert all(e["search"]["mode"] == "match" for e in r.json()["entry"])
    made = [n for n in notifications(world.store, nhs)
            if n.access_id == rules.access_id("una", request_id.lower())]
    assert len(made) == 1 and made[0].la_code == "TLA01"
    payload = made[0].payload
    assert payload["patient"]["value"] == nhs and payload["accessedBy"]["organisationCode"] == "RXX01"
    assert payload["plans"] == ["t-cpp"]
    # the access, the notification and the audit record are one commit: the audit names both
    (record,) = records(world.store, request_id)
    assert record.action == "cpis.careteam" and record.outcome == "200" and record.nhs_number == nhs
    assert record.details["access"] == "unscheduled" and record.details["notifications"] == [made[0].id]
    # delivered (by the deliverer thread, over HTTP to the built-in inbox) exactly once
    assert wait_for(lambda: world.store.cpis_notifications(nhs_number=nhs)[-1].delivered_at is not None
                    and any(i.id == made[0].id for i in world.store.cpis_inbox("TLA01")))
    inbox = [i for i in world.store.cpis_inbox("TLA01", limit=1000) if i.id == made[0].id]
    assert len(inbox) == 1 and inbox[0].payload == payload
    # a retry of the same request: data again, audited again, but the same single access and notification
    again = world.care_team(nhs, "unsched-1", request_id=request_id)
    assert again.status_code == 200
    assert len([n for n in notifications(world.store, nhs) if n.access_id == made[0].access_id]) == 1
    assert len(records(world.store, request_id)) == 2
    # the access history shows it
    history = world.audit_events(nhs, "sched-1").json()
    ids = [e["resource"]["id"] for e in history["entry"]]
    assert made[0].access_id in ids
    event = next(e["resource"] for e in history["entry"] if e["resource"]["id"] == made[0].access_id)
    assert event["resourceType"] == "AuditEvent" and event["contained"][0]["resourceType"] == "PractitionerRole"
    assert event["agent"][0]["who"]["display"] == "Una"
    assert event["entity"][0]["what"]["identifier"]["value"] == nhs


@pytest.mark.parametrize(("urid", "header", "notified", "access"), [
    ("unsched-1", "false", True, "unscheduled_by_role"),  # B0107 only: recorded and notified whatever the header
    ("sched-1", None, False, "unscheduled_denied"),
    ("sched-1", "true", False, "unscheduled_denied"),
    ("sched-1", "false", False, "scheduled"),
    ("both-1", None, True, "unscheduled"),
    ("both-1", "true", True, "unscheduled"),
    ("both-1", "false", False, "scheduled"),
])
def test_who_notifies(world: CpisWorld, urid: str, header: str | None, notified: bool, access: str) -> None:
    r, new = _unscheduled_view(world, "lac", urid, header)
    assert len(new) == (1 if notified else 0)
    entries = r.json()["entry"]
    outcomes = [e for e in entries if e["search"]["mode"] == "outcome"]
    assert r.json()["total"] == 1
    if access == "unscheduled_denied":  # the user is told the local authority was NOT notified
        assert len(outcomes) == 1 and "NOT been notified" in outcomes[0]["resource"]["issue"][0]["diagnostics"]
    else:
        assert outcomes == []
    (record,) = records(world.store, r.request.headers["X-Request-ID"])
    assert record.details["access"] == access


def test_unscheduled_role_cannot_opt_out_of_the_notification(world: CpisWorld) -> None:
    """A B0107-only (unscheduled care) role that claims a scheduled view still sees the plans only with the access
    recorded in the history and the local authority notified: the header cannot skip CP-IS's safeguard."""
    nhs = world.children["cpp"]
    history_before = len(world.store.cpis_access_history(nhs, limit=1000))
    r, new = _unscheduled_view(world, "cpp", "unsched-1", "false")
    assert r.json()["total"] == 1
    assert [n.la_code for n in new] == ["TLA01"]
    assert len(world.store.cpis_access_history(nhs, limit=1000)) == history_before + 1
    (record,) = records(world.store, r.request.headers["X-Request-ID"])
    assert record.details["access"] == "unscheduled_by_role" and record.details["notifications"] == [new[0].id]


def test_two_local_authorities_get_one_notification_each(world: CpisWorld) -> None:
    _, new = _unscheduled_view(world, "two-las", "unsched-1", None)
    assert sorted(n.la_code for n in new) == ["TLA04", "TLA05"]
    assert len({n.access_id for n in new}) == 1


def test_ended_plans_are_an_access_but_notify_nobody(world: CpisWorld) -> None:
    nhs = world.children["ended-recently"]
    before = len(world.store.cpis_access_history(nhs))
    _, new = _unscheduled_view(world, "ended-recently", "unsched-1", None)
    assert new == [] and len(world.store.cpis_access_history(nhs)) == before + 1


def test_no_plan_no_access_event(world: CpisWorld) -> None:
    nhs = world.children["none"]
    _, new = _unscheduled_view(world, "none", "unsched-1", None)
    assert new == [] and world.store.cpis_access_history(nhs) == []
    assert world.audit_events(nhs, "unsched-1").json()["total"] == 0


def test_history_holds_the_last_25(world: CpisWorld) -> None:
    nhs = world.children["ucpp"]
    for _ in range(27):
        assert world.care_team(nhs, "unsched-1").status_code == 200
    r = world.audit_events(nhs, "unsched-1")
    body = r.json()
    assert body["total"] == 25 and len(body["entry"]) == 25
    recorded = [e["resource"]["recorded"] for e in body["entry"]]
    assert recorded == sorted(recorded, reverse=True)
    (record,) = records(world.store, r.request.headers["X-Request-ID"])
    assert record.action == "cpis.auditevent" and record.details == {"returned": 25}


# --- the built-in local-authority inbox ---------------------------------------------------------------------


def _post(world: CpisWorld, code: str, key: str, payload: dict, signature: str | None) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", rules.IDEMPOTENCY_HEADER: key}
    if signature is not None:
        headers[rules.SIGNATURE_HEADER] = signature
    return world.http.post(f"{world.url}/cpis/local-authority/{code}/notifications", content=body, headers=headers)


def test_inbox_receives_signed_notifications_once(world: CpisWorld) -> None:
    la = world.store.local_authority("TLA06")
    key = str(uuid.uuid4())
    payload = {"id": key, "localAuthority": "TLA06", "patient": {"value": "9434765919"}}
    body = json.dumps(payload).encode()
    good = rules.sign(la.secret, key, body)
    assert _post(world, "TLA06", key, payload, good).status_code == 201
    dup = _post(world, "TLA06", key, payload, good)
    assert dup.status_code == 200 and dup.json() == {"id": key, "duplicate": True}
    assert [i.id for i in world.store.cpis_inbox("TLA06")].count(key) == 1
    other = str(uuid.uuid4())
    for code, k, sig in (("TLA06", other, None), ("TLA06", other, "sha256=" + "0" * 64),
                         ("TLA06", other, rules.sign("not-the-key", other, body)), ("NOPE", key, good),
                         ("TLA06", "not-a-uuid", good)):
        r = _post(world, code, k, payload, sig)
        assert r.status_code == 401 and error_code(r) == "ACCESS_DENIED", r.text
    wrong_id = {"id": str(uuid.uuid4()), "localAuthority": "TLA06"}
    r = _post(world, "TLA06", key, wrong_id, rules.sign(la.secret, key, json.dumps(wrong_id).encode()))
    assert r.status_code == 400


def test_inbox_listing_needs_b0015_and_is_audited(world: CpisWorld) -> None:
    for urid in ("unsched-1", "sched-1", "clin-1", "none-1"):
        r = world.http.get(f"{world.url}/cpis/local-authority/TLA01/notifications", headers=world.headers(urid))
        assert r.status_code == 403, (urid, r.text)
    headers = world.headers("po-cpis-1")
    r = world.http.get(f"{world.url}/cpis/local-authority/TLA01/notifications", headers=headers)
    assert r.status_code == 200, r.text
    listed = r.json()["notifications"]
    assert listed and all(n["notification"]["localAuthority"] == "TLA01" for n in listed)
    (record,) = records(world.store, headers["X-Request-ID"])
    assert record.action == "cpis.inbox" and record.details["local_authority"] == "TLA01"
    assert record.details["returned"] == [n["notification"]["patient"]["value"] for n in listed]


def _inbox(world: CpisWorld, code: str, urid: str) -> httpx.Response:
    return world.http.get(f"{world.url}/cpis/local-authority/{code}/notifications", headers=world.headers(urid))


def test_inbox_listing_is_only_for_the_local_authoritys_own_roles(world: CpisWorld) -> None:
    """A B0015 holder lists local authority X's inbox only if their role's organisation is X: another authority's
    privacy officer and a hospital's are refused (403 ACCESS_DENIED, audited, no notification in the body)."""
    made = world.care_team(world.children["cpp"], "unsched-1")  # a notification for TLA01
    assert made.status_code == 200
    assert wait_for(lambda: any(True for _ in world.store.cpis_inbox("TLA01")))
    assert _inbox(world, "TLA01", "po-cpis-1").status_code == 200
    assert _inbox(world, "TLA02", "po-cpis-2").status_code == 200
    for code, urid in (("TLA01", "po-cpis-2"), ("TLA01", "po-hosp-1"), ("TLA02", "po-cpis-1"),
                       ("NOPE", "po-cpis-1")):
        headers = world.headers(urid)
        r = world.http.get(f"{world.url}/cpis/local-authority/{code}/notifications", headers=headers)
        assert r.status_code == 403 and error_code(r) == "ACCESS_DENIED", (code, urid, r.text)
        assert world.children["cpp"] not in r.text and "notifications" not in r.json()
        (record,) = records(world.store, headers["X-Request-ID"])
        assert (record.action, record.outcome, record.role_profile_id) == ("cpis.inbox", "403", urid)
        assert record.details["local_authority"] == code


def test_the_audit_chain_is_intact(world: CpisWorld) -> None:
    assert world.store.verify_audit().ok
