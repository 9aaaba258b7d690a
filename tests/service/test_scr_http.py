"""The SCR service over real HTTP, on both stores: access rules end to end, every access audited, exactly one
alert per emergency access (also when the request is retried), uploads, consent, the privacy officers' queue."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import pytest

from app.config import load_settings
from app.nhs_number import synthetic
from app.service.scr.routes import episode_hours
from app.service.scr.seed import document_for
from app.service.scr.store import ScrGrant
from app.service.store import RoleProfile, SearchFilter, Store

from .scr_world import ED_ORG, FULL, OPTED_OUT, ScrWorld, alert_body, scr_world

_next = count()


@pytest.fixture(scope="module")
def world(shared_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScrWorld]:
    with scr_world(shared_store, tmp_path_factory.mktemp("pki")) as w:
        yield w


def fresh(world: ScrWorld) -> str:
    """A seeded patient (not one of NHS's reference patients) given an SCR of their own for this test."""
    everyone = world.store.search(SearchFilter(birth_date_from=datetime(1900, 1, 1).date(), limit=500))
    candidates = [r for r in everyone
                  if not r.nhs_number.startswith("90000000") and world.store.scr_record(r.nhs_number) is None]
    row = candidates[next(_next) % len(candidates)]
    doc = document_for(row, 99)
    world.store.put_scr_seed([(row.nhs_number, "Ask")], [doc], now=datetime.now(UTC))
    return row.nhs_number


def alerts(world: ScrWorld, nhs: str) -> list:
    return [a for a in world.store.scr_alerts(org="RXX01", types=(1, 2), limit=10_000) if a.nhs_number == nhs]


def test_every_access_is_audited_once_with_its_outcome(world: ScrWorld) -> None:
    nhs = fresh(world)
    calls = [
        ("scr.index", "200", lambda rid: world.index("scr-view", nhs, request_id=rid)),
        ("scr.read", "403", lambda rid: world.read("scr-view", nhs, request_id=rid)),
        ("scr.alert", "201", lambda rid: world.alert("scr-view", nhs, 1, 6, None, request_id=rid)),
        ("scr.permission", "201", lambda rid: world.permission("scr-view", nhs, request_id=rid)),
        ("scr.read", "200", lambda rid: world.read("scr-view", nhs, request_id=rid)),
    ]
    for action, outcome, send in calls:
        rid = str(uuid.uuid4())
        response = send(rid)
        assert str(response.status_code) == outcome, response.text
        records = world.audit(rid)
        assert [(r.action, r.outcome, r.nhs_number, r.user_id) for r in records] == [(action, outcome, nhs, "nurse")]
    read = world.audit(rid)[0]
    assert (read.details["relationship"], read.details["basis"]) == ("self-claimed", "permission")
    assert "outcomeDesc" not in str(read.details) and world.store.verify_audit().ok


def test_emergency_access_raises_exactly_one_alert_even_when_retried(world: ScrWorld) -> None:
    nhs = fresh(world)
    assert world.read("scr-ed", nhs).status_code == 403
    denied = world.alert("scr-ed", nhs, 2, 5)  # an access alert needs a relationship first
    assert denied.status_code == 403 and "self-claim" in denied.json()["issue"][0]["details"]["text"]
    assert world.alert("scr-ed", nhs, 1, 4, None).status_code == 400  # no reason, no emergency access
    assert alerts(world, nhs) == []
    rid = str(uuid.uuid4())
    first = world.alert("scr-ed", nhs, 1, 4, request_id=rid)
    again = world.alert("scr-ed", nhs, 1, 4, request_id=rid)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    raised = alerts(world, nhs)
    assert len(raised) == 1 and raised[0].id == first.json()["id"]
    assert (raised[0].alert_type, raised[0].alert_subtype, raised[0].user_id, raised[0].reason) == (
        1, 4, "doc", "Patient unconscious on arrival")
    assert sorted(r.details.get("replay", False) for r in world.audit(rid)) == [False, True]
    response = world.read("scr-ed", nhs)
    assert response.status_code == 200 and response.json()["total"] > 0
    assert world.audit(response.headers["x-request-id"])[0].details["basis"] == "emergency"
    assert world.read("scr-ed", nhs).status_code == 200  # the same episode: no second alert
    assert len(alerts(world, nhs)) == 1


def test_emergency_needs_the_activity(world: ScrWorld) -> None:
    nhs = fresh(world)
    r = world.alert("scr-view", nhs, 1, 4)
    assert r.status_code == 403 and "B0168" in r.json()["issue"][0]["details"]["text"]
    assert alerts(world, nhs) == [] and world.read("scr-view", nhs).status_code == 403


def test_refusal_beats_emergency_but_not_a_legal_override(world: ScrWorld) -> None:
    nhs = fresh(world)
    for urid in ("scr-ed", "scr-legal"):
        assert world.alert(urid, nhs, 1, 6, None).status_code == 201  # self-claimed relationship
        assert world.permission(urid, nhs, "No").status_code == 201
    assert world.alert("scr-ed", nhs, 2, 5).status_code == 201
    refused = world.read("scr-ed", nhs)
    assert refused.status_code == 403 and "refused" in refused.json()["issue"][0]["details"]["text"]
    assert world.alert("scr-legal", nhs, 2, 3, "Court order 123").status_code == 201
    assert world.read("scr-legal", nhs).status_code == 200


def test_permission_expires_with_the_episode(world: ScrWorld) -> None:
    nhs = fresh(world)
    now = datetime.now(UTC)
    past = ScrGrant("nurse", "scr-view", nhs, "lr", True, "", "q", now - timedelta(hours=13), now - timedelta(hours=1))
    world.store.put_scr_grants([past, ScrGrant("nurse", "scr-view", nhs, "ptv", True, "", "q",
                                               now - timedelta(hours=13), now - timedelta(seconds=1))])
    assert world.read("scr-view", nhs).status_code == 403
    assert world.permission("scr-view", nhs).status_code == 201
    assert world.alert("scr-view", nhs, 1, 6, None).status_code == 201
    assert world.read("scr-view", nhs).status_code == 200
    grants = world.store.scr_grants("nurse", "scr-view", nhs, now=now)
    assert all(timedelta(hours=11) < g.expires_at - now <= timedelta(hours=12, minutes=1) for g in grants)
    assert world.read("scr-ed", nhs).status_code == 403  # another user's episode grants nothing


def test_episode_hours_setting(tmp_path: Path) -> None:
    for value, hours in (("", 12.0), ("2", 2.0), ("0.5", 0.5), ("junk", 12.0), ("-1", 12.0), ("9999", 12.0)):
        settings = load_settings({"SPINEDESK_SCR_EPISODE_HOURS": value,
                                  "SPINEDESK_SITE_CONFIG": str(tmp_path / "absent.toml")})
        assert episode_hours(settings.scr_episode_hours) == hours


def test_opted_out_patients_get_no_clinical_content_and_a_reason(world: ScrWorld) -> None:
    assert world.permission("scr-gp", OPTED_OUT).status_code == 403
    for response in (world.read("scr-gp", OPTED_OUT), world.index("scr-gp", OPTED_OUT),
                     world.alert("scr-ed", OPTED_OUT, 1, 4)):
        assert response.status_code == 403, response.text
        assert "opted out" in response.json()["issue"][0]["details"]["text"]
        assert "entry" not in response.json()
    assert alerts(world, OPTED_OUT) == []


def test_consent_preference_and_yes_is_ask(world: ScrWorld) -> None:
    nhs = FULL
    assert world.permission("scr-view", nhs, "No", name="setPermissions").status_code == 403  # needs B0020
    assert world.permission("scr-gp", nhs, "Yes", name="setPermissions").status_code == 201
    label = world.index("scr-gp", nhs).json()["entry"][0]["resource"]["securityLabel"][0]["coding"][0]["code"]
    assert label == "Yes"
    assert world.read("scr-gp", nhs).status_code == 403  # Yes grants nothing by itself: it is Ask
    assert world.permission("scr-gp", nhs, "No", name="setPermissions").status_code == 201
    assert world.index("scr-gp", nhs).json()["entry"][0]["resource"]["securityLabel"][0]["coding"][0]["code"] == "No"
    assert world.read("scr-gp", nhs).status_code == 403
    assert world.permission("scr-gp", nhs, "Ask", name="setPermissions").status_code == 201


def consent_role(world: ScrWorld) -> str:
    """A clinician who may record consent (B0020) at the emergency department, no patient's practice here."""
    urid = "scr-ed-consent"
    if world.store.get_role_profile(urid) is None:
        world.store.add_role_profile(RoleProfile(urid, "doc", ED_ORG, f"Org {ED_ORG}", "S8000:G8000:R8000",
                                                 "Clinical", ("B0370", "B0020")))
    world.users[urid] = "doc"
    return urid


def consent_of(world: ScrWorld, nhs: str) -> str | None:
    record = world.store.scr_record(nhs)
    return record.consent if record else None


def test_an_unrelated_organisation_cannot_opt_a_patient_out_or_back_in(world: ScrWorld) -> None:
    """The attack: a clinician at an organisation with no relationship to the patient opted 9000000009 out and
    back in. Each change is refused, the consent stays as it was, each refusal is audited, nothing is alerted."""
    urid, nhs = consent_role(world), FULL
    before = consent_of(world, nhs)
    for code in ("No", "Yes", "Ask"):
        rid = str(uuid.uuid4())
        refused = world.permission(urid, nhs, code, name="setPermissions", request_id=rid)
        assert refused.status_code == 403, refused.text
        assert "legitimate relationship" in refused.json()["issue"][0]["details"]["text"]
        assert consent_of(world, nhs) == before
        records = world.audit(rid)
        assert [(r.action, r.outcome, r.nhs_number, r.user_id, r.org) for r in records] == [
            ("scr.permission", "403", nhs, "doc", ED_ORG)]
        assert records[0].details["denied"] == "no-relationship" and records[0].details["code"] == code
    assert alerts(world, nhs) == []
    assert world.read(urid, nhs).status_code == 403


def test_the_registered_practice_records_consent_and_each_change_is_audited(world: ScrWorld) -> None:
    nhs = fresh(world)
    row = world.store.get_patient(nhs)
    urid = f"gp-{row.gp_ods}"
    if world.store.get_role_profile(urid) is None:
        world.store.add_role_profile(RoleProfile(urid, "gp", row.gp_ods, "Practice", "S8000:G8000:R8000",
                                                 "Clinical", ("B0370", "B0020")))
    world.users[urid] = "gp"
    for code in ("No", "Ask"):
        rid = str(uuid.uuid4())
        assert world.permission(urid, nhs, code, name="setPermissions", request_id=rid).status_code == 201
        assert consent_of(world, nhs) == code
        (record,) = world.audit(rid)
        assert (record.action, record.outcome, record.org) == ("scr.permission", "201", row.gp_ods)
        assert (record.details["code"], record.details["relationship"]) == (code, "registered-practice")


def test_consent_under_a_self_claimed_relationship_is_alerted_and_audited(world: ScrWorld) -> None:
    """The override route reads use: a self-claimed relationship (POST /AuditEvent type 1) alerts the privacy
    officer; a consent change under it is allowed and its audit record names that alert."""
    urid, nhs = consent_role(world), fresh(world)
    assert world.permission(urid, nhs, "No", name="setPermissions").status_code == 403
    claim = world.alert(urid, nhs, 1, 6, "Patient asked to opt out while in the department")
    assert claim.status_code == 201, claim.text
    (alert,) = alerts(world, nhs)
    assert (alert.id, alert.alert_type, alert.user_id, alert.org) == (claim.json()["id"], 1, "doc", ED_ORG)
    rid = str(uuid.uuid4())
    assert world.permission(urid, nhs, "No", name="setPermissions", request_id=rid).status_code == 201
    assert consent_of(world, nhs) == "No"
    (record,) = world.audit(rid)
    assert (record.outcome, record.details["relationship"], record.details["alert_id"]) == (
        "201", "self-claimed", alert.id)
    assert len(alerts(world, nhs)) == 1  # the claim's alert; an opted-out patient cannot be claimed again
    assert world.alert(urid, nhs, 1, 6, None).status_code == 403


def test_yes_alone_is_not_permission_to_view(world: ScrWorld) -> None:
    nhs = fresh(world)
    world.store.set_scr_consent(nhs, "Yes", by="test", now=datetime.now(UTC))
    assert world.alert("scr-view", nhs, 1, 6, None).status_code == 201
    assert world.read("scr-view", nhs).status_code == 403


def test_upload_versions_idempotently_and_stale_reads_are_empty(world: ScrWorld) -> None:
    nhs = "9000000025"
    row = world.store.get_patient(nhs)
    old = world.latest(nhs)
    new = document_for(row, 1234).bundle
    composition = new["entry"][0]["resource"]
    composition["relatesTo"] = [{"code": "replaces", "targetIdentifier": {"value": old}}]
    rid = str(uuid.uuid4())
    first = world.post("scr-gp", "/Bundle", new, request_id=rid)
    assert first.status_code == 201, first.text
    assert world.post("scr-gp", "/Bundle", new, request_id=rid).status_code == 201  # replayed, not redone
    new_id = composition["identifier"]["value"].upper()
    assert world.latest(nhs) == new_id and first.headers["location"].endswith(f"Patient.identifier="
                                                                             f"https://fhir.nhs.uk/Id/nhs-number|{nhs}")
    assert [r.outcome for r in world.audit(rid)] == ["201", "201"]

    def variant(scr_id: str, replaces: str) -> dict:
        comp = dict(composition, identifier={"system": "https://tools.ietf.org/html/rfc4122", "value": scr_id},
                    relatesTo=[{"code": "replaces", "targetIdentifier": {"value": replaces}}])
        return dict(new, entry=[dict(new["entry"][0], resource=comp), *new["entry"][1:]])

    duplicate = world.post("scr-gp", "/Bundle", variant(old, new_id))  # an id already used
    assert duplicate.status_code == 400 and "Duplicate" in duplicate.text
    stale = world.post("scr-gp", "/Bundle", variant(str(uuid.uuid4()), old))  # replaces an older version
    assert stale.status_code == 400 and "does not replace the latest" in stale.text
    assert world.latest(nhs) == new_id
    assert world.post("scr-ed", "/Bundle", new).status_code == 403  # scr-ed lacks B0360
    assert world.post("scr-gp", "/Bundle", new, content_type="application/json").status_code == 415
    assert world.permission("scr-gp", nhs).status_code == 201
    assert world.read("scr-gp", nhs, scr_id=old).json()["total"] == 0
    assert world.read("scr-gp", nhs).json()["total"] == len(new["entry"])


def test_unknown_and_invalid_patients(world: ScrWorld) -> None:
    assert world.index("scr-gp", "9000000000").status_code == 400  # check digit fails
    unknown = synthetic(999_999)  # a valid number nobody was seeded with
    assert world.store.get_patient(unknown) is None
    for response in (world.index("scr-gp", unknown), world.read("scr-gp", unknown)):
        assert response.status_code == 400 and "not found" in response.text


def test_privacy_officer_queue(world: ScrWorld) -> None:
    nhs = fresh(world)
    world.alert("scr-ed", nhs, 1, 4)
    assert world.alert("scr-ed", nhs, 2, 5).status_code == 201
    mine = [a for a in alerts(world, nhs)]
    assert sorted(a.alert_type for a in mine) == [1, 2]

    def queue(urid: str, **params: str) -> list[dict]:
        r = world.http.get(f"{world.base}/alerts", params=params, headers=world.headers(urid))
        assert r.status_code == 200, r.text
        return [e["resource"] for e in r.json()["entry"] if e["resource"]["agent"][0]["who"]["identifier"]["value"]
                == nhs]

    assert sorted(a["type"]["code"] for a in queue("scr-po")) == ["1", "2"]
    assert [a["type"]["code"] for a in queue("scr-po16")] == ["1"]
    assert queue("scr-po-gp") == []  # another organisation's officer
    item = next(a for a in queue("scr-po") if a["type"]["code"] == "2")
    assert item["outcomeDesc"] == "Patient unconscious on arrival" and item["agent"][2]["who"]["identifier"][
        "value"] == "doc"
    path = f"/alerts/{item['id']}/$acknowledge"
    note = {"resourceType": "Parameters", "parameter": [{"name": "note", "valueString": "Spoke to Dr Doc"}]}
    assert world.post("scr-po16", path, note).status_code == 404  # B0016 sees only self-claims
    assert world.post("scr-po-gp", path, note).status_code == 404
    rid = str(uuid.uuid4())
    done = world.post("scr-po", path, note, request_id=rid)
    assert done.status_code == 200, done.text
    assert world.post("scr-po", path, note, request_id=rid).json() == done.json()
    second = world.post("scr-po", path, note)
    assert second.status_code == 409 and "already acknowledged by po" in second.text
    stored = world.store.get_scr_alert(item["id"])
    assert (stored.acknowledged_by, stored.acknowledged_role, stored.acknowledgement_note) == (
        "po", "scr-po", "Spoke to Dr Doc")
    assert item["id"] not in [a["id"] for a in queue("scr-po")]  # open ones by default
    assert item["id"] in [a["id"] for a in queue("scr-po", status="acknowledged")]
    for params in ({"status": "x"}, {"_count": "²"}, {"_count": "0"}, {"_count": "501"}, {"other": "1"}):
        assert world.http.get(f"{world.base}/alerts", params=params,
                              headers=world.headers("scr-po")).status_code == 400, params
    assert world.http.get(f"{world.base}/alerts", headers=world.headers("scr-ed")).status_code == 403
    assert [r.action for r in world.audit(rid)] == ["scr.alerts.ack", "scr.alerts.ack"]


def test_bodies_that_are_not_json_or_too_deep(world: ScrWorld) -> None:
    for path in ("/Bundle", "/$setPermission", "/AuditEvent", f"/alerts/{uuid.uuid4()}/$acknowledge"):
        for raw in (b"{", b"[" * 100_000, b"[" * 300 + b"]" * 300, b'{"resourceType": "\\ud800"}'):
            r = world.http.post(f"{world.base}{path}", content=raw,
                                headers=world.headers("scr-po" if "alerts" in path else "scr-gp",
                                                      **{"Content-Type": "application/fhir+json"}))
            assert r.status_code in (400, 404), (path, r.status_code, r.text[:200])
    assert world.post("scr-gp", "/AuditEvent", alert_body(FULL, 2, 4, "x")).status_code == 400
    stored = world.store.scr_record(FULL).latest.bundle
    deep = {"resource": {"resourceType": "Basic", "x": json.loads("[" * 300 + "]" * 300)}}
    assert world.post("scr-gp", "/Bundle", dict(stored, entry=[*stored["entry"], deep])).status_code == 400
    body = json.dumps(alert_body(FULL, 1, 4, "\ud800")).encode()  # json.dumps escapes the lone surrogate
    surrogate = world.http.post(f"{world.base}/AuditEvent", content=body,
                                headers=world.headers("scr-ed", **{"Content-Type": "application/fhir+json"}))
    assert surrogate.status_code == 400 and "surrogate" in surrogate.text
    nul = world.alert("scr-ed", FULL, 1, 4, "before\u0000after")  # PostgreSQL cannot store NUL in text
    assert nul.status_code == 400 and "NUL" in nul.text
