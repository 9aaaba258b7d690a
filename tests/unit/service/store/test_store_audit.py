"""The audit hash chain: keyed records, checkpoints published outside the database, concurrent appends (threads
and processes), tamper detection (edits, deletions, a rewound head, a rewrite re-hashed without the key), unkeyed
chains of older databases, kill -9, group commit."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.__main__ import main
from app.service.runtime import ServiceConfig, build_service
from app.service.storage import open_store
from app.service.store import (
    AuditEntry,
    AuditKey,
    AuditKeyError,
    AuditWriter,
    VersionConflict,
    open_seal,
)
from app.service.store.audit_chain import GENESIS, compute_hash, format_at
from app.service.store.sql_effects import AUDIT_COLS
from tests.support.service.fixtures import PROLOGUE, spawn, start_together


def entry(i: int = 0, *, nhs: str | None = "9000000009", user: str = "u1", action: str = "pds.read",
          at: datetime | None = None) -> AuditEntry:
    return AuditEntry(user_id=user, role_profile_id="555254242106", org="B86001", action=action, nhs_number=nhs,
                      request_id=f"req-{i}", outcome="200", details={"i": i, "text": "naïve £"}, at=at)


@pytest.fixture
def key_file(tmp_path):
    return tmp_path / "service-data" / "audit.key"


@pytest.fixture
def seal(key_file):
    return open_seal(key_file, create=True)


@pytest.fixture
def keyed(store, seal):
    """The store, chaining with the audit key and publishing checkpoints (as the service does)."""
    store.use_audit_seal(seal)
    return store


def test_records_chain_from_genesis_keyed(keyed, seal):
    records = [keyed.append_audit(entry(0)), *keyed.append_audit_many([entry(1), entry(2, nhs=None)])]
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == GENESIS
    assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]
    r = records[2]
    fields = dict(seq=3, at=r.at, user_id="u1", role_profile_id="555254242106", org="B86001", action="pds.read",
                  nhs_number=None, request_id="req-2", outcome="200", details={"i": 2, "text": "naïve £"},
                  prev_hash=records[1].hash)
    assert r.hash == compute_hash(**fields, key=seal.key)
    assert r.hash.startswith(f"hmac-sha256:{seal.key.key_id}:") and r.hash != compute_hash(**fields)
    assert keyed.verify_audit()[:4] == (True, 3, None, "3 records verified")
    assert keyed.append_audit_many([]) == []


def test_empty_chain_verifies(store):
    ok, checked, bad, _, checkpoint, needs_key = store.verify_audit()
    assert (ok, checked, bad, checkpoint, needs_key) == (True, 0, None, None, False)


def test_the_key_and_the_checkpoints_are_private_files_outside_the_database(keyed, seal, key_file, store_url):
    keyed.append_audit_many([entry(i) for i in range(3)])
    checkpoint_file = seal.checkpoints.file
    assert checkpoint_file.parent == key_file.parent / "audit-checkpoints" / keyed.chain_name
    if os.name == "posix":
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert checkpoint_file.stat().st_mode & 0o777 == 0o600
        assert {d.stat().st_mode & 0o777 for d in (checkpoint_file.parent, checkpoint_file.parent.parent)} == {0o700}
    assert AuditKey.load(key_file).key_id == seal.key.key_id  # the same key on the next start
    assert open_seal(key_file, create=True).key.key_id == seal.key.key_id
    line = json.loads(checkpoint_file.read_text().splitlines()[0])
    assert (line["seq"], line["hash"]) == (3, keyed.query_audit(limit=1)[0].hash) and len(line["mac"]) == 64
    if store_url.startswith("sqlite"):  # the secret is nowhere in the database
        secret = key_file.read_text().strip()
        assert secret.encode() not in Path(store_url.removeprefix("sqlite://")).read_bytes()


def test_a_checkpoint_is_published_every_n_records_and_when_the_store_closes(store_url, key_file, tmp_path):
    seal = open_seal(key_file, create=True, every_records=5)
    store = open_store(store_url, audit_seal=seal)
    for i in range(12):
        store.append_audit(entry(i))
    assert [c.seq for c in seal.published()[0]] == [1, 6, 11]
    store.close()
    assert [c.seq for c in seal.published()[0]] == [1, 6, 11, 12]
    with open_store(store_url, audit_seal=open_seal(key_file, create=False)) as again:
        result = again.verify_audit()
    assert result.ok and result.checkpoint[0] == 12


def test_records_committed_with_a_change_are_published_and_a_rolled_back_head_is_not(store_url, key_file):
    from tests.unit.service.pds.test_store_patients import patient

    seal = open_seal(key_file, create=True, every_records=1)
    with open_store(store_url, audit_seal=seal) as store:
        store.put_patients([patient("9000000009")])
        store.update_patient("9000000009", 1, patient("9000000009", version=2), audit=[entry(1), entry(2)])
        assert [c.seq for c in seal.published()[0]] == [2]  # the PATCH's transaction, not the audit writer's
        with pytest.raises(VersionConflict):  # rolled back: its records never existed, nothing is published
            store.update_patient("9000000009", 1, patient("9000000009", version=2), audit=[entry(3)])
        store.append_audit(entry(4))
        assert [c.seq for c in seal.published()[0]] == [2, 3]
        assert store.verify_audit()[:5] == (True, 3, None, "3 records verified", (3, seal.published()[0][1].at,
                                                                                   seal.checkpoints.host))


def test_two_databases_with_one_key_publish_to_their_own_checkpoint_folders(keyed, key_file, tmp_path):
    keyed.append_audit_many([entry(i) for i in range(3)])
    with open_store(f"sqlite:///{tmp_path / 'training.db'}", audit_seal=open_seal(key_file, create=True)) as other:
        other.append_audit_many([entry(i) for i in range(5)])
        assert other.verify_audit()[:4] == (True, 5, None, "5 records verified")
    result = keyed.verify_audit()
    assert result[:4] == (True, 3, None, "3 records verified") and result.checkpoint[0] == 3


def test_a_forged_checkpoint_line_is_reported(keyed, seal):
    keyed.append_audit_many([entry(i) for i in range(3)])
    with open(seal.checkpoints.file, "a") as f:
        f.write('{"at":"2026-01-01T00:00:00.000000Z","hash":"x","host":"h","mac":"00","pid":1,"seq":99}\n')
    result = keyed.verify_audit()
    assert not result.ok and "is not signed with this audit key" in result.reason


def test_a_keyed_chain_without_its_key_cannot_be_verified_and_says_so(keyed, store_url, tmp_path):
    keyed.append_audit_many([entry(i) for i in range(3)])
    with open_store(store_url, audit_seal=open_seal(tmp_path / "elsewhere" / "audit.key", create=False)) as blind:
        result = blind.verify_audit()
        assert (result.ok, result.first_bad_seq, result.needs_key) == (False, 1, True)
        assert "no audit key was given" in result.reason
        with pytest.raises(AuditKeyError, match="no audit key but the audit chain is keyed"):
            blind.append_audit(entry(9))  # an unkeyed record would break the chain: refused
    with open_store(store_url, audit_seal=open_seal(tmp_path / "other" / "audit.key", create=True)) as other:
        result = other.verify_audit()
        assert (result.ok, result.first_bad_seq, result.needs_key) == (False, 1, True)
        assert "not with the key given" in result.reason
        with pytest.raises(AuditKeyError, match="is keyed with key"):
            other.check_audit_key()


def test_an_unkeyed_chain_of_an_older_database_still_verifies_and_continues_keyed(store, seal, raw_sql):
    store.append_audit_many([entry(i) for i in range(3)])  # written before the key existed: plain SHA-256
    assert all(not h.startswith("hmac") for (h,) in raw_sql("SELECT hash FROM audit_log"))
    assert store.verify_audit()[:4] == (True, 3, None, "3 records verified")
    store.use_audit_seal(seal)
    assert store.verify_audit()[:4] == (True, 3, None, "3 records verified")
    store.append_audit_many([entry(i) for i in range(3, 5)])
    hashes = [h for (h,) in raw_sql("SELECT hash FROM audit_log ORDER BY seq")]
    assert [h.startswith("hmac-sha256:") for h in hashes] == [False, False, False, True, True]
    assert store.verify_audit()[:4] == (True, 5, None, "5 records verified")
    # the first keyed record seals the unkeyed ones before it: rewriting one means re-hashing a keyed record
    rewrite_and_rehash(raw_sql, 2, "403")
    result = store.verify_audit()
    assert not result.ok and result.first_bad_seq == 5  # no longer matches the checkpoint published for it


APPENDER = PROLOGUE + """
from pathlib import Path
from app.service.store import AuditEntry, open_seal
store.use_audit_seal(open_seal(Path(sys.argv[5]), create=False, every_records=20))
for i in range(int(sys.argv[3])):
    e = AuditEntry("proc", "r", "o", "pds.read", "9000000009", f"{sys.argv[4]}-{i}", "200", {"i": i})
    store.append_audit(e) if i % 2 else store.append_audit_many([e, e])
store.close()  # publishes the newest record it wrote
print("done")
"""


def test_eight_threads_and_two_processes_append_one_valid_chain(keyed, store_url, tmp_path, key_file):
    store = keyed
    procs = [spawn(APPENDER, store_url, str(tmp_path / "go"), "30", f"p{i}", str(key_file)) for i in range(2)]
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
    store.close()  # publishes its newest record
    with open_store(store_url, audit_seal=open_seal(key_file, create=False)) as again:
        result = again.verify_audit()
        assert result[:4] == (True, expected, None, f"{expected} records verified")
        checkpoints = again.audit_seal.published()[0]
        assert len({c.seq for c in checkpoints}) > 2 and max(c.seq for c in checkpoints) == expected
        assert result.checkpoint[0] == expected
        store = again
        seqs = [r.seq for r in store.query_audit(limit=10_000)]
    assert seqs == list(range(expected, 0, -1))


@pytest.fixture
def chain10(keyed):
    """Ten keyed records in one commit; the head (record 10) published as a checkpoint."""
    start = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    keyed.append_audit_many([entry(i, at=start + timedelta(seconds=i)) for i in range(10)])
    result = keyed.verify_audit()
    assert result.ok and result.checkpoint[0] == 10, result
    return keyed


def test_an_edited_field_is_named(chain10, raw_sql):
    raw_sql("UPDATE audit_log SET outcome = '403' WHERE seq = 4")
    assert chain10.verify_audit()[:4] == (False, 3, 4, "record 4 was altered (hash differs)")
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
    assert chain10.verify_audit()[:4] == (False, 5, 6, "record 6 missing (next is 7)")


def test_deleting_the_newest_records_is_detected(chain10, raw_sql):
    raw_sql("DELETE FROM audit_log WHERE seq >= 9")
    assert chain10.verify_audit()[:4] == (False, 8, 9, "records 9-10 missing (the chain head is at 10)")


def test_reordered_records_are_named(chain10, raw_sql):
    raw_sql("UPDATE audit_log SET seq = -3 WHERE seq = 3")
    raw_sql("UPDATE audit_log SET seq = 3 WHERE seq = 5")
    raw_sql("UPDATE audit_log SET seq = 5 WHERE seq = -3")
    ok, checked, bad, reason, _, _ = chain10.verify_audit()
    assert (ok, checked, bad) == (False, 2, 3) and "record 3" in reason


def test_rewriting_a_record_with_its_neighbours_hash_is_caught_at_the_next_link(chain10, raw_sql):
    rows = raw_sql("SELECT hash FROM audit_log WHERE seq = 4")
    raw_sql("UPDATE audit_log SET hash = ? WHERE seq = 5", (rows[0][0],))
    assert chain10.verify_audit()[2] == 5


def test_truncating_the_newest_records_and_rewinding_the_head_is_detected(chain10, raw_sql):
    """An attacker with the database deletes the newest records and moves the chain head back to match."""
    kept = raw_sql("SELECT hash FROM audit_log WHERE seq = 8")[0][0]
    raw_sql("DELETE FROM audit_log WHERE seq >= 9")
    raw_sql("UPDATE audit_head SET last_seq = 8, last_hash = ? WHERE id = 1", (kept,))
    result = chain10.verify_audit()
    assert result[:3] == (False, 8, 9), result
    assert "head rewound" in result.reason
    assert result.reason.startswith("records 9-10 missing: checkpoint 10 was published")


def rewrite_and_rehash(raw_sql, seq: int, outcome: str) -> None:
    """An attacker with the database edits record ``seq`` and recomputes every later hash, link and the chain
    head with the published formula (``compute_hash``)."""
    rows = raw_sql(f"SELECT {AUDIT_COLS} FROM audit_log WHERE seq >= ? ORDER BY seq", (seq,))
    prev = rows[0][10]
    for (n, at, user_id, role, org, action, nhs, request_id, old_outcome, details, _, _) in rows:
        new_outcome = outcome if n == seq else old_outcome
        when = datetime.fromisoformat(at) if isinstance(at, str) else at
        h = compute_hash(seq=n, at=when, user_id=user_id, role_profile_id=role, org=org, action=action,
                         nhs_number=nhs, request_id=request_id, outcome=new_outcome, details=json.loads(details),
                         prev_hash=prev)
        raw_sql("UPDATE audit_log SET outcome = ?, prev_hash = ?, hash = ? WHERE seq = ?", (new_outcome, prev, h, n))
        prev = h
    raw_sql("UPDATE audit_head SET last_hash = ? WHERE id = 1", (prev,))


def test_rewriting_a_record_and_rehashing_the_rest_is_detected(chain10, raw_sql):
    rewrite_and_rehash(raw_sql, 4, "403")
    result = chain10.verify_audit()
    assert result[:3] == (False, 3, 4), result
    assert result.reason == "record 4 is not keyed but follows keyed records (rewritten without the key)"


def test_rewriting_the_whole_chain_without_the_key_is_caught_by_the_checkpoint(chain10, raw_sql):
    rewrite_and_rehash(raw_sql, 1, "403")  # a consistent unkeyed chain, as if no key had ever been used
    result = chain10.verify_audit()
    assert result[:3] == (False, 9, 10), result
    assert "differs from the checkpoint published for it" in result.reason


KILLED = PROLOGUE + """
from pathlib import Path
from app.service.store import AuditEntry, open_seal
store.use_audit_seal(open_seal(Path(sys.argv[3]), create=False, every_records=100))
i = 0
while True:
    batch = [AuditEntry("k", "r", "o", "pds.read", "9000000009", f"k-{i}-{j}", "200", {"pad": "x" * 500})
             for j in range(1 + i % 25)]
    store.append_audit_many(batch)
    i += 1
"""


def test_kill_9_in_the_middle_of_writing_leaves_a_valid_chain(keyed, store_url, tmp_path, key_file):
    store = keyed
    total = 0
    for round_ in range(2):
        go = tmp_path / f"go{round_}"
        proc = spawn(KILLED, store_url, str(go), str(key_file))
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
        ok, checked, _, reason, checkpoint, _ = store.verify_audit()
        assert ok, reason
        assert checked >= total + 300 and checkpoint is not None and checkpoint[0] <= checked
        store.append_audit(entry(round_))  # the chain carries on after the crash
        ok, total, _, reason, _, _ = store.verify_audit()
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


def test_group_commit_writer_batches_and_waits_for_commit(keyed):
    store = keyed
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
    assert store.verify_audit()[:4] == (True, 640, None, "640 records verified")
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


def test_the_service_creates_its_key_on_first_start_and_refuses_another_key(store_url, tmp_path):
    key_file = tmp_path / "data" / "audit.key"
    config = ServiceConfig(store_url, training_pki=str(tmp_path / "pki"), audit_key=str(key_file))
    service = build_service(config)
    try:
        record = service.audit.append(entry(1), timeout=30)
    finally:
        service.close()
    assert record.hash.startswith("hmac-sha256:")
    if os.name == "posix":
        assert key_file.stat().st_mode & 0o777 == 0o600
    with open_store(store_url, audit_seal=open_seal(key_file, create=False)) as again:
        assert [c.seq for c in again.audit_seal.published()[0]] == [1]
        assert again.verify_audit().checkpoint[0] == 1
    other = replace(config, audit_key=str(tmp_path / "other" / "audit.key"))
    with pytest.raises(AuditKeyError, match="give every service process and host the same key file"):
        build_service(other)  # at start, not at the first audited request


def test_audit_verify_command_names_the_checkpoint_a_rewound_head_and_a_missing_key(store_url, tmp_path, raw_sql,
                                                                                      monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("SPINEDESK_DATA_DIR", str(data))
    monkeypatch.setenv("SPINEDESK_SITE_CONFIG", str(tmp_path / "no-site.toml"))
    with open_store(store_url, audit_seal=open_seal(data / "audit.key", create=True)) as service_store:
        service_store.append_audit_many([entry(i) for i in range(5)])  # as the service would, with its default key

    def verify(*options: str) -> tuple[int, str]:
        out = io.StringIO()
        code = main(["service", "--database", store_url, "audit", "verify", *options], stdout=out)
        return code, out.getvalue()

    code, text = verify()
    assert code == 0 and "Audit chain intact: 5 records verified." in text, text
    assert "Last checkpoint matched: record 5, published " in text

    code, text = verify("--audit-key", str(tmp_path / "elsewhere" / "audit.key"))  # e.g. on another machine
    assert code == 4 and text.startswith("AUDIT CHAIN NOT CHECKED: record 1 is keyed"), text
    assert "no audit key was found at" in text and "--audit-key FILE" in text

    kept = raw_sql("SELECT hash FROM audit_log WHERE seq = 3")[0][0]
    raw_sql("DELETE FROM audit_log WHERE seq >= 4")
    raw_sql("UPDATE audit_head SET last_seq = 3, last_hash = ? WHERE id = 1", (kept,))
    code, text = verify()
    assert code == 3 and text.startswith("AUDIT CHAIN BROKEN at record 4: records 4-5 missing: checkpoint 5 was "
                                         "published"), text
    assert "(head rewound)" in text
