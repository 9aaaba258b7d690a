"""``kill -9`` of the service under write load loses no acknowledged write and leaves the audit chain intact.

``python -m app service`` runs in its own process over a SQLite file or a PostgreSQL schema. Several client
threads PATCH one patient, each adding telecom items with distinct values (If-Match from the last answer; on a
409 they re-read and retry under a new X-Request-ID), and record every ACKNOWLEDGED (200) answer. The service
is SIGKILLed in the middle of that. Then, straight from the database: every acknowledged item is there (exactly
once), nothing appears that was never sent, the version is at least the last acknowledged one, every acknowledged
update has its audit record and its stored idempotent answer — and so does every update that was applied but never
answered (the change, its audit record and its answer commit in one transaction) —, and the audit hash chain
verifies. Finally the
service is restarted on the same database and serves reads (and writes) again. Each case takes a few seconds;
every wait is bounded.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.pki import TrainingCA
from app.service.storage import open_store

from .live import seed
from .test_scale_out import (
    PATCH_TYPE,
    ServiceProcess,
    add_telecom,
    editable_patients,
    headers,
    make_database,
    new_session,
    version_of,
)

pytestmark = pytest.mark.stress  # heavy load, kill -9 or many processes: left out of the clock-shifted runs

THREADS = 6
KILL_AFTER_ACKS = 25  # SIGKILL a random 0-300 ms after this many writes are acknowledged …
LOAD_AT_MOST_S = 8.0  # … or after this long, whichever comes first
HTTP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Ack:
    thread: int
    value: str
    version: int
    request_id: str


@dataclass
class Load:
    acked: list[Ack]
    in_flight: dict[int, tuple[str, str]]  # per thread: (value, X-Request-ID) being sent when the service died
    conflicts: int
    unexpected: list[str]


@dataclass
class Target:
    database: str
    data_dir: Path
    logs: Path
    token: str
    nhs: str
    version: int  # before the load
    telecom: frozenset[str]  # the seeded telecom values, before the load


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    database, cleanup = make_database(request.param, tmp_path, request)
    data_dir = tmp_path / "data"
    try:
        with open_store(database) as store:
            seed(store, TrainingCA.load_or_create(data_dir / "training-pki"), patients=20)
            token = new_session(store)
            nhs = editable_patients(store, 1)[0]
            row = store.get_patient(nhs)
            assert row is not None
        yield Target(database, data_dir, tmp_path, token, nhs, row.version,
                     frozenset(x["value"] for x in row.resource.get("telecom", [])))
    finally:
        cleanup()


def write_load(service: ServiceProcess, t: Target, stop: threading.Event) -> tuple[Load, list[threading.Thread]]:
    load = Load([], {}, 0, [])
    lock = threading.Lock()
    url = f"{service.url}/personal-demographics/FHIR/R4/Patient/{t.nhs}"

    def worker(n: int) -> None:
        with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
            try:
                etag = client.get(url, headers=headers(t.token)).headers["etag"]
            except httpx.TransportError:
                return
            i = 0
            while not stop.is_set():
                value = f"07{n}{i:08d}"  # distinct per thread and item (a retry after a 409 resends the same)
                request_id = str(uuid.uuid4())
                load.in_flight[n] = (value, request_id)
                try:
                    r = client.patch(url, json=add_telecom(value),
                                     headers=headers(t.token, request_id=request_id, **PATCH_TYPE,
                                                     **{"If-Match": etag}))
                except httpx.TransportError:
                    return  # the service died under us: this write was never acknowledged
                if r.status_code == 200:
                    etag = r.headers["etag"]
                    with lock:
                        load.acked.append(Ack(n, value, version_of(etag), request_id))
                        if value not in [x["value"] for x in r.json().get("telecom", [])]:
                            load.unexpected.append(f"200 without the item {value}")
                    load.in_flight.pop(n, None)
                    i += 1
                elif r.status_code == 409:
                    with lock:
                        load.conflicts += 1
                    load.in_flight.pop(n, None)
                    try:
                        etag = client.get(url, headers=headers(t.token)).headers["etag"]
                    except httpx.TransportError:
                        return
                else:
                    with lock:
                        load.unexpected.append(f"{r.status_code}: {r.text[:200]}")
                    return

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(THREADS)]
    for th in threads:
        th.start()
    return load, threads


def test_kill_9_under_write_load_loses_no_acknowledged_write(target: Target) -> None:
    t = target
    service = ServiceProcess(t.database, t.data_dir, t.logs / "service-1.log").start()
    stop = threading.Event()
    try:
        service.wait_ready(20)
        load, threads = write_load(service, t, stop)
        deadline = time.monotonic() + LOAD_AT_MOST_S
        while len(load.acked) < KILL_AFTER_ACKS and time.monotonic() < deadline and any(x.is_alive() for x in threads):
            time.sleep(0.01)
        time.sleep(random.uniform(0, 0.3))  # anywhere in a write: before, inside or after its commits
        service.kill()  # SIGKILL mid-load: requests are in flight
    finally:
        stop.set()
        service.kill()
    for th in threads:
        th.join(HTTP_TIMEOUT_S + 5)
    assert not any(th.is_alive() for th in threads)
    assert not load.unexpected, load.unexpected[:3]
    assert len(load.acked) >= 10, f"too little load before the kill ({len(load.acked)} acks):\n{service.output()}"

    with open_store(t.database) as store:  # the database as the crash left it
        row = store.get_patient(t.nhs)
        assert row is not None
        present = [x["value"] for x in row.resource.get("telecom", [])]
        ours = [v for v in present if v not in t.telecom]
        acked_values = {a.value for a in load.acked}
        lost = sorted(acked_values - set(ours))
        assert not lost, f"{len(lost)} acknowledged write(s) lost, e.g. {lost[:5]}"
        assert len(ours) == len(set(ours)), "an item was applied twice"
        maybe = dict(load.in_flight.values())  # value -> request id of the writes that were never answered
        assert set(ours) <= acked_values | set(maybe), "an item that was never sent appeared"
        versions = [a.version for a in load.acked]
        assert len(versions) == len(set(versions)), "two acknowledged writes claim the same version"
        assert row.version >= max(versions)
        assert row.version - t.version == len(ours)  # one version per applied item: nothing applied without its bump

        verdict = store.verify_audit()
        assert verdict.ok, verdict
        audited = {r.request_id: r for r in store.query_audit(nhs_number=t.nhs, action="pds.patch", limit=100_000)}
        for a in load.acked:  # the audit record committed before the 200 left, so it survived the kill
            record = audited.get(a.request_id)
            assert record is not None and record.outcome == "200", f"acknowledged write {a} has no audit record"
            assert record.details.get("version") == a.version
            stored = store.recall(a.request_id, "alice")
            assert stored is not None and stored.status == 200, f"acknowledged write {a} has no stored answer"
        final_version = row.version
        unanswered = [maybe[v] for v in ours if v not in acked_values]  # committed, then the process died
        unaudited = [rid for rid in unanswered if rid not in audited]
        # the change, its audit record and its answer are one transaction: applied means audited and answered
        assert not unaudited, f"{len(unaudited)} applied change(s) without an audit record: {unaudited[:3]}"
        for rid in unanswered:
            stored = store.recall(rid, "alice")
            assert stored is not None and stored.status == 200, f"applied change {rid} has no stored answer"
        print(f"acknowledged {len(load.acked)}, 409s {load.conflicts}, unacknowledged in flight at the kill "
              f"{len(load.in_flight)}, applied {len(ours)}, version {t.version} -> {row.version}, audit "
              f"{verdict.checked}; applied but unanswered {len(unanswered)}, of which without an audit record "
              f"{len(unaudited)}")

    restarted = ServiceProcess(t.database, t.data_dir, t.logs / "service-2.log").start()
    try:
        restarted.wait_ready(20)
        url = f"{restarted.url}/personal-demographics/FHIR/R4/Patient/{t.nhs}"
        read = httpx.get(url, headers=headers(t.token), timeout=HTTP_TIMEOUT_S)
        assert read.status_code == 200, read.text
        assert read.headers["etag"] == f'W/"{final_version}"'
        assert set(ours) <= {x["value"] for x in read.json()["telecom"]}
        write = httpx.patch(url, json=add_telecom("01632960999"), timeout=HTTP_TIMEOUT_S,
                            headers=headers(t.token, **PATCH_TYPE, **{"If-Match": read.headers["etag"]}))
        assert write.status_code == 200 and write.headers["etag"] == f'W/"{final_version + 1}"', write.text
    finally:
        restarted.stop()
    with open_store(t.database) as store:
        assert store.verify_audit().ok


def test_request_whose_process_died_mid_patch_can_be_retried(tmp_path: Path) -> None:
    """The process that claimed an X-Request-ID was SIGKILLed before it answered (its claim is in the database;
    planted here through the store, exactly as ``claim()`` leaves it). After the restart, the client's retry under
    the same X-Request-ID must get a real answer promptly, and must not stall the worker for everyone else."""
    database = f"sqlite:///{tmp_path / 'service.db'}"
    data_dir = tmp_path / "data"
    with open_store(database) as store:
        seed(store, TrainingCA.load_or_create(data_dir / "training-pki"), patients=20)
        token = new_session(store)
        nhs = editable_patients(store, 1)[0]
        path = f"/personal-demographics/FHIR/R4/Patient/{nhs}"
        request_id = str(uuid.uuid4())
        store.claim(request_id, "alice", "PATCH", path)
    service = ServiceProcess(database, data_dir, tmp_path / "service.log").start()
    try:
        service.wait_ready(20)
        etag = httpx.get(service.url + path, headers=headers(token)).headers["etag"]
        stalls: list[float] = []

        def health_meanwhile() -> None:
            time.sleep(0.5)
            started = time.monotonic()
            httpx.get(f"{service.url}/_status", timeout=15)
            stalls.append(time.monotonic() - started)

        probe = threading.Thread(target=health_meanwhile)
        probe.start()
        started = time.monotonic()
        retry = httpx.patch(service.url + path, json=add_telecom("01632960777"), timeout=15,
                            headers=headers(token, request_id=request_id, **PATCH_TYPE, **{"If-Match": etag}))
        took = time.monotonic() - started
        probe.join(20)
    finally:
        service.stop()
    assert stalls and stalls[0] < 2, f"the worker stopped serving others for {stalls} s while the retry waited"
    assert retry.status_code in (200, 409) and took < 5, f"retry got {retry.status_code} after {took:.1f} s"
