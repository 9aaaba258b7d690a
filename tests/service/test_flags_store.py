"""The flags store, on SQLite and PostgreSQL: versions and history, compare-and-swap, one active flag per patient,
and a change committing with its audit record and X-Request-ID answer, or none of them."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.service.flags.store import FlagRow
from app.service.store import AlreadyExists, Answer, AuditEntry, NotFound, Store, VersionConflict
from app.service.store.audit_chain import GENESIS

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


def row(flag_id: str = "f1", nhs: str = "9000000009", version: int = 1, status: str = "active",
        note: str = "v1", at: datetime = T0) -> FlagRow:
    resource: dict[str, Any] = {"resourceType": "Flag", "id": flag_id, "meta": {"versionId": str(version)},
                                "status": status, "note": note}
    return FlagRow(flag_id, nhs, "NRAF", status, version, resource, at)


def entry(request_id: str, action: str = "flags.update") -> AuditEntry:
    return AuditEntry("u1", "r1", "A81001", action, "9000000009", request_id, "200", {"flag": "f1"})


def answer(request_id: str) -> Answer:
    return Answer(request_id, "u1", "PUT", "/Flag/f1", 200, (("etag", 'W/"2"'),), b"{}")


def test_create_read_search_history(store: Store) -> None:
    assert store.get_flag("f1") is None and store.flag_history("f1") == []
    store.create_flag(row(), audit=[entry("req-1", "flags.create")], answer=answer("req-1"))
    got = store.get_flag("f1")
    assert got == row() and got.updated_at.tzinfo is not None
    assert store.flags_for_patient("9000000009") == [row()]
    assert store.flags_for_patient("9000000009", statuses=("inactive",)) == []
    assert store.flags_for_patient("9000000009", category="FGM") == []
    assert store.flags_for_patient("9000000017") == []
    assert store.flag_history("f1") == [row()]
    assert [r.action for r in store.query_audit()] == ["flags.create"]
    assert store.recall("req-1", "u1").status == 200


def test_update_is_compare_and_swap_and_keeps_every_version(store: Store) -> None:
    store.create_flag(row())
    later = T0 + timedelta(minutes=5)
    store.update_flag("f1", 1, row(version=2, note="v2", at=later), audit=[entry("req-2")], answer=answer("req-2"))
    with pytest.raises(VersionConflict) as conflict:
        store.update_flag("f1", 1, row(version=2, note="lost", at=later), audit=[entry("req-3")],
                          answer=answer("req-3"))
    assert conflict.value.current_version == 2
    with pytest.raises(NotFound):
        store.update_flag("nope", 1, row("nope", version=2))
    removed = row(version=3, status="inactive", note="v3", at=later + timedelta(minutes=1))
    store.update_flag("f1", 2, removed)
    assert store.get_flag("f1") == removed
    assert [(r.version, r.status, r.resource["note"]) for r in store.flag_history("f1")] == [
        (3, "inactive", "v3"), (2, "active", "v2"), (1, "active", "v1")]
    # the lost update left nothing: no audit record, no stored answer
    assert [r.request_id for r in store.query_audit()] == ["req-2"]
    assert store.recall("req-3", "u1") is None
    assert store.flags_for_patient("9000000009", statuses=("active",)) == []
    assert store.flags_for_patient("9000000009", statuses=("inactive", "entered-in-error")) == [removed]


def test_one_active_flag_per_patient_and_category(store: Store) -> None:
    store.create_flag(row("f1"))
    with pytest.raises(AlreadyExists):
        store.create_flag(row("f2"), audit=[entry("req-x", "flags.create")], answer=answer("req-x"))
    assert store.query_audit() == [] and store.recall("req-x", "u1") is None
    with pytest.raises(AlreadyExists):
        store.create_flag(row("f1", nhs="9000000017"))  # the id is taken
    store.update_flag("f1", 1, row("f1", version=2, status="inactive"))
    store.create_flag(row("f2", at=T0 + timedelta(hours=1)))  # after removal the patient may have a new one
    assert [r.id for r in store.flags_for_patient("9000000009")] == ["f2", "f1"]  # active first


def test_racing_creates_give_one_flag(store: Store) -> None:
    results: list[str] = []
    barrier = threading.Barrier(6)

    def create(i: int) -> None:
        barrier.wait()
        try:
            store.create_flag(row(f"race-{i}"))
            results.append("ok")
        except AlreadyExists:
            results.append("exists")

    threads = [threading.Thread(target=create, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["exists"] * 5 + ["ok"]
    assert len(store.flags_for_patient("9000000009")) == 1


def test_bulk_put_is_idempotent_and_skips_a_second_active_flag(store: Store) -> None:
    rows = [row(f"s{i}", nhs=nhs) for i, nhs in enumerate(("9000000009", "9000000017", "9000000025"))]
    assert store.put_flags(rows) == 3
    assert store.put_flags(rows) == 3  # re-seeding: nothing duplicated
    assert store.put_flags([row("other", nhs="9000000009")]) == 1  # the patient already has an active flag
    assert store.get_flag("other") is None and store.flag_history("other") == []
    assert all(len(store.flag_history(r.id)) == 1 for r in rows)
    assert store.put_flags([]) == 0


def test_a_change_whose_audit_record_cannot_be_written_does_not_happen(store: Store, raw_sql: Any) -> None:
    """The audit record is written in the change's own transaction: when it fails, the change is rolled back
    (the chain head is removed behind the store's back to make the audit write fail)."""
    store.create_flag(row())
    raw_sql("DELETE FROM audit_head")
    try:
        with pytest.raises(Exception):  # noqa: B017 - whatever the audit write raises
            store.update_flag("f1", 1, row(version=2, note="unaudited"), audit=[entry("req-9")],
                              answer=answer("req-9"))
        with pytest.raises(Exception):  # noqa: B017
            store.create_flag(row("f9", nhs="9000000017"), audit=[entry("req-8", "flags.create")])
    finally:
        raw_sql("INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, 0, ?)", (GENESIS,))
    assert store.get_flag("f1") == row() and len(store.flag_history("f1")) == 1
    assert store.get_flag("f9") is None and store.recall("req-9", "u1") is None
    assert store.verify_audit().ok
