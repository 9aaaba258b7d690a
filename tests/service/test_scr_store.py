"""SCR storage on both stores: latest pointer and consent, compare-and-swap uploads that commit their audit
record and answer with the change (or nothing), episode grants with expiry, one alert per request id (threads
racing too), acknowledgement exactly once, and the bulk seed."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from app.service.pds.seed import generate_patients
from app.service.scr import seed as seed_scr
from app.service.scr.store import (
    AlertAcknowledged,
    ScrAlert,
    ScrConsentRefused,
    ScrDocument,
    ScrGrant,
    ScrLatestMoved,
)
from app.service.store import AlreadyExists, Answer, AuditEntry, NotFound

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NHS = "9000000009"


def doc(i: int, *, nhs: str = NHS, replaces: str | None = None) -> ScrDocument:
    scr_id = f"00000000-0000-4000-8000-{i:012d}"
    return ScrDocument(scr_id, nhs, NOW + timedelta(minutes=i), {"resourceType": "Bundle", "n": i}, "gp", "Y12345",
                       replaces)


def audit(i: int = 0, action: str = "scr.upload") -> AuditEntry:
    return AuditEntry(user_id="gp", role_profile_id="r1", org="Y12345", action=action, nhs_number=NHS,
                      request_id=f"req-{i}", outcome="201", details={"i": i})


def grant(kind: str, *, granted: bool = True, expires: datetime | None = None, user: str = "u1") -> ScrGrant:
    return ScrGrant(user, "role-1", NHS, kind, granted, "why", "req-g", NOW, expires or NOW + timedelta(hours=12))


def alert(request_id: str = "req-a", *, org: str = "RXX01", alert_type: int = 2, i: int = 0) -> ScrAlert:
    return ScrAlert(f"A{i:07d}-0000-4000-8000-000000000000", NOW + timedelta(seconds=i), "doc", "Doc", "scr-ed",
                    "Clinical", org, NHS, alert_type, 5 if alert_type == 2 else 4, "Unconscious", request_id)


def test_nothing_stored_is_none_and_consent_defaults_are_the_domains(store):
    assert store.scr_record(NHS) is None


def test_upload_chain_is_compare_and_swap_with_its_audit_and_answer(store):
    answer = Answer("req-1", "gp", "POST", "/summary-care-record/FHIR/R4/Bundle", 201, (("location", "x"),), b"")
    store.put_scr_document(doc(1), expected_latest=None, audit=[audit(1)], answer=answer)
    record = store.scr_record(NHS)
    assert (record.consent, record.latest.id, record.latest.bundle) == ("Ask", doc(1).id, {"resourceType": "Bundle",
                                                                                           "n": 1})
    assert store.recall("req-1", "gp").status == 201
    assert [r.details for r in store.query_audit(action="scr.upload")] == [{"i": 1}]
    with pytest.raises(ScrLatestMoved) as moved:  # stale: names no latest while there is one
        store.put_scr_document(doc(2), expected_latest=None, audit=[audit(2)])
    assert moved.value.latest == doc(1).id
    with pytest.raises(AlreadyExists):
        store.put_scr_document(doc(1), expected_latest=doc(1).id, audit=[audit(3)])
    store.put_scr_document(doc(2, replaces=doc(1).id), expected_latest=doc(1).id, audit=[audit(4)])
    assert store.scr_record(NHS).latest.replaces == doc(1).id
    # failures wrote nothing: two successes, two audit records, chain intact
    assert sorted(r.details["i"] for r in store.query_audit(action="scr.upload")) == [1, 4]
    assert store.verify_audit().ok


def test_opted_out_patients_get_no_document_and_no_grant(store):
    store.set_scr_consent(NHS, "No", by="gp", now=NOW, audit=[audit(1, "scr.permission")])
    with pytest.raises(ScrConsentRefused):
        store.put_scr_document(doc(1), expected_latest=None, audit=[audit(2)])
    with pytest.raises(ScrConsentRefused):
        store.put_scr_grants([grant("emergency")], alert=alert(), refuse_opted_out=NHS, audit=[audit(3, "scr.alert")])
    assert store.scr_record(NHS).latest is None
    assert store.scr_grants("u1", "role-1", NHS, now=NOW) == []
    assert store.scr_alerts(org="RXX01", types=(1, 2)) == []
    assert [r.action for r in store.query_audit()] == ["scr.permission"]
    store.set_scr_consent(NHS, "Yes", by="gp", now=NOW)
    assert store.scr_record(NHS).consent == "Yes"
    with pytest.raises(ValueError):
        store.set_scr_consent(NHS, "Maybe", by="gp", now=NOW)


def test_grants_replace_per_kind_and_expire(store):
    store.put_scr_grants([grant("ptv", granted=False), grant("lr")])
    store.put_scr_grants([grant("ptv", granted=True, expires=NOW + timedelta(minutes=5))])
    live = {g.kind: g for g in store.scr_grants("u1", "role-1", NHS, now=NOW)}
    assert set(live) == {"lr", "ptv"} and live["ptv"].granted is True
    later = store.scr_grants("u1", "role-1", NHS, now=NOW + timedelta(minutes=6))
    assert [g.kind for g in later] == ["lr"]
    assert store.scr_grants("u2", "role-1", NHS, now=NOW) == []  # another user's episode
    assert store.scr_grants("u1", "role-2", NHS, now=NOW) == []  # the same user in another role


def test_one_alert_per_request_even_when_retried(store):
    first = store.put_scr_grants([grant("emergency")], alert=alert("req-x", i=1))
    again = store.put_scr_grants([grant("emergency")], alert=alert("req-x", i=2))
    assert first == again and first.id == alert(i=1).id
    assert len(store.scr_alerts(org="RXX01", types=(1, 2))) == 1
    assert store.scr_grants("u1", "role-1", NHS, now=NOW)[0].alert_id == first.id


def test_racing_threads_raise_one_alert_per_request(store):
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            store.put_scr_grants([grant("emergency")], alert=alert("req-race", i=i))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.scr_alerts(org="RXX01", types=(1, 2))) == 1


def test_queue_filters_and_acknowledges_once(store):
    store.put_scr_grants([], alert=alert("r1", i=1, alert_type=1))
    store.put_scr_grants([], alert=alert("r2", i=2, alert_type=2))
    store.put_scr_grants([], alert=alert("r3", i=3, org="Y12345"))
    assert [a.alert_type for a in store.scr_alerts(org="RXX01", types=(1, 2))] == [2, 1]  # newest first
    assert [a.alert_type for a in store.scr_alerts(org="RXX01", types=(1,))] == [1]
    assert store.scr_alerts(org="RXX01", types=()) == []
    target = alert(i=2).id
    done = store.acknowledge_scr_alert(target, by="po", role="scr-po", note="checked", now=NOW,
                                       audit=[audit(9, "scr.alerts.ack")])
    assert (done.acknowledged_by, done.acknowledged_at, done.acknowledgement_note) == ("po", NOW, "checked")
    assert store.get_scr_alert(target) == done
    with pytest.raises(AlertAcknowledged) as first:
        store.acknowledge_scr_alert(target, by="po2", role="scr-po", note=None, now=NOW + timedelta(hours=1),
                                    audit=[audit(10, "scr.alerts.ack")])
    assert first.value.alert.acknowledged_by == "po"
    with pytest.raises(NotFound):
        store.acknowledge_scr_alert("nope", by="po", role="r", note=None, now=NOW)
    assert [a.id for a in store.scr_alerts(org="RXX01", types=(1, 2), acknowledged=True)] == [target]
    assert len(store.scr_alerts(org="RXX01", types=(1, 2), acknowledged=False)) == 1
    assert len(store.query_audit(action="scr.alerts.ack")) == 1


def test_seed_is_a_few_percent_deterministic_and_idempotent(store):
    chunks = list(generate_patients(3000, seed=3, chunk_size=1000))
    written = sum(seed_scr.seed_rows(store, chunk, 3) for chunk in chunks)
    assert 30 <= written <= 120, written  # about 2% of 3,000 (+ NHS's reference patients)
    assert store.scr_record("9000000009").latest is not None
    assert store.scr_record("9000000017").consent == "No" and store.scr_record("9000000017").latest is None
    assert store.scr_record("9000000033") is None
    first = store.scr_record("9000000009").latest
    assert sum(seed_scr.seed_rows(store, chunk, 3) for chunk in chunks) == written  # nothing changes
    assert store.scr_record("9000000009").latest == first


def test_view_gives_the_latest_entries_as_json_text(store):
    import json

    assert store.scr_view(NHS) is None
    store.set_scr_consent(NHS, "Yes", by="gp", now=NOW)
    view = store.scr_view(NHS)
    assert (view.consent, view.latest_id, view.entries_json, view.entries) == ("Yes", None, None, 0)
    entries = [{"resource": {"resourceType": "Composition", "title": "naïve £"}}, {"resource": {"n": [1, 2]}}]
    first = doc(1)
    store.put_scr_document(ScrDocument(first.id, NHS, NOW, {"resourceType": "Bundle", "entry": entries}, "gp",
                                       "Y12345"), expected_latest=None)
    view = store.scr_view(NHS)
    assert (view.latest_id, view.entries, json.loads(view.entries_json)) == (first.id, 2, entries)
