"""The audit hash chain: concurrent appends (threads and processes), tamper detection, kill -9, group commit."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.service.store import AuditEntry, AuditWriter
from app.service.store.audit_chain import GENESIS, compute_hash, format_at
from tests.support.service.fixtures import PROLOGUE, spawn, start_together


def entry(i: int = 0, *, nhs: str | None = "9000000009", user: str = "u1", action: str = "pds.read",
          at: datetime | None = None) -> AuditEntry:
    return AuditEntry(user_id=user, role_profile_id="555254242106", org="B86001", action=action, nhs_number=nhs,
                      request_id=f"req-{i}", outcome="200", details={"i": i, "text": "naïve £"}, at=at)


def test_records_chain_from_genesis(store):
    records = [store.append_audit(entry(0)), *store.append_audit_many([entry(1), entry(2, nhs=None)])]
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == GENESIS
    assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]
    r = records[2]
    assert r.hash == compute_hash(seq=3, at=r.at, user_id="u1", role_profile_id="555254242106", org="B86001",
                                  action="pds.read", nhs_number=None, request_id="req-2", outcome="200",
                                  details={"i": 2, "text": "naïve £"}, prev_hash=records[1].hash)
    assert store.verify_audit() == (True, 3, None, "3 records verified")
    assert store.append_audit_many([]) == []


def test_empty_chain_verifies(store):
    ok, checked, bad, _ = store.verify_audit()
    assert (ok, checked, bad) == (True, 0, None)


APPENDER = PROLOGUE + """
from app.service.store import AuditEntry
for i in range(int(sys.argv[3])):
    e = AuditEntry("proc", "r", "o", "pds.read", "9000000009", f"{sys.argv[4]}-{i}", "200", {"i": i})
    store.append_audit(e) if i % 2 else store.append_audit_many([e, e])
print("done")
"""


def test_eight_threads_and_two_processes_append_one_valid_chain(store, store_url, tmp_path):
    procs = [spawn(APPENDER, store_url, str(tmp_path / "go"), "30", f"p{i}") for i in range(2)]
    start_together(procs, tmp_path / "go")
    errors: list[BaseException] = []

    def append(worker: int) -> None:
        try:
            for i in range(30):
                if i % 3:
                    store.append_audit(entry(i, user=f"t{worker}"))
                else:
                    store.append_audit_many([entry(i, user=f"t{worker}"), entry(i + 100, user=f"t{worker}")])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert errors == []
    expected = 8 * 40 + 2 * 45
    assert store.verify_audit() == (True, expected, None, f"{expected} records verified")
    seqs = [r.seq for r in store.query_audit(limit=10_000)]
    assert seqs == list(range(expected, 0, -1))


@pytest.fixture
def chain10(store):
    start = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    store.append_audit_many([entry(i, at=start + timedelta(seconds=i)) for i in range(10)])
    assert store.verify_audit().ok
    return store


def test_an_edited_field_is_named(chain10, raw_sql):
    raw_sql("UPDATE audit_log SET outcome = '403' WHERE seq = 4")
    assert chain10.verify_audit() == (False, 3, 4, "record 4 was altered (hash differs)")
    raw_sql("UPDATE audit_log SET outcome = '200' WHERE seq = 4")
    assert chain10.verify_audit().ok
    raw_sql("UPDATE audit_log SET details = '{\"i\":7}' WHERE seq = 8")
    assert chain10.verify_audit()[2] == 8


def test_an_edited_time_is_named(chain10, raw_sql, store_kind):
    if store_kind == "sqlite":
        raw_sql("UPDATE audit_log SET at = '2025-03-01T09:00:05.000001+00:00' WHERE seq = 6")
    else:
        raw_sql("UPDATE audit_log SET at = at + interval '1 microsecond' WHERE seq = 6")
    assert chain10.verify_audit()[:3] == (False, 5, 6)


def test_a_deleted_record_is_named(chain10, raw_sql):
    raw_sql("DELETE FROM audit_log WHERE seq = 6")
    assert chain10.verify_audit() == (False, 5, 6, "record 6 missing (next is 7)")


def test_deleting_the_newest_records_is_detected(chain10, raw_sql):
    raw_sql("DELETE FROM audit_log WHERE seq >= 9")
    assert chain10.verify_audit() == (False, 8, 9, "records 9-10 missing (the chain head is at 10)")


def test_reordered_records_are_named(chain10, raw_sql):
    raw_sql("UPDATE audit_log SET seq = -3 WHERE seq = 3")
    raw_sql("UPDATE audit_log SET seq = 3 WHERE seq = 5")
    raw_sql("UPDATE audit_log SET seq = 5 WHERE seq = -3")
    ok, checked, bad, reason = chain10.verify_audit()
    assert (ok, checked, bad) == (False, 2, 3) and "record 3" in reason


def test_rewriting_a_record_with_its_neighbours_hash_is_caught_at_the_next_link(chain10, raw_sql):
    rows = raw_sql("SELECT hash FROM audit_log WHERE seq = 4")
    raw_sql("UPDATE audit_log SET hash = ? WHERE seq = 5", (rows[0][0],))
    assert chain10.verify_audit()[2] == 5


KILLED = PROLOGUE + """
from app.service.store import AuditEntry
i = 0
while True:
    batch = [AuditEntry("k", "r", "o", "pds.read", "9000000009", f"k-{i}-{j}", "200", {"pad": "x" * 500})
             for j in range(1 + i % 25)]
    store.append_audit_many(batch)
    i += 1
"""


def test_kill_9_in_the_middle_of_writing_leaves_a_valid_chain(store, store_url, tmp_path):
    total = 0
    for round_ in range(2):
        go = tmp_path / f"go{round_}"
        proc = spawn(KILLED, store_url, str(go))
        start_together([proc], go)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            latest = store.query_audit(limit=1)
            if latest and latest[0].seq >= total + 300:
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        ok, checked, _, reason = store.verify_audit()
        assert ok, reason
        assert checked >= total + 300
        store.append_audit(entry(round_))  # the chain carries on after the crash
        ok, total, _, reason = store.verify_audit()
        assert ok, reason


def test_query_audit_filters_newest_first(store):
    t0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    store.append_audit_many([
        entry(0, at=t0), entry(1, nhs="9000000017", at=t0 + timedelta(minutes=1)),
        entry(2, user="u2", at=t0 + timedelta(minutes=2)), entry(3, action="pds.search", nhs=None,
                                                                 at=t0 + timedelta(minutes=3)),
    ])
    assert [r.request_id for r in store.query_audit()] == ["req-3", "req-2", "req-1", "req-0"]
    assert [r.request_id for r in store.query_audit(nhs_number="9000000009")] == ["req-2", "req-0"]
    assert [r.request_id for r in store.query_audit(user_id="u2")] == ["req-2"]
    assert [r.request_id for r in store.query_audit(action="pds.search")] == ["req-3"]
    window = store.query_audit(since=t0 + timedelta(minutes=1), until=t0 + timedelta(minutes=3))
    assert [r.request_id for r in window] == ["req-2", "req-1"]
    assert [r.request_id for r in store.query_audit(limit=1)] == ["req-3"]
    assert store.query_audit(limit=1)[0].details == {"i": 3, "text": "naïve £"}
    assert format_at(store.query_audit(limit=1)[0].at) == "2025-03-01T09:03:00.000000Z"


def test_query_audit_by_organisation(store):
    """``org`` keeps only the records made under roles of that organisation (the privacy officer's scope); the
    empty organisation is matched only literally, never as "any"."""
    store.append_audit_many([
        entry(0), replace(entry(1), org="A81001"), replace(entry(2), org=""), replace(entry(3), org="A81001")])
    assert [r.request_id for r in store.query_audit(org="A81001")] == ["req-3", "req-1"]
    assert [r.request_id for r in store.query_audit(org="B86001", nhs_number="9000000009")] == ["req-0"]
    assert store.query_audit(org="Z99999") == []
    assert [r.request_id for r in store.query_audit(org="")] == ["req-2"]


def test_group_commit_writer_batches_and_waits_for_commit(store):
    calls: list[int] = []
    real = store.append_audit_many

    def counting(entries):
        calls.append(len(entries))
        return real(entries)

    store.append_audit_many = counting
    writer = AuditWriter(store)
    results: list = []

    def work(w: int) -> None:
        for i in range(40):
            results.append(writer.append(entry(i, user=f"w{w}"), timeout=60))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    writer.close()
    assert len(results) == 640 and sorted(r.seq for r in results) == list(range(1, 641))
    assert sum(calls) == 640 and len(calls) < 640  # records shared transactions
    assert store.verify_audit() == (True, 640, None, "640 records verified")
    with pytest.raises((TypeError, ValueError)):
        AuditWriter(store).submit(AuditEntry("u", "r", "o", "a", None, "x", "200", {"bad": {1, 2}}))


def test_group_commit_failure_reaches_every_waiter(store):
    def broken(entries):
        raise RuntimeError("disk on fire")

    store.append_audit_many = broken
    writer = AuditWriter(store)
    futures = [writer.submit(entry(i)) for i in range(5)]
    for f in futures:
        with pytest.raises(RuntimeError, match="disk on fire"):
            f.result(timeout=10)
    writer.close()
