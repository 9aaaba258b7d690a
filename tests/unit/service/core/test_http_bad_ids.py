"""Malformed path ids over real HTTP, on both stores: a 400 INVALID_RESOURCE_ID on every route with a path id,
nothing unstorable reaches the audit or the store, and one such request never fails anybody else's."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest

from app.pki import TrainingCA
from app.protocol import FLAGS_BASE, PDS_BASE, SCR_BASE
from tests.support.service.live import serve

ALERT = str(uuid.UUID(int=7)).upper()
# every route with an id in its path; {bad} is where the malformed id goes
ROUTES = [
    ("GET", PDS_BASE + "/Patient/{bad}"),
    ("PATCH", PDS_BASE + "/Patient/{bad}"),
    ("GET", PDS_BASE + "/Patient/{bad}/RelatedPerson"),
    ("GET", FLAGS_BASE + "/Flag/{bad}"),
    ("PUT", FLAGS_BASE + "/Flag/{bad}"),
    ("GET", FLAGS_BASE + "/Flag/{bad}/_history"),
    ("GET", FLAGS_BASE + "/Flag/abc/_history/{bad}"),
    ("POST", SCR_BASE + "/alerts/{bad}/$acknowledge"),
    ("GET", "/cpis/local-authority/{bad}/notifications"),
]
BAD = ["900%000000009", "900%25000000009", "%00", "9000000009%0A", "a" * 65, "%C3%A9", "%ED%B2%80"]


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return TrainingCA.load_or_create(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def live(store, ca):
    with serve(store, ca, patients=50) as service:
        yield service


@pytest.fixture
def alice(live):
    return live.login("alice")


def _code(r: httpx.Response) -> str:
    return r.json()["issue"][0]["details"]["coding"][0]["code"]


def _storable(value: object) -> bool:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return "\x00" not in text and "\\u0000" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def test_a_malformed_path_id_is_a_400_on_every_route(live, alice):
    with httpx.Client() as client:
        for bad in BAD:
            for method, path in ROUTES:
                r = client.request(method, live.url + path.format(bad=bad), headers=live.headers(alice, "clin-1"),
                                   content=b"{}")
                assert r.status_code == 400, (method, path, bad, r.status_code, r.text)
                assert _code(r) == "INVALID_RESOURCE_ID", (method, path, bad)
            # the local authorities' inbox authenticates by signature, per authority: no authority has such a code
            r = client.post(live.url + f"/cpis/local-authority/{bad}/notifications", content=b"{}")
            assert r.status_code == 401, (bad, r.text)
        # the audit query compares its text parameters in the database: one it cannot hold is refused
        bob = live.login("bob")
        for name in ("user", "action"):
            r = client.get(live.url + f"/audit/records?{name}=a%00b", headers=live.headers(bob, "po-1"))
            assert r.status_code == 400, (name, r.text)
    records = live.store.query_audit(limit=1000)
    refusals = [rec for rec in records if rec.details.get("error") == "INVALID_RESOURCE_ID"]
    assert len(refusals) >= len(ROUTES) * len(BAD)  # every refusal of a signed-in user is on the record
    assert any(rec.details.get("path_id") == "900\\x000000009" for rec in refusals)
    for rec in records:
        assert _storable(rec.nhs_number) and _storable(rec.details) and _storable(rec.request_id), rec
        assert rec.nhs_number is None or len(rec.nhs_number) <= 64
    assert live.store.verify_audit().ok


def test_every_good_read_succeeds_beside_a_nul_request(live, alice):
    """Good reads and a ``%00`` read whose audit records would share one group commit: every good read is a 200,
    the bad one a 400, and the audit chain holds every good read."""
    writer = live.service.audit
    real = writer._commit_batch  # the store's append_audit_many
    gate, entered = threading.Event(), threading.Event()

    def gated(entries):
        entered.set()
        gate.wait(60)
        return real(entries)

    writer._commit_batch = gated
    results: dict[str, httpx.Response] = {}

    def get(name: str, nhs: str) -> None:
        results[name] = httpx.get(live.pds(f"/Patient/{nhs}"), headers=live.headers(alice, "clin-1"), timeout=60)

    first = threading.Thread(target=get, args=("first", "9000000009"))
    first.start()
    assert entered.wait(30)  # the writer holds the first record's commit; the others queue behind it
    goods = [threading.Thread(target=get, args=(f"good{i}", "9000000009")) for i in range(12)]
    bad = threading.Thread(target=get, args=("bad", "900%000000009"))
    for t in (*goods[:6], bad, *goods[6:]):
        t.start()
    deadline = time.monotonic() + 30  # wait (not a timing assertion) until every request has reached the writer
    while time.monotonic() < deadline:
        queued = writer._queue.qsize()
        if queued >= len(goods) + (0 if "bad" in results else 1):
            break
        time.sleep(0.01)
    gate.set()
    for t in (first, *goods, bad):
        t.join(60)
    statuses = {name: r.status_code for name, r in results.items()}
    assert statuses.pop("bad") == 400, results["bad"].text
    assert _code(results["bad"]) == "INVALID_RESOURCE_ID"
    assert statuses == {name: 200 for name in statuses}
    assert len(statuses) == 13
    reads = [r for r in live.store.query_audit(action="pds.read", limit=100) if r.outcome == "200"]
    assert len(reads) == 13
    assert all(_storable(r.nhs_number) for r in live.store.query_audit(limit=1000))
    assert live.store.verify_audit().ok
