"""The purge job: expired challenges and sessions and stored answers past their retention are deleted, live rows
kept, in small transactions, on both stores; every service process runs it (built with the service, stopped
with it). Times come from a fixed clock, never the real one."""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from app.pki import TrainingCA
from app.service.core.housekeeping import Purger, Retention, RetentionError
from app.service.runtime import ServiceConfig, build_service
from app.service.storage import open_store

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
FP = "ab" * 32


def fill(store, expired: int = 7) -> None:  # type: ignore[no-untyped-def]
    """``expired`` rows past their time in each table, and rows still live (two just inside the line)."""
    store.add_user("u1", "A")
    for n in range(expired):
        store.create_challenge(f"old-{n}", FP, NOW - timedelta(seconds=n + 1), now=NOW - timedelta(minutes=5))
        store.create_session(f"old-{n}", "u1", NOW - timedelta(seconds=n), now=NOW - timedelta(hours=12))
        store.remember(f"r-old-{n}", "u1", "GET", "/Patient/9000000009", 200, [], b"{}",
                       now=NOW - timedelta(hours=24, seconds=n + 1))
    store.create_challenge("live", FP, NOW + timedelta(seconds=1), now=NOW)
    store.create_session("live", "u1", NOW + timedelta(hours=1), now=NOW)
    store.remember("r-live", "u1", "GET", "/Patient/9000000009", 200, [], b"{}", now=NOW - timedelta(hours=23))
    store.remember("r-edge", "u1", "GET", "/Patient/9000000009", 200, [], b"{}", now=NOW - timedelta(hours=24))


def live_rows_kept(store) -> bool:  # type: ignore[no-untyped-def]
    return (store.get_session("live", now=NOW) is not None and store.recall("r-live", "u1") is not None
            and store.recall("r-edge", "u1") is not None and store.consume_challenge("live", now=NOW) is not None)


def count_writes(store, monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    writes: list[int] = []
    real = store._write

    def counted():  # type: ignore[no-untyped-def]
        writes.append(1)
        return real()

    monkeypatch.setattr(store, "_write", counted)
    return writes


def test_purge_deletes_what_is_past_its_time_a_small_batch_per_transaction(store, monkeypatch):
    fill(store, expired=7)
    writes = count_writes(store, monkeypatch)
    assert store.purge_expired(now=NOW, idempotency_ttl_seconds=24 * 3600, batch=3) == 21
    assert len(writes) == 9  # 3 tables x (3 + 3 + 1): no transaction deleted more than 3 rows
    assert all(store.recall(f"r-old-{n}", "u1") is None for n in range(7))
    assert all(store.get_session(f"old-{n}", now=NOW - timedelta(hours=1)) is None for n in range(7))
    assert all(store.consume_challenge(f"old-{n}", now=NOW - timedelta(hours=1)) is None for n in range(7))
    assert live_rows_kept(store)


def test_the_purger_uses_its_clock_and_the_retention_setting(store):
    fill(store, expired=2)
    purger = Purger(store, Retention(idempotency_ttl=24 * 3600, purge_batch=1), clock=lambda: NOW)
    assert purger.run_once() == 6
    assert purger.run_once() == 0
    assert live_rows_kept(store)
    shorter = Purger(store, Retention(idempotency_ttl=3600), clock=lambda: NOW)
    assert shorter.run_once() == 2  # r-live and r-edge are older than an hour
    assert store.recall("r-live", "u1") is None


def test_the_purger_runs_by_itself(store):
    fill(store, expired=2)
    purger = Purger(store, Retention(purge_interval=0.01), clock=lambda: NOW).start()
    try:
        deadline = time.monotonic() + 30
        while store.recall("r-old-0", "u1") is not None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        purger.stop()
    assert not purger.running
    assert store.recall("r-old-0", "u1") is None and store.recall("r-old-1", "u1") is None
    assert live_rows_kept(store)


@contextmanager
def built(tmp_path, config: ServiceConfig, clock):  # type: ignore[no-untyped-def]
    service = build_service(config, open_store(f"sqlite:///{tmp_path / 's.db'}"), clock=clock)
    try:
        yield service
    finally:
        service.close()


def test_building_the_service_starts_the_purger_and_closing_stops_it(tmp_path):
    ca = TrainingCA.load_or_create(tmp_path / "pki")  # real time throughout: no fixed date meets the CA here
    config = ServiceConfig("unused://", training_pki=str(ca.directory), retention=Retention(idempotency_ttl=60))

    def clock() -> datetime:
        return datetime.now(UTC)

    with built(tmp_path, config, clock) as service:
        purger = service.purger
        assert purger is not None and purger.running
        assert purger.retention.idempotency_ttl == 60 and purger.clock is clock  # the service's own clock
        assert purger.store is service.store
    assert not purger.running


def test_retention_is_a_typed_setting(monkeypatch):
    assert Retention().idempotency_ttl == 24 * 3600
    assert Retention().with_overrides(["idempotency_ttl=3600", "purge-batch=50"]) == Retention(3600, 60, 50)
    for bad in (["idempotency_ttl=soon"], ["forever=1"], ["purge_batch=0"], ["purge_interval"]):
        with pytest.raises(RetentionError):
            Retention().with_overrides(bad)
    monkeypatch.setenv("SPINEDESK_SERVICE_CONFIG", ServiceConfig("sqlite:///x.db",
                                                                 retention=Retention(7200)).to_env())
    assert ServiceConfig.from_env().retention == Retention(7200)


def test_retention_given_on_the_command_line_reaches_the_service_config(tmp_path):
    from app.__main__ import build_parser
    from app.cli.service import _config
    from app.config import Paths, Settings

    paths = Paths(tmp_path / "config", tmp_path / "data", tmp_path / "log", tmp_path / "site.toml")
    args = build_parser().parse_args(["service", "--database", f"sqlite:///{tmp_path / 's.db'}",
                                      "--retention", "idempotency_ttl=3600", "--retention", "purge_interval=30"])
    assert _config(args, Settings(paths)).retention == Retention(idempotency_ttl=3600, purge_interval=30)
    with pytest.raises(RetentionError):
        _config(build_parser().parse_args(["service", "--retention", "keep=forever"]), Settings(paths))
