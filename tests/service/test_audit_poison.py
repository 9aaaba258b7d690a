"""One bad audit record never fails the records of other requests, on both stores.

PostgreSQL refuses a NUL in a text value and no store can write a lone surrogate as UTF-8; before, one such
record in a group-commit batch rolled back the whole batch and every request in it got a 503. Now the encoder
refuses such values before the database (their own caller only), and a batch whose commit fails is retried in
halves until only the offending records fail.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from datetime import datetime

import pytest

from app.service.store import AuditEntry, AuditWriter, StoreUnavailable
from app.service.store.audit_chain import canonical_details, encode_entry
from app.service.store.group_commit import GroupCommitter


def entry(i: int, *, nhs: str | None = "9000000009", user: str = "u1", details: dict | None = None,
          at: datetime | None = None) -> AuditEntry:
    return AuditEntry(user_id=user, role_profile_id="555254242106", org="B86001", action="pds.read",
                      nhs_number=nhs, request_id=f"req-{i}", outcome="200",
                      details={"i": i} if details is None else details, at=at)


class Gate:
    """Wraps ``store.append_audit_many`` so that the first commit waits until the test opens the gate: whatever
    is submitted meanwhile queues up and is committed as ONE batch (the writer drains everything queued)."""

    def __init__(self, store) -> None:
        self.real = store.append_audit_many
        self.open = threading.Event()
        self.entered = threading.Event()
        self.batches: list[int] = []
        store.append_audit_many = self

    def __call__(self, entries):
        self.entered.set()
        self.open.wait(60)
        self.batches.append(len(entries))
        return self.real(entries)


def _submit(writer: AuditWriter, e: AuditEntry) -> Future:
    """Submit; a record refused at submission is a failed future of its own."""
    try:
        return writer.submit(e)
    except Exception as exc:  # the refusal is what the test inspects
        f: Future = Future()
        f.set_exception(exc)
        return f


def test_a_poisoned_record_fails_only_its_own_caller(store):
    gate = Gate(store)
    writer = AuditWriter(store)
    try:
        first = writer.submit(entry(0))
        assert gate.entered.wait(30)  # the writer is inside the first commit; the rest queue behind it
        good = [_submit(writer, entry(i)) for i in range(1, 4)]
        nul = _submit(writer, entry(4, nhs="900\x000000009"))
        good += [_submit(writer, entry(i)) for i in range(5, 8)]
        surrogate = _submit(writer, entry(8, details={"text": "a\udc80b"}))
        bad_user = _submit(writer, entry(9, user="u\x00"))
        gate.open.set()
        assert first.result(30).seq == 1
        records = [f.result(30) for f in good]
        for f in (nul, surrogate, bad_user):
            with pytest.raises(ValueError):
                f.result(30)
    finally:
        writer.close()
    assert sorted(r.seq for r in records) == list(range(2, 2 + len(records)))
    assert [r.request_id for r in records] == [f"req-{i}" for i in (1, 2, 3, 5, 6, 7)]
    assert store.verify_audit().ok


def test_a_record_the_database_refuses_fails_only_its_own_caller(store, store_kind):
    """A record no check stopped (the store's own check switched off here) that the commit itself cannot write:
    PostgreSQL refuses the NUL (its own error, inside the transaction); on SQLite an unpaired surrogate fails the
    hash while chaining, also inside the transaction. The batch is rolled back and committed again without it."""
    store._encode_audit = lambda entries: [(e, canonical_details(e.details)) for e in entries]
    gate = Gate(store)
    writer = AuditWriter(store)
    try:
        first = writer.submit(entry(0))
        assert gate.entered.wait(30)
        futures = [writer.submit(entry(i)) for i in range(1, 6)]
        user = "u\x00" if store_kind == "postgresql" else "u\udc80"
        poisoned = GroupCommitter.submit(writer, entry(6, user=user))  # past the writer's own check too
        futures += [writer.submit(entry(i)) for i in range(7, 12)]
        gate.open.set()
        first.result(30)
        records = [f.result(30) for f in futures]
        with pytest.raises(Exception, match=r"NUL|surrogate"):
            poisoned.result(30)
    finally:
        writer.close()
    assert [r.request_id for r in records] == [f"req-{i}" for i in (*range(1, 6), *range(7, 12))]
    assert store.verify_audit() == (True, 11, None, "11 records verified")
    assert max(gate.batches) > 1  # the poisoned record really shared a batch with the good ones


@pytest.mark.parametrize("bad", [
    {"nhs": "900\x000000009"}, {"user": "al\x00ice"}, {"details": {"path": "a\udc80"}},
    {"details": {"k\ud800": 1}}, {"nhs": "\ud800"}])
def test_the_store_refuses_unstorable_values_before_the_database(store, bad):
    store.append_audit(entry(0))
    with pytest.raises(ValueError, match="cannot be stored"):
        store.append_audit(entry(1, **bad))
    with pytest.raises(ValueError, match="cannot be stored"):
        store.append_audit_many([entry(2), entry(3, **bad)])
    assert store.append_audit(entry(4)).seq == 2  # nothing half-written; the chain goes on
    assert store.verify_audit() == (True, 2, None, "2 records verified")


def test_group_commit_isolates_the_failing_items():
    """Without a store: a commit that fails whenever its batch holds a bad item."""
    release, entered = threading.Event(), threading.Event()
    attempts: list[list[str]] = []

    def commit(items: list[str]) -> list[str]:
        entered.set()
        release.wait(30)
        attempts.append(list(items))
        if any(i.startswith("bad") for i in items):
            raise ValueError(f"cannot write {[i for i in items if i.startswith('bad')]}")
        return [i.upper() for i in items]

    committer: GroupCommitter[str, str] = GroupCommitter(commit, name="test", linger=0)
    try:
        head = committer.submit("head")
        assert entered.wait(30)
        items = [f"ok{i}" for i in range(20)]
        items[7], items[13] = "bad7", "bad13"
        futures = {i: committer.submit(i) for i in items}
        release.set()
        assert head.result(30) == "HEAD"
        for item, f in futures.items():
            if item.startswith("bad"):
                with pytest.raises(ValueError, match=item):
                    f.result(30)
            else:
                assert f.result(30) == item.upper()
    finally:
        committer.close()
    assert attempts[1] == items  # one batch first; only after it failed, smaller ones


def test_group_commit_does_not_retry_when_the_database_is_unavailable():
    """An outage is not one bad item: every waiter hears at once, with no storm of retries."""
    release, entered = threading.Event(), threading.Event()
    attempts: list[int] = []

    def commit(items: list[str]) -> list[str]:
        entered.set()
        release.wait(30)
        attempts.append(len(items))
        raise StoreUnavailable("postgresql://db", "connection refused")

    committer: GroupCommitter[str, str] = GroupCommitter(commit, name="test", linger=0)
    try:
        head = committer.submit("head")
        assert entered.wait(30)
        futures = [committer.submit(f"x{i}") for i in range(50)]
        release.set()
        for f in [head, *futures]:
            with pytest.raises(StoreUnavailable):
                f.result(30)
    finally:
        committer.close()
    assert attempts == [1, 50]


def test_an_untrusted_id_is_audited_as_a_safe_bounded_representation():
    from app.service.core.context import _safe_id

    assert _safe_id(None) is None
    assert _safe_id("9000000009") == "9000000009"  # plain ids are kept as they are
    assert _safe_id("900\x000000009") == "900\\x000000009"
    assert _safe_id("a\udc80b") == "a\\udc80b"
    assert _safe_id("back\\slash\n") == "back\\\\slash\\x0a"  # an escape cannot be forged by sending one
    long = _safe_id("9" * 500)
    assert len(long) == 64 and long.endswith("…")
    for value in ("900\x000000009", "a\udc80b", "\x00" * 300):
        encode_entry(entry(0, nhs=_safe_id(value), user=_safe_id(value)))  # storable by every store
