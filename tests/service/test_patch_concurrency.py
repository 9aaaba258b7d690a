"""50 concurrent PATCHes of one patient over real HTTP, on both stores: no lost update, exact versions, all audited.

Each of 50 client threads reads the ETag, PATCHes with If-Match (its own telecom item, or its own field) and on
409 re-reads and retries, a bounded number of times. Afterwards every change is in the record, the version is
the starting one plus the number of successes, the successes' ETags are exactly the versions in between, and
the audit trail holds one record per 200 and per 409 with the client's X-Request-ID. Run with handlers inline on
the event loop (a race shows as a stale If-Match) and on an 8-thread pool (handlers overlap, so the store's
compare-and-swap is what must catch the race); production's default is a small pool.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.pki import TrainingCA
from app.service.store import Store

from .live import serve

pytestmark = pytest.mark.stress  # heavy load, kill -9 or many processes: left out of the clock-shifted runs

NHS = "9000000009"
WORKERS = 50
MAX_ATTEMPTS = 200  # per worker; a worker that runs out fails the test
PATCH_TYPE = "application/json-patch+json"
TODAY = datetime.now(UTC).date()


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TrainingCA:
    return TrainingCA.load_or_create(tmp_path_factory.mktemp("pki"))


def serve_threads(store: Store, ca: TrainingCA, threads: int):
    """``live.serve`` with a chosen handler pool size (0: handlers on the event loop)."""
    return serve(store, ca, patients=20, threads=threads)


def shared_client() -> httpx.Client:
    """One pooled client for every thread (httpx clients are thread-safe; building one per thread costs ~50 ms
    each, loading the CA bundle): a connection per worker, kept alive, so the 50 requests really overlap."""
    return httpx.Client(timeout=60, limits=httpx.Limits(max_connections=WORKERS, max_keepalive_connections=WORKERS))


def change_for(i: int) -> tuple[dict[str, Any], str]:
    """Worker i's patch and a marker that proves it landed. Three workers change a field of their own; the
    others each add their own telecom item (alternating e-mail, phone and 'other')."""
    if i == 0:
        return {"op": "add", "path": "/name/-", "value": {"use": "nickname", "given": ["Worker"],
                                                          "family": "Zero"}}, "name:Zero"
    if i == 1:
        return {"op": "replace", "path": "/multipleBirthInteger", "value": 3}, "multipleBirthInteger:3"
    if i == 2:
        return {"op": "add", "path": "/address/-", "value": {
            "use": "billing", "period": {"start": TODAY.isoformat(), "end": (TODAY + timedelta(days=30)).isoformat()},
            "line": ["2 Concurrency Court", "Leeds"], "postalCode": "LS2 7UE"}}, "address:LS2 7UE"
    value = (f"worker{i}@concurrency.example", f"0113496{i:04d}", f"other-{i}")[i % 3]
    system = ("email", "phone", "other")[i % 3]
    return {"op": "add", "path": "/telecom/-", "value": {"system": system, "value": value, "use": "home"}}, \
        f"telecom:{value}"


def landed(resource: dict[str, Any], marker: str) -> bool:
    kind, value = marker.split(":", 1)
    if kind == "name":
        return any(n.get("family") == value for n in resource.get("name", []))
    if kind == "multipleBirthInteger":
        return resource.get("multipleBirthInteger") == int(value)
    if kind == "address":
        return any(a.get("postalCode") == value for a in resource.get("address", []))
    return any(t.get("value") == value for t in resource.get("telecom", []))


@pytest.mark.parametrize("threads", [0, 8], ids=["inline", "pool8"])
def test_fifty_concurrent_patches_lose_nothing(store: Store, ca: TrainingCA, threads: int) -> None:
    with serve_threads(store, ca, threads) as live:
        token = live.login("alice")
        start = store.get_patient(NHS)
        for i in range(WORKERS):
            assert not landed(start.resource, change_for(i)[1]), f"marker {i} already present"
        log: list[tuple[int, str, int, str | None]] = []  # (worker, request id, status, etag)
        lock = threading.Lock()
        barrier = threading.Barrier(WORKERS)
        failures: list[str] = []
        client = shared_client()

        def worker(i: int) -> None:
            rng = random.Random(i)
            op, _ = change_for(i)
            try:
                barrier.wait(timeout=30)
                for attempt in range(MAX_ATTEMPTS):
                    read = client.get(live.pds(f"/Patient/{NHS}"), headers=live.headers(token, "clin-1"))
                    assert read.status_code == 200, read.text
                    request_id = str(uuid.uuid4())
                    r = client.patch(live.pds(f"/Patient/{NHS}"), json={"patches": [op]}, headers={
                        **live.headers(token, "clin-1"), "X-Request-ID": request_id,
                        "If-Match": read.headers["etag"], "Content-Type": PATCH_TYPE})
                    with lock:
                        log.append((i, request_id, r.status_code, r.headers.get("etag")))
                    if r.status_code == 200:
                        return
                    assert r.status_code == 409, f"worker {i}: {r.status_code} {r.text}"
                    code = r.json()["issue"][0]["details"]["coding"][0]["code"]
                    assert code == "RESOURCE_VERSION_MISMATCH", r.text
                    time.sleep(rng.uniform(0, 0.004 * 2 ** min(attempt, 5)))  # jittered exponential backoff
                raise AssertionError(f"worker {i} gave up after {MAX_ATTEMPTS} conflicts")
            except BaseException as exc:
                with lock:
                    failures.append(f"worker {i}: {exc!r}")

        began = time.monotonic()
        pool = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(180)
        elapsed = time.monotonic() - began
        assert not any(t.is_alive() for t in pool), "workers still running after 180 s"
        assert not failures, failures

        statuses = Counter(status for _, _, status, _ in log)
        successes = [entry for entry in log if entry[2] == 200]
        assert set(statuses) <= {200, 409}, statuses
        assert len(successes) == WORKERS and len({w for w, *_ in successes}) == WORKERS

        # no lost update: every worker's change is in the final record
        final = store.get_patient(NHS)
        missing = [i for i in range(WORKERS) if not landed(final.resource, change_for(i)[1])]
        assert not missing, f"lost updates from workers {missing}"
        # versions: one per success, each success got a distinct one, in an unbroken run
        assert final.version == start.version + len(successes)
        assert final.resource["meta"]["versionId"] == str(final.version)
        assert sorted(int(etag[3:-1]) for *_, etag in successes) == list(
            range(start.version + 1, final.version + 1))
        telecom_ids = [t["id"] for t in final.resource["telecom"]]
        assert len(telecom_ids) == len(set(telecom_ids)), "two telecom items were given the same id"
        read = client.get(live.pds(f"/Patient/{NHS}"), headers=live.headers(token, "clin-1"))
        client.close()
        assert read.headers["etag"] == f'W/"{final.version}"'

        # every 200 and every 409 is on the audit trail under the client's request id, and nothing else is
        records = store.query_audit(nhs_number=NHS, action="pds.patch", limit=100_000)
        assert Counter((r.request_id, r.outcome) for r in records) == Counter(
            (rid.lower(), str(status)) for _, rid, status, _ in log)
        assert sorted(r.details["version"] for r in records if r.outcome == "200") == list(
            range(start.version + 1, final.version + 1))
        assert all(r.details.get("error") == "RESOURCE_VERSION_MISMATCH" for r in records if r.outcome == "409")
        assert store.verify_audit().ok
        print(f"threads={threads}: {WORKERS} successes, {statuses[409]} conflicts, {elapsed:.1f}s, "
              f"max attempts {max(Counter(w for w, *_ in log).values())}")


@pytest.mark.parametrize("threads", [0, 8], ids=["inline", "pool8"])
def test_same_if_match_exactly_one_wins(store: Store, ca: TrainingCA, threads: int) -> None:
    """All 50 send the same If-Match at once: exactly one 200, 49 times 409, version + 1, all 50 audited."""
    with serve_threads(store, ca, threads) as live:
        token = live.login("alice")
        start = store.get_patient(NHS)
        barrier = threading.Barrier(WORKERS)
        results: list[tuple[str, int]] = []
        lock = threading.Lock()
        client = shared_client()

        def worker(i: int) -> None:
            op, _ = change_for(i)
            request_id = str(uuid.uuid4())
            barrier.wait(timeout=30)
            r = client.patch(live.pds(f"/Patient/{NHS}"), json={"patches": [op]}, headers={
                **live.headers(token, "clin-1"), "X-Request-ID": request_id,
                "If-Match": f'W/"{start.version}"', "Content-Type": PATCH_TYPE})
            with lock:
                results.append((request_id, r.status_code))

        pool = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(60)
        client.close()
        assert Counter(s for _, s in results) == Counter({200: 1, 409: WORKERS - 1}), results
        assert store.get_patient(NHS).version == start.version + 1
        records = store.query_audit(nhs_number=NHS, action="pds.patch", limit=100_000)
        assert Counter((r.request_id, r.outcome) for r in records) == Counter(
            (rid, str(s)) for rid, s in results)
        assert store.verify_audit().ok
