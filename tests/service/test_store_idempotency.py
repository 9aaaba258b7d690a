"""Request-id idempotency: a repeated X-Request-ID gets the first stored response, whichever process answers."""

from __future__ import annotations

import threading

from .conftest import PROLOGUE, spawn, start_together

REQUEST = "60E0B220-8136-4CA5-AE46-1D97EF59D068"


def test_remember_then_recall(store):
    assert store.recall(REQUEST, "u1") is None
    first = store.remember(REQUEST, "u1", "PATCH", "/Patient/9000000009", 200,
                           [("ETag", 'W/"2"'), ("Content-Type", "application/fhir+json")], b'{"id":"9000000009"}')
    assert first.status == 200 and first.body == b'{"id":"9000000009"}'
    assert first.headers == (("ETag", 'W/"2"'), ("Content-Type", "application/fhir+json"))
    assert store.recall(REQUEST, "u1") == first
    assert store.recall(REQUEST, "someone-else") is None  # ids are per user: never replay another's response
    again = store.remember(REQUEST, "u1", "PATCH", "/Patient/9000000009", 409, [], b"conflict")
    assert again == first  # insert-or-get: the first response stands


RACE = PROLOGUE + """
r = store.remember(sys.argv[3], "u1", "PATCH", "/Patient/9000000009", 200, [("X-Writer", sys.argv[4])],
                   sys.argv[4].encode())
print(r.body.decode())
"""


def test_racing_threads_and_processes_all_get_the_same_response(store, store_url, tmp_path):
    results: list[bytes] = []
    barrier = threading.Barrier(8)

    def answer(i: int) -> None:
        barrier.wait()
        stored = store.remember("race-1", "u1", "PATCH", "/p", 200, [("X-Writer", f"t{i}")], f"t{i}".encode())
        results.append(stored.body)

    threads = [threading.Thread(target=answer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 8

    procs = [spawn(RACE, store_url, str(tmp_path / "go"), "race-2", f"p{i}") for i in range(2)]
    start_together(procs, tmp_path / "go")
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    bodies = {o[0].strip() for o in outs}
    assert len(bodies) == 1
    stored = store.recall("race-2", "u1")
    assert stored.body.decode() in bodies and dict(stored.headers)["X-Writer"] == stored.body.decode()


def test_claim_then_complete_then_replay(store):
    assert store.claim("rid-claim", "u", "PATCH", "/p") is None  # this caller owns the id now
    pending = store.claim("rid-claim", "u", "PATCH", "/p")
    assert pending is not None and pending.status == 0  # a racer sees "in progress"
    done = store.remember("rid-claim", "u", "PATCH", "/p", 200, [("etag", 'W/"2"')], b"{}")
    assert done.status == 200 and done.body == b"{}"
    again = store.remember("rid-claim", "u", "PATCH", "/p", 409, [], b"late")  # never replaces a finished answer
    assert (again.status, again.body) == (200, b"{}")
    assert store.claim("rid-claim", "u", "PATCH", "/p").status == 200


def test_release_drops_only_an_unfinished_claim(store):
    assert store.claim("rid-rel", "u", "PATCH", "/p") is None
    store.release("rid-rel", "u")
    assert store.recall("rid-rel", "u") is None
    assert store.claim("rid-rel", "u", "PATCH", "/p") is None  # a retry can run
    store.remember("rid-rel", "u", "PATCH", "/p", 200, [], b"ok")
    store.release("rid-rel", "u")
    assert store.recall("rid-rel", "u").status == 200


def test_an_abandoned_claim_is_taken_over_after_its_lease(store):
    from datetime import UTC, datetime, timedelta

    start = datetime.now(UTC)
    assert store.claim("rid-lease", "u", "PATCH", "/p", now=start) is None
    assert store.claim("rid-lease", "u", "PATCH", "/p", now=start + timedelta(seconds=1)).status == 0  # still held
    assert store.claim("rid-lease", "u", "PATCH", "/p", now=start + timedelta(seconds=5)) is None  # owner died


def test_the_request_hash_is_kept_with_the_claim_and_its_answer(store):
    from datetime import UTC, datetime, timedelta

    assert store.claim("rid-hash", "u", "POST", "/p", request_hash="a" * 64) is None
    assert store.claim("rid-hash", "u", "POST", "/p", request_hash="b" * 64).request_hash == "a" * 64
    done = store.remember("rid-hash", "u", "POST", "/p", 201, [], b"{}", request_hash="b" * 64)
    assert (done.status, done.request_hash) == (201, "a" * 64)  # the claim's request is the one answered
    assert store.recall("rid-hash", "u").request_hash == "a" * 64
    # an abandoned claim taken over is the taker's request from then on
    start = datetime.now(UTC)
    assert store.claim("rid-take", "u", "POST", "/p", now=start, request_hash="a" * 64) is None
    assert store.claim("rid-take", "u", "PUT", "/q", now=start + timedelta(seconds=5), request_hash="c" * 64) is None
    taken = store.recall("rid-take", "u")
    assert (taken.method, taken.path, taken.request_hash) == ("PUT", "/q", "c" * 64)


def test_answers_stored_before_request_hashes_migrate_with_an_empty_hash(store_url, store_kind, raw_sql,
                                                                         monkeypatch):
    """Migration 6 adds the hash to the stored answers already there as '' (no request matches it: see
    ServiceContext.replay)."""
    from app.service.storage import open_store, schema_postgres, schema_sqlite

    module = schema_sqlite if store_kind == "sqlite" else schema_postgres
    current = module.MIGRATIONS
    assert [m.name for m in current if m.version == 6] == ["idempotency request hash"]
    monkeypatch.setattr(module, "MIGRATIONS", current[:5])
    old = open_store(store_url)
    assert old.schema_version() == 5
    old.close()
    raw_sql("INSERT INTO idempotency (request_id, user_id, method, path, status, headers, body, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", ("rid-old", "u", "POST", "/p", 201, "[]", b"{}",
                                                "2026-01-01T00:00:00.000000+00:00"))
    monkeypatch.setattr(module, "MIGRATIONS", current)
    new = open_store(store_url)
    try:
        assert new.schema_version() == current[-1].version
        stored = new.recall("rid-old", "u")
        assert (stored.status, stored.body, stored.request_hash) == (201, b"{}", "")
    finally:
        new.close()
