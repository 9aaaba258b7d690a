"""``GET /_status`` tells the truth: it fails while audit records cannot be written (every data request is then
refused with 503) and warns while CP-IS notifications are stuck undelivered; the deliverer raises its alarm at
ERROR once per change. Every date-dependent decision here reads an injected clock."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from app.pki import TrainingCA
from app.protocol import PDS_BASE
from app.service.cpis import rules
from app.service.cpis.delivery import Deliverer, DeliveryAlarm, DeliveryAlarmError
from app.service.cpis.store import AccessEvent, LocalAuthority, Notification
from app.service.runtime import Service, ServiceConfig, build_service
from app.service.storage import open_store
from app.service.store import Store
from app.service.store.group_commit import GroupCommitter
from tests.clock import Clock
from tests.support.service.cpis_helpers import Receiver, session
from tests.support.service.live import seed

NOW = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)




def access(store: Store, la: str, request_id: str, at: datetime) -> str:
    """Record an unscheduled access notifying ``la``; its notification's key."""
    ev = AccessEvent(rules.access_id("alice", request_id), "9000000009", at, "alice", "Alice", "clin-1",
                     "S8000:G8000:R8000", "Clinical Practitioner", "A81001", "Training Surgery", request_id)
    key = rules.notification_id(ev.id, la)
    store.record_cpis_access(ev, [Notification(key, la, ev.nhs_number, {"id": key})], now=at)
    return key


def get(app: object, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
            return await client.get(path, headers=headers)
    return asyncio.run(call())


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and r.name.endswith("cpis.delivery")]


# --- the deliverer's alarm ------------------------------------------------------------------------------------

@pytest.fixture
def failing_la(store: Store) -> Iterator[tuple[Store, Receiver]]:
    with Receiver() as receiver:
        receiver.accepting = False
        store.put_local_authorities([LocalAuthority("TLA09", "Westholm", "Front Door", "1", "2", receiver.url)])
        yield store, receiver


def test_a_notification_failing_n_times_raises_one_error_until_it_is_delivered(failing_la, caplog) -> None:
    store, receiver = failing_la
    clock = Clock(NOW)
    key = access(store, "TLA09", "r-1", NOW)
    deliverer = Deliverer(store, "", alarm=DeliveryAlarm(attempts=3, after_seconds=86400), clock=clock)
    caplog.set_level(logging.WARNING, logger="app.service.cpis.delivery")
    try:
        for attempt in range(1, 6):
            clock.advance(minutes=1)  # past the backoff: due again
            assert deliverer.run_once() == 1
            assert len(errors(caplog)) == (0 if attempt < 3 else 1), f"after {attempt} failed attempts"
        (alarm,) = errors(caplog)
        assert "1 CP-IS notification(s) not delivered" in alarm and "2026-06-15T10:00:00Z" in alarm
        assert deliverer.stuck.count == 1
        receiver.accepting = True
        clock.advance(minutes=1)
        assert deliverer.run_once() == 1
        assert store.cpis_notifications()[0].delivered_at == clock() and receiver.stored.keys() == {key}
        assert deliverer.stuck.count == 0 and len(errors(caplog)) == 1
        assert any("recovered" in r.getMessage() for r in caplog.records)
    finally:
        deliverer.stop()


def test_a_notification_waiting_too_long_raises_one_error(failing_la, caplog) -> None:
    store, _ = failing_la
    clock = Clock(NOW)
    access(store, "TLA09", "r-1", NOW)
    deliverer = Deliverer(store, "", alarm=DeliveryAlarm(attempts=99, after_seconds=600), clock=clock)
    caplog.set_level(logging.WARNING, logger="app.service.cpis.delivery")
    try:
        clock.advance(seconds=600)
        assert deliverer.check_alarm().count == 0 and errors(caplog) == []
        clock.advance(seconds=1)
        assert deliverer.check_alarm().count == 1
        deliverer.check_alarm()
        assert len(errors(caplog)) == 1
    finally:
        deliverer.stop()


@pytest.mark.parametrize("settings", [{"attempts": 0}, {"after_seconds": -1}, {"attempts": 2.5},
                                      {"attempts": True}, {"after_seconds": "600"}])
def test_bad_alarm_settings_are_a_typed_error(settings: dict) -> None:
    with pytest.raises(DeliveryAlarmError):
        DeliveryAlarm(**settings)


def test_alarm_settings_travel_in_the_service_config(monkeypatch: pytest.MonkeyPatch) -> None:
    config = ServiceConfig("sqlite:///x.db", cpis_alarm=DeliveryAlarm(attempts=4, after_seconds=120.0))
    monkeypatch.setenv("SPINEDESK_SERVICE_CONFIG", config.to_env())
    assert ServiceConfig.from_env().cpis_alarm == DeliveryAlarm(attempts=4, after_seconds=120.0)


# --- /_status -------------------------------------------------------------------------------------------------

@pytest.fixture
def service_at(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    built: list[Service] = []

    def build(clock: Callable[[], datetime] | None = None, **options: object) -> Service:
        store = open_store(f"sqlite:///{tmp_path / 'service.db'}")
        config = ServiceConfig("unused://", training_pki=str(tmp_path / "pki"), **options)  # type: ignore[arg-type]
        service = build_service(config, store=store, **({"clock": clock} if clock else {}))
        built.append(service)
        return service

    yield build
    for service in built:
        service.close()


def test_status_warns_while_notifications_are_stuck_and_passes_once_they_are_delivered(service_at) -> None:
    clock = Clock(NOW)
    service = service_at(clock)
    assert service.deliverer is not None
    service.deliverer.stop()  # this test decides when things are delivered
    store = service.store
    store.put_local_authorities([LocalAuthority("TLA09", "Westholm", "Front Door", "1", "2")])
    key = access(store, "TLA09", "r-1", NOW)
    healthy = get(service.app, "/_status")
    assert healthy.status_code == 200 and healthy.json()["status"] == "pass"
    assert isinstance(healthy.json()["schema_version"], int)
    clock.advance(hours=1)  # older than the default alarm's 15 minutes, still undelivered
    r = get(service.app, "/_status")
    assert r.status_code == 200 and r.json()["status"] == "warn", r.json()
    (check,) = r.json()["checks"]["cpis-delivery"]
    assert check["status"] == "warn" and check["observedValue"] == 1 and check["time"] == "2026-06-15T10:00:00Z"
    store.finish_cpis_notifications("t", delivered=[key], now=clock())
    again = get(service.app, "/_status")
    assert again.status_code == 200 and again.json()["status"] == "pass"


def test_group_committer_reports_a_failed_commit_until_one_succeeds() -> None:
    clock = Clock(NOW)
    broken = threading.Event()
    broken.set()

    def commit(items: list[int]) -> list[int]:
        if broken.is_set():
            raise OSError(28, "No space left on device")
        return items

    committer: GroupCommitter[int, int] = GroupCommitter(commit, name="test-writer", clock=clock)
    try:
        assert committer.failing is None
        with pytest.raises(OSError):
            committer.submit(1).result(30)
        assert committer.failing is not None and committer.failing.since == NOW
        assert committer.failing.error == "OSError"
        clock.advance(minutes=5)
        with pytest.raises(OSError):
            committer.submit(2).result(30)
        assert committer.failing.since == NOW  # since the FIRST failure of the run
        broken.clear()
        assert committer.submit(3).result(30) == 3
        assert committer.failing is None
    finally:
        committer.close()


def test_status_fails_while_audit_records_cannot_be_written(service_at, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'service.db'}")
    seed(store, TrainingCA.load_or_create(tmp_path / "pki"), 20)
    token = session(store, "alice", "clin-1")
    store.close()
    service = service_at()
    disk_full = threading.Event()
    real = service.audit._commit_batch

    def append(entries):  # type: ignore[no-untyped-def]
        if disk_full.is_set():
            raise OSError(28, "No space left on device")
        return real(entries)

    monkeypatch.setattr(service.audit, "_commit_batch", append)

    def read() -> httpx.Response:
        return get(service.app, f"{PDS_BASE}/Patient/9000000009", {
            "Authorization": f"Bearer {token}", "NHSD-Session-URID": "clin-1", "X-Request-ID": str(uuid.uuid4())})

    assert read().status_code == 200 and get(service.app, "/_status").json()["status"] == "pass"
    disk_full.set()
    assert read().status_code == 503
    r = get(service.app, "/_status")
    assert r.status_code == 503 and r.json()["status"] == "fail", r.text
    (check,) = r.json()["checks"]["audit"]
    assert check["status"] == "fail" and "OSError" in check["output"] and "No space" not in r.text
    disk_full.clear()
    assert read().status_code == 200
    healthy = get(service.app, "/_status")
    assert healthy.status_code == 200 and healthy.json()["status"] == "pass"


def _service_args(*argv: str):  # type: ignore[no-untyped-def]
    import argparse

    from app.cli.service import add_parser
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["service", "--database", "sqlite:///unused.db", *argv])


def test_the_command_line_and_site_configuration_reach_the_service_config(tmp_path: Path) -> None:
    from app.cli.service import _config
    from app.config import Mode, Paths, Settings

    paths = Paths(tmp_path, tmp_path, tmp_path, tmp_path / "site.toml")
    site = Settings(paths, Mode.PRODUCTION, "https://spine.example", service_ca=Path("/site/ca.pem"),
                    trust_anchors=(Path("/site/root.pem"),))
    tls = ("--tls-cert", "c.pem", "--tls-key", "k.pem")
    assert _config(_service_args(*tls), site).tls_ca == "/site/ca.pem"  # the site's [service] ca
    assert _config(_service_args(*tls, "--tls-ca", "/x/ca.pem"), site).tls_ca == "/x/ca.pem"
    assert _config(_service_args(), site).tls_ca is None  # plain HTTP: nothing to trust
    training = Settings(paths)
    assert _config(_service_args(*tls, "--tls-ca", "/x/ca.pem"), training).tls_ca == "/x/ca.pem"
    config = _config(_service_args("--cpis-alarm-attempts", "3", "--cpis-alarm-after", "60"), training)
    assert config.cpis_alarm == DeliveryAlarm(attempts=3, after_seconds=60.0)
    assert _config(_service_args(), training).cpis_alarm == DeliveryAlarm()
    with pytest.raises(DeliveryAlarmError):
        _config(_service_args("--cpis-alarm-attempts", "0"), training)
