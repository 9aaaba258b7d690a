"""``kill -9`` of the service while clinicians update a flag loses no acknowledged update, applies none twice and
leaves no change without its audit record and stored X-Request-ID answer, on both stores.

``python -m app service`` runs in its own process. Client threads PUT one patient's flag, each adding adjustments
with its own free text (If-Match from the flag they read; on a 409 they re-read and retry under a new
X-Request-ID). The service is SIGKILLed mid-load. Straight from the database afterwards: every acknowledged
adjustment is there exactly once, nothing appears that was never sent, one version per applied change (every
version kept in the history), every applied change — answered or not — has its ``flags.update`` audit record and
stored answer, and the chain verifies. The restarted service serves the flag and takes the next update.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.pki import TrainingCA
from app.protocol import FLAGS_BASE
from app.service.flags import seed as seed_flags
from app.service.flags.codes import load_codes
from app.service.pds.seed import generate_patients
from app.service.storage import open_store
from app.service.store import RoleProfile, open_seal
from tests.integration.service.test_scale_out import ServiceProcess, headers, make_database, new_session, version_of
from tests.support.service.flags_helpers import adjustment
from tests.support.service.live import seed

pytestmark = pytest.mark.stress  # heavy load, kill -9 or many processes: left out of the clock-shifted runs

THREADS = 5
KILL_AFTER_ACKS = 20
LOAD_AT_MOST_S = 8.0
HTTP_TIMEOUT_S = 5.0
FHIR_JSON = {"Content-Type": "application/fhir+json"}


@dataclass
class Load:
    acked: list[tuple[str, int, str]] = field(default_factory=list)  # (text, version, X-Request-ID)
    in_flight: dict[int, tuple[str, str]] = field(default_factory=dict)  # thread -> (text, X-Request-ID)
    unexpected: list[str] = field(default_factory=list)


def texts(resource: dict[str, Any]) -> list[str]:
    return [c["code"].get("text", "") for c in resource["contained"] if c["resourceType"] == "Flag"]


def write_load(url: str, token: str, stop: threading.Event) -> tuple[Load, list[threading.Thread]]:
    load, lock = Load(), threading.Lock()

    def worker(n: int) -> None:
        with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
            i = 0
            while not stop.is_set():
                try:
                    read = client.get(url, headers=headers(token, "nurse-1"))
                except httpx.TransportError:
                    return
                body = read.json()
                text = f"crash-{n}-{i}"
                body["contained"].append(adjustment("011", text=text))
                request_id = str(uuid.uuid4())
                load.in_flight[n] = (text, request_id)
                try:
                    r = client.put(url, json=body, headers=headers(
                        token, "nurse-1", request_id=request_id, **FHIR_JSON, **{"If-Match": read.headers["etag"]}))
                except httpx.TransportError:
                    return  # the service died under us: never acknowledged
                if r.status_code == 200:
                    with lock:
                        load.acked.append((text, version_of(r.headers["etag"]), request_id))
                    load.in_flight.pop(n, None)
                    i += 1
                elif r.status_code == 409:
                    load.in_flight.pop(n, None)
                else:
                    with lock:
                        load.unexpected.append(f"{r.status_code}: {r.text[:200]}")
                    return

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(THREADS)]
    for th in threads:
        th.start()
    return load, threads


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_kill_9_while_updating_a_flag(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    database, cleanup = make_database(kind, tmp_path, request)
    data_dir = tmp_path / "data"
    try:
        with open_store(database) as store:
            seed(store, TrainingCA.load_or_create(data_dir / "training-pki"), patients=20)
            store.add_role_profile(RoleProfile("nurse-1", "alice", "A81001", "Training Surgery", "S8000:G8000:R8001",
                                               "S8000:G8000:R8001", ("B0264", "B0360")))
            token = new_session(store, urid="nurse-1")
            patient = next(p for p in next(generate_patients(20, seed=7)) if p.nhs_number == "9000000017")
            flag = seed_flags.flag_for(patient, 1, load_codes())
            store.put_flags([flag])
        url_path = f"{FLAGS_BASE}/Flag/{flag.id}"
        service = ServiceProcess(database, data_dir, tmp_path / "service-1.log").start()
        stop = threading.Event()
        try:
            service.wait_ready(20)
            load, threads = write_load(service.url + url_path, token, stop)
            deadline = time.monotonic() + LOAD_AT_MOST_S
            while len(load.acked) < KILL_AFTER_ACKS and time.monotonic() < deadline and \
                    any(t.is_alive() for t in threads):
                time.sleep(0.01)
            time.sleep(random.uniform(0, 0.3))
            service.kill()
        finally:
            stop.set()
            service.kill()
        for th in threads:
            th.join(HTTP_TIMEOUT_S + 5)
        assert not load.unexpected, load.unexpected[:3]
        assert len(load.acked) >= 5, f"too little load before the kill:\n{service.output()}"

        with open_store(database, audit_seal=open_seal(data_dir / "audit.key", create=False)) as store:
            row = store.get_flag(flag.id)
            ours = [t for t in texts(row.resource) if t.startswith("crash-")]
            acked = {t for t, _, _ in load.acked}
            assert not acked - set(ours), "an acknowledged update was lost"
            assert len(ours) == len(set(ours)), "an update was applied twice"
            maybe = dict(load.in_flight.values())
            assert set(ours) <= acked | set(maybe), "an update that was never sent appeared"
            assert row.version == 1 + len(ours)
            assert [r.version for r in store.flag_history(flag.id)] == list(range(row.version, 0, -1))
            assert store.verify_audit().ok
            audited = {r.request_id: r for r in store.query_audit(action="flags.update", limit=100_000)
                       if r.outcome == "200"}
            applied = [rid for _, _, rid in load.acked] + [maybe[t] for t in ours if t not in acked]
            for rid in applied:
                assert rid in audited, f"applied change {rid} has no audit record"
                stored = store.recall(rid, "alice")
                assert stored is not None and stored.status == 200, f"applied change {rid} has no stored answer"
            final = row.version

        restarted = ServiceProcess(database, data_dir, tmp_path / "service-2.log").start()
        try:
            restarted.wait_ready(20)
            read = httpx.get(restarted.url + url_path, headers=headers(token, "nurse-1"), timeout=HTTP_TIMEOUT_S)
            assert read.status_code == 200 and read.headers["etag"] == f'W/"{final}"', read.text
            body = read.json()
            body["contained"].append(adjustment("011", text="after the restart"))
            write = httpx.put(restarted.url + url_path, json=body, timeout=HTTP_TIMEOUT_S, headers=headers(
                token, "nurse-1", **FHIR_JSON, **{"If-Match": read.headers["etag"]}))
            assert write.status_code == 200 and write.headers["etag"] == f'W/"{final + 1}"', write.text
        finally:
            restarted.stop()
    finally:
        cleanup()
