"""CP-IS storage on BOTH stores: plans and their window, the access + outbox + audit transaction, claiming with
a lease (one claimer per row, also under concurrency), retries, the de-duplicating inbox, and the seed."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest

from app.service.cpis import rules
from app.service.cpis import seed as seed_cpis
from app.service.cpis.store import AccessEvent, CpisPlan, LocalAuthority, Notification
from app.service.pds.seed import generate_patients
from app.service.store import AuditEntry, Store

TODAY = date(2026, 6, 15)
NOW = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)
LA = LocalAuthority("TLA01", "Northbridge", "Front Door", "0113 496 0001", "0113 496 0901")
LA2 = LocalAuthority("TLA02", "Eastmere", "MASH", "0114 496 0002", "0114 496 0902", "http://127.0.0.1:9/hook")


def event(nhs: str = "9000000009", request_id: str = "r-1", at: datetime = NOW) -> AccessEvent:
    return AccessEvent(rules.access_id("alice", request_id), nhs, at, "alice", "Alice", "clin-1",
                       "S8000:G8000:R8000", "Clinical Practitioner", "A81001", "Training Surgery", request_id)


def note(ev: AccessEvent, la: str = "TLA01") -> Notification:
    key = rules.notification_id(ev.id, la)
    return Notification(key, la, ev.nhs_number, {"id": key, "localAuthority": la})


def audit(request_id: str = "r-1") -> list[AuditEntry]:
    return [AuditEntry(user_id="alice", role_profile_id="clin-1", org="A81001", action="cpis.careteam",
                       nhs_number="9000000009", request_id=request_id, outcome="200", details={"x": 1})]


@pytest.fixture
def las(store: Store) -> Store:
    store.put_local_authorities([LA, LA2])
    return store


def test_local_authorities_keep_their_secret(las: Store) -> None:
    first = las.local_authority("TLA01")
    assert first is not None and len(first.secret) == 64
    las.put_local_authorities([LocalAuthority("TLA01", "Renamed", "Team", "1", "2")])
    again = las.local_authority("TLA01")
    assert again is not None and again.name == "Renamed" and again.secret == first.secret
    las.put_local_authorities([LocalAuthority("TLA01", "Renamed", "Team", "1", "2", secret="s" * 10)])
    assert las.local_authority("TLA01").secret == "s" * 10
    assert las.local_authority("NOPE") is None


def test_plans_open_and_ended_within_the_window(las: Store) -> None:
    start = rules.window_start(TODAY)
    las.put_cpis_plans([
        CpisPlan("p-open", "9000000009", "CPP", "TLA01", date(2025, 1, 1)),
        CpisPlan("p-recent", "9000000009", "LAC", "TLA02", date(2024, 1, 1), date(2026, 1, 1)),
        CpisPlan("p-edge", "9000000009", "LAC", "TLA02", date(2023, 1, 1), start),
        CpisPlan("p-old", "9000000009", "CPP", "TLA01", date(2020, 1, 1), start - timedelta(days=1)),
        CpisPlan("p-other", "9000000017", "UCPP", "TLA01", date(2026, 1, 1)),
    ])
    found = las.cpis_plans("9000000009", ended_on_or_after=start)
    assert [p.id for p, _ in found] == ["p-open", "p-recent", "p-edge"]
    assert found[0][1].team == "Front Door" and found[1][1].code == "TLA02"
    assert found[1][0].end_date == date(2026, 1, 1) and found[0][0].end_date is None
    assert las.cpis_plans("9000000033", ended_on_or_after=start) == []


def test_access_outbox_and_audit_commit_together_once(las: Store) -> None:
    ev = event()
    assert las.record_cpis_access(ev, [note(ev)], audit=audit(), now=NOW) is True
    # a retry of the same request (same user + X-Request-ID): no second event or notification, audited again
    assert las.record_cpis_access(ev, [note(ev)], audit=audit(), now=NOW) is False
    assert [e.id for e in las.cpis_access_history("9000000009")] == [ev.id]
    items = las.cpis_notifications(nhs_number="9000000009")
    assert [i.id for i in items] == [note(ev).id] and items[0].delivered_at is None and items[0].attempts == 0
    records = las.query_audit(nhs_number="9000000009", action="cpis.careteam")
    assert len(records) == 2 and las.verify_audit().ok


def test_a_failed_access_write_leaves_nothing(las: Store) -> None:
    bad = AccessEvent(rules.access_id("alice", "r-bad"), None, NOW, "alice", "Alice", "clin-1",  # type: ignore[arg-type]
                      "S", "R", "A", "O", "r-bad")
    with pytest.raises(Exception):  # noqa: B017 - the driver's integrity error, whichever store
        las.record_cpis_access(bad, [note(event("9000000009", "r-bad"))], audit=audit("r-bad"), now=NOW)
    assert las.cpis_notifications() == []
    assert las.query_audit(action="cpis.careteam") == [] and las.verify_audit().ok


def test_history_is_the_most_recent_25(las: Store) -> None:
    for i in range(30):
        ev = event(request_id=f"r-{i}", at=NOW + timedelta(minutes=i))
        las.record_cpis_access(ev, [], now=NOW)
    history = las.cpis_access_history("9000000009", limit=25)
    assert len(history) == 25 and history[0].request_id == "r-29" and history[-1].request_id == "r-5"


def test_claim_lease_retry_and_delivery(las: Store) -> None:
    ev = event()
    las.record_cpis_access(ev, [note(ev)], now=NOW)
    key = note(ev).id
    claimed = las.claim_cpis_notifications("A", lease_seconds=30, now=NOW)
    assert [c.id for c in claimed] == [key] and claimed[0].attempts == 1
    assert las.claim_cpis_notifications("B", lease_seconds=30, now=NOW + timedelta(seconds=10)) == []
    assert not las.cpis_outbox_due(now=NOW + timedelta(seconds=10))
    # A failed and schedules a retry in 2 s
    assert las.finish_cpis_notification(key, "A", delivered=False, error="HTTP 503",
                                        retry_at=NOW + timedelta(seconds=2), now=NOW)
    assert las.cpis_outbox_due(now=NOW + timedelta(seconds=3))
    # B takes it; A's lease is gone, so A can no longer reschedule it
    again = las.claim_cpis_notifications("B", lease_seconds=30, now=NOW + timedelta(seconds=3))
    assert [c.attempts for c in again] == [2] and again[0].last_error == "HTTP 503"
    assert not las.finish_cpis_notification(key, "A", delivered=False, error="x", now=NOW)
    assert las.finish_cpis_notification(key, "B", delivered=True, now=NOW + timedelta(seconds=4))
    assert not las.finish_cpis_notification(key, "A", delivered=True, now=NOW)  # already delivered
    done = las.cpis_notifications()[0]
    assert done.delivered_at == NOW + timedelta(seconds=4) and done.last_error is None
    assert las.claim_cpis_notifications("C", lease_seconds=30, now=NOW + timedelta(days=1)) == []


def test_an_expired_lease_is_claimed_again(las: Store) -> None:
    ev = event()
    las.record_cpis_access(ev, [note(ev)], now=NOW)
    assert len(las.claim_cpis_notifications("A", lease_seconds=5, now=NOW)) == 1
    # A died mid-delivery: after its lease the row is due again, same key
    retaken = las.claim_cpis_notifications("B", lease_seconds=5, now=NOW + timedelta(seconds=6))
    assert [r.id for r in retaken] == [note(ev).id] and retaken[0].claim_token == "B"


def test_concurrent_claimers_never_share_a_row(las: Store) -> None:
    for i in range(40):
        ev = event(request_id=f"c-{i}")
        las.record_cpis_access(ev, [note(ev)], now=NOW)
    got: dict[str, list[str]] = {}
    barrier = threading.Barrier(4)

    def claimer(name: str) -> None:
        barrier.wait()
        mine: list[str] = []
        while batch := las.claim_cpis_notifications(name, lease_seconds=60, limit=3):
            mine += [b.id for b in batch]
        got[name] = mine

    threads = [threading.Thread(target=claimer, args=(f"t{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    every = [k for keys in got.values() for k in keys]
    assert len(every) == 40 and len(set(every)) == 40


def test_inbox_stores_each_key_once(las: Store) -> None:
    assert las.receive_cpis_notification("k-1", "TLA01", {"id": "k-1"}, now=NOW) is True
    assert las.receive_cpis_notification("k-1", "TLA01", {"id": "k-1", "again": True}, now=NOW) is False
    assert las.receive_cpis_notification("k-2", "TLA01", {"id": "k-2"}, now=NOW + timedelta(seconds=1))
    items = las.cpis_inbox("TLA01")
    assert [i.id for i in items] == ["k-2", "k-1"] and items[1].payload == {"id": "k-1"}
    assert las.cpis_inbox("TLA02") == []


def test_seed_is_deterministic_and_sparse(store: Store) -> None:
    rows = next(generate_patients(5000, seed=3, chunk_size=5000))
    codes = [a.code for a in seed_cpis.local_authorities()]
    plans = seed_cpis.plans_for(rows, 3, TODAY, codes)
    assert plans == seed_cpis.plans_for(rows, 3, TODAY, codes)
    assert 0.002 < len(plans) / len(rows) < 0.03, len(plans)
    kinds = {p.plan_type for p in plans}
    assert kinds == {"CPP", "LAC", "UCPP"}, kinds
    by_nhs = {r.nhs_number: r for r in rows}
    for p in plans:
        row = by_nhs[p.nhs_number]
        if p.plan_type == "UCPP":  # on the pregnant woman's own record
            assert row.gender == "female" and 16 <= (TODAY - row.birth_date).days // 365 <= 45
        else:
            assert (TODAY - row.birth_date).days < 18 * 366
        assert p.end_date is None or p.start_date <= p.end_date < TODAY
    assert not any(by_nhs[p.nhs_number].deceased for p in plans)
    assert seed_cpis.seed_rows(store, rows, 3) == len(seed_cpis.plans_for(rows, 3, date.today(), codes))
    open_plan = next(p for p in seed_cpis.plans_for(rows, 3, date.today(), codes) if p.end_date is None)
    assert store.cpis_plans(open_plan.nhs_number, ended_on_or_after=rules.window_start(date.today()))


def test_group_commit_of_several_accesses(las: Store) -> None:
    from app.service.cpis.store import AccessWrite
    from app.service.cpis.writer import CpisAccessWriter

    a, b = event(request_id="g-1"), event(request_id="g-2")
    created = las.record_cpis_accesses([AccessWrite(a, (note(a),), tuple(audit("g-1"))),
                                        AccessWrite(b, (note(b),), tuple(audit("g-2"))),
                                        AccessWrite(a, (note(a),), tuple(audit("g-1")))], now=NOW)
    assert created == [True, True, False]
    assert len(las.cpis_notifications()) == 2 and len(las.query_audit(action="cpis.careteam")) == 3
    writer = CpisAccessWriter(las)
    try:
        futures = [writer.submit(AccessWrite(event(request_id=f"w-{i}"), (), tuple(audit(f"w-{i}"))))
                   for i in range(20)]
        assert [f.result(30) for f in futures] == [True] * 20
        bad = AccessWrite(AccessEvent("x", None, NOW, "u", "U", "r", "c", "n", "o", "on", "w-bad"))  # type: ignore[arg-type]
        with pytest.raises(Exception):  # noqa: B017 - the driver's integrity error
            writer.submit(bad).result(30)
    finally:
        writer.close()
    assert len(las.cpis_access_history("9000000009", limit=100)) == 22 and las.verify_audit().ok


def test_stuck_notifications_are_those_failed_too_often_or_waiting_too_long(las: Store) -> None:
    ev = event(request_id="r-1")
    las.record_cpis_access(ev, [note(ev)], now=NOW)
    key = note(ev).id
    horizon = NOW - timedelta(hours=1)  # by age, nothing is stuck
    assert las.stuck_cpis_notifications(attempts=2, created_before=horizon).count == 0
    for attempt in (1, 2):
        when = NOW + timedelta(minutes=attempt)
        assert [c.id for c in las.claim_cpis_notifications("A", lease_seconds=5, now=when)] == [key]
        las.finish_cpis_notification(key, "A", delivered=False, error="HTTP 503", retry_at=when, now=when)
        stuck = las.stuck_cpis_notifications(attempts=2, created_before=horizon)
        assert stuck.count == (attempt == 2), f"after {attempt} failed attempt(s)"
    assert (stuck.oldest, stuck.attempts) == (NOW, 2)
    # a second, fresh notification: stuck only once older than the horizon, failed or not
    later = event(request_id="r-2", at=NOW + timedelta(minutes=10))
    las.record_cpis_access(later, [note(later)], now=NOW + timedelta(minutes=10))
    assert las.stuck_cpis_notifications(attempts=99, created_before=NOW + timedelta(minutes=10)).count == 1
    aged = las.stuck_cpis_notifications(attempts=99, created_before=NOW + timedelta(minutes=11))
    assert (aged.count, aged.oldest) == (2, NOW)
    # delivered is never stuck
    las.finish_cpis_notifications("A", delivered=[key, note(later).id], now=NOW + timedelta(minutes=20))
    assert las.stuck_cpis_notifications(attempts=1, created_before=NOW + timedelta(days=9)).count == 0
