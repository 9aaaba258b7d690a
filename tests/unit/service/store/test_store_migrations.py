"""Opening a store: URLs, errors that say what to do, versioned migrations (idempotent, concurrent, atomic)."""

from __future__ import annotations

import pytest

from app.error_text import user_text
from app.service.storage import open_store, schema_postgres, schema_sqlite, sqlite_path
from app.service.store import SchemaError, StoreUnavailable, StoreUrlError
from app.service.store.migrations import Migration
from tests.support.service.fixtures import PROLOGUE, free_port, spawn, start_together


def _migrations(kind: str) -> tuple[Migration, ...]:
    return schema_sqlite.MIGRATIONS if kind == "sqlite" else schema_postgres.MIGRATIONS


def test_open_applies_every_migration(store, store_kind):
    assert store.schema_version() == _migrations(store_kind)[-1].version


def test_reopening_applies_nothing_twice(store_url, store_kind, raw_sql):
    for _ in range(3):
        open_store(store_url).close()
    rows = raw_sql("SELECT version FROM schema_version ORDER BY version")
    assert [r[0] for r in rows] == [m.version for m in _migrations(store_kind)]


def test_two_processes_opening_a_new_database_at_once(store_url, store_kind, raw_sql, tmp_path):
    # open only after the go signal, so both processes create and migrate the new database together
    code = PROLOGUE.replace("store = open_store(url)\n", "") + "print(open_store(url).schema_version())\n"
    procs = [spawn(code, store_url, str(tmp_path / "go")) for _ in range(2)]
    start_together(procs, tmp_path / "go")
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    latest = _migrations(store_kind)[-1].version
    assert [o[0].strip() for o in outs] == [str(latest)] * 2
    rows = raw_sql("SELECT version FROM schema_version ORDER BY version")
    assert [r[0] for r in rows] == [m.version for m in _migrations(store_kind)]


def test_a_failing_migration_changes_nothing(store_url, store_kind, raw_sql, monkeypatch):
    module = schema_sqlite if store_kind == "sqlite" else schema_postgres
    broken = Migration(len(module.MIGRATIONS) + 1, "broken", ("CREATE TABLE half_done (a INTEGER)", "NOT SQL AT ALL"))
    open_store(store_url).close()
    monkeypatch.setattr(module, "MIGRATIONS", (*module.MIGRATIONS, broken))
    with pytest.raises(SchemaError) as info:
        open_store(store_url)
    assert "broken" in str(info.value) and "nothing was changed" in str(info.value)
    assert max(r[0] for r in raw_sql("SELECT version FROM schema_version")) == broken.version - 1
    with pytest.raises(Exception):  # noqa: B017 - the table must not exist (either driver's error)
        raw_sql("SELECT * FROM half_done")


def test_a_database_from_a_newer_release_is_refused(store_url, raw_sql):
    open_store(store_url).close()
    raw_sql("INSERT INTO schema_version (version, name, applied_at) VALUES (999, 'future', 'x')")
    with pytest.raises(SchemaError) as info:
        open_store(store_url)
    assert info.value.found == 999
    assert "install the Spine Desk release" in user_text(info.value)


@pytest.mark.parametrize("url", [
    "", "spinedesk.db", "mysql://host/db", "sqlite://relative.db", "sqlite:///", "sqlite:///tmp/x.db?mode=ro",
    "postgresql://host:notaport/db", "postgresql://host/db?nosuchoption=1",
])
def test_malformed_urls_say_how_to_write_one(url):
    with pytest.raises(StoreUrlError) as info:
        open_store(url)
    text = user_text(info.value)
    assert "sqlite:///" in text and "postgresql://" in text, text


def test_sqlite_paths():
    assert sqlite_path("sqlite:///var/lib/spinedesk/a.db") == "/var/lib/spinedesk/a.db"
    assert sqlite_path("sqlite:////var/lib/a.db") == "/var/lib/a.db"
    assert sqlite_path("sqlite:///:memory:") == ":memory:"
    assert sqlite_path("sqlite:///C:/Users/x/a.db") == "C:/Users/x/a.db"
    assert sqlite_path("sqlite:///tmp/with%20space.db") == "/tmp/with space.db"


def test_memory_store_works_across_threads():
    import threading

    store = open_store("sqlite:///:memory:")
    errors: list[BaseException] = []

    def add(i: int) -> None:
        try:
            store.add_user(f"u{i}", f"User {i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.list_users()) == 8
    store.close()


def test_missing_directory_is_reported(tmp_path):
    with pytest.raises(StoreUnavailable) as info:
        open_store(f"sqlite://{tmp_path}/no/such/dir/a.db")
    assert "does not exist" in user_text(info.value) and "create it" in user_text(info.value)


def test_not_a_database_file_is_reported(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreUnavailable) as info:
        open_store(f"sqlite://{junk}")
    assert "not a usable Spine Desk database" in user_text(info.value)


def test_unreachable_postgresql_is_reported():
    pytest.importorskip("psycopg")
    url = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/nothing?connect_timeout=3"
    with pytest.raises(StoreUnavailable) as info:
        open_store(url)
    text = user_text(info.value)
    assert "secret" not in text and "***" in text
    assert "check that the database server is running" in text
