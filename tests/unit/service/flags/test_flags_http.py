"""The flags service over real HTTP, on both stores: create, read, search, update with If-Match, remove with a
reason, history; existence-vs-content by role; validation errors; X-Request-ID replay; every access audited
with no clinical content in the audit; conformance of every response; 20 concurrent PUTs lose no update."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.pki import TrainingCA
from app.protocol import FLAGS_BASE
from app.service.flags import fhir
from app.service.pds.seed import generate_patients
from app.service.store import RoleProfile, Store
from tests.support.service.flags_helpers import (
    BSL,
    adjustment,
    check_conformance,
    consent,
    flag_body,
    ig_patient_flag,
    impairment,
    removal,
)
from tests.support.service.live import Live, serve

FHIR_JSON = {"Content-Type": "application/fhir+json"}
EXTRA_ROLES = {  # urid -> (role code, activities): alice's clinical writer and a non-clinical admin role
    "nurse-1": ("S8000:G8000:R8001", ("B0264", "B0360")),
    "admin-1": ("S8000:G8000:R8008", ("B0264", "B0825", "B0170")),
}


@dataclass
class World:
    live: Live
    http: httpx.Client
    patients: list[str]

    @property
    def store(self) -> Store:
        return self.live.store

    def url(self, path: str) -> str:
        return f"{self.live.url}{FLAGS_BASE}{path}"

    def headers(self, urid: str, **extra: str) -> dict[str, str]:
        return self.live.headers(self.live.token_for(urid), urid, **extra)  # one session per role

    def patient(self) -> str:
        """A patient no other test uses."""
        return self.patients.pop()

    def create(self, nhs: str, body: dict[str, Any] | None = None, urid: str = "nurse-1") -> httpx.Response:
        return self.http.post(self.url("/Flag"), json=body or flag_body(nhs), headers=self.headers(urid, **FHIR_JSON))

    def put(self, flag_id: str, body: dict[str, Any], etag: str | None, urid: str = "nurse-1",
            **extra: str) -> httpx.Response:
        headers = self.headers(urid, **{**FHIR_JSON, **extra})
        if etag is not None:
            headers["If-Match"] = etag
        return self.http.put(self.url(f"/Flag/{flag_id}"), json=body, headers=headers)

    def remove(self, nhs: str, etag: str | None, reason: str = "DoesntApply", urid: str = "nurse-1"
               ) -> httpx.Response:
        headers = self.headers(urid, **FHIR_JSON)
        if etag is not None:
            headers["If-Match"] = etag
        return self.http.post(self.url("/$removerarecord"), json=removal(nhs, reason), headers=headers)

    def read(self, flag_id: str, urid: str = "nurse-1") -> httpx.Response:
        return self.http.get(self.url(f"/Flag/{flag_id}"), headers=self.headers(urid))

    def audit(self, response: httpx.Response) -> list[Any]:
        rid = response.request.headers["X-Request-ID"].lower()
        return [r for r in self.store.query_audit(limit=100_000) if r.request_id == rid]


@pytest.fixture(scope="module")
def world(shared_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    ca = TrainingCA.load_or_create(tmp_path_factory.mktemp("pki"))
    with serve(shared_store, ca, patients=80) as live, httpx.Client(timeout=60) as http:
        for urid, (code, acts) in EXTRA_ROLES.items():
            shared_store.add_role_profile(RoleProfile(urid, "alice", "A81001", "Training Surgery", code, code, acts))
        rows = next(generate_patients(80, seed=7))
        patients = [r.nhs_number for r in rows if not (r.superseded_by or r.invalidated)]
        yield World(live, http, patients)


def content_free(response: httpx.Response) -> bool:
    text = response.text
    return not any(s in text for s in (BSL, "RACONSENT", "Consent", "Condition", fhir.EXT_FLAG_DETAIL, "note"))


def test_create_read_and_search_by_role(world: World) -> None:
    nhs = world.patient()
    created = world.create(nhs, flag_body(nhs, notes="Prefers a quiet room"))
    assert created.status_code == 201, created.text
    flag = created.json()
    assert check_conformance(flag) == []
    assert created.headers["etag"] == 'W/"1"' and created.headers["location"].endswith(f"/Flag/{flag['id']}")
    assert created.headers["last-modified"].endswith("GMT")
    agent = flag["contained"][0]["agent"][0]
    assert (agent["who"]["identifier"]["value"], agent["onBehalfOf"]["identifier"]["value"]) == ("alice", "A81001")
    assert [(r.action, r.outcome, r.nhs_number) for r in world.audit(created)] == [("flags.create", "201", nhs)]

    for urid, content in (("clin-1", True), ("nurse-1", True), ("clerk-1", False), ("admin-1", False)):
        read = world.read(flag["id"], urid)
        assert read.status_code == 200 and read.headers["etag"] == 'W/"1"', read.text
        body = read.json()
        assert fhir.is_withheld(body) is not content, urid
        assert body == flag if content else content_free(read), urid
        assert body["status"] == "active" and body["subject"] == flag["subject"]
        [record] = world.audit(read)
        assert (record.action, record.outcome, record.nhs_number, record.details["content"]) == (
            "flags.read", "200", nhs, content)

        found = world.http.get(world.url("/Flag"), params={"patient": f"https://fhir.nhs.uk/Id/nhs-number|{nhs}",
                                                            "status": "active", "_include": "Flag:detail"},
                               headers=world.headers(urid))
        assert found.status_code == 200, found.text
        bundle = found.json()
        assert bundle["type"] == "searchset" and bundle["total"] == 1
        assert bundle["entry"][0]["resource"] == (flag if content else fhir.withheld_view(flag))
        assert bundle["entry"][0]["fullUrl"] == created.headers["location"]
        if not content:
            assert content_free(found)
        [record] = world.audit(found)
        assert (record.action, record.nhs_number, record.details["returned"]) == ("flags.search", nhs, [flag["id"]])

    none = world.http.get(world.url("/Flag"), params={"patient": nhs, "category": "FGM"},
                          headers=world.headers("clin-1"))
    assert none.json()["total"] == 0
    assert world.read(flag["id"], "po-1").status_code == 403  # the privacy officer has no record access


def test_update_with_if_match(world: World) -> None:
    nhs = world.patient()
    flag = world.create(nhs).json()
    body = flag_body(nhs, contained=[consent("002", summary="Best-interest meeting with family"), impairment("1"),
                                     adjustment("011", text="Double appointment")])
    assert world.put(flag["id"], body, None).status_code == 412
    stale = world.put(flag["id"], body, 'W/"7"')
    assert stale.status_code == 409 and stale.json()["issue"][0]["details"]["coding"][0]["code"] == \
        "RESOURCE_VERSION_MISMATCH"
    assert world.put(flag["id"], body, 'W/"1"', **{"Content-Type": "text/plain"}).status_code == 415
    denied = world.put(flag["id"], body, 'W/"1"', urid="clin-1")
    assert denied.status_code == 403  # content yes, write no
    assert [(r.action, r.outcome, r.details) for r in world.audit(denied)] == [
        ("flags.update", "403", {"reason": "role lacks the activity"})]
    bad = world.put(flag["id"], flag_body(nhs, contained=[consent(), impairment("42")]), 'W/"1"')
    assert bad.status_code == 400 and "impairment" in bad.json()["issue"][0]["diagnostics"]
    moved = world.put(flag["id"], flag_body(world.patients[0]), 'W/"1"')
    assert moved.status_code == 400
    assert world.put("no-such-flag", body, 'W/"1"').status_code == 404

    updated = world.put(flag["id"], body, 'W/"1"')
    assert updated.status_code == 200, updated.text
    assert updated.headers["etag"] == 'W/"2"' and check_conformance(updated.json()) == []
    out = updated.json()
    assert out["period"]["start"] == flag["period"]["start"]  # recorded once, kept
    assert out["contained"][0]["activity"]["coding"][0]["code"] == "UPDATE"
    assert [c["code"]["coding"][0]["code"] for c in out["contained"] if c["resourceType"] == "Condition"] == ["1"]
    assert world.read(flag["id"]).json() == out
    # every attempt above is on the patient's record, failures included (the role denial, checked above, comes
    # before the flag is looked up, so it names no patient)
    assert Counter(r.action for r in world.store.query_audit(nhs_number=nhs, limit=100)) == {
        "flags.create": 1, "flags.update": 6, "flags.read": 1}


def test_a_repeated_request_id_is_replayed_not_redone(world: World) -> None:
    nhs = world.patient()
    flag = world.create(nhs).json()
    headers = {**world.headers("nurse-1", **FHIR_JSON), "If-Match": 'W/"1"'}
    body = flag_body(nhs, notes="first")
    first = world.http.put(world.url(f"/Flag/{flag['id']}"), json=body, headers=headers)
    again = world.http.put(world.url(f"/Flag/{flag['id']}"), json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.content == again.content and again.headers["etag"] == 'W/"2"'
    assert world.store.get_flag(flag["id"]).version == 2
    records = world.audit(first)
    assert [(r.outcome, r.details.get("replay", False)) for r in records] == [("200", True), ("200", False)]
    create_headers = world.headers("nurse-1", **FHIR_JSON)
    other = world.patient()
    one = world.http.post(world.url("/Flag"), json=flag_body(other), headers=create_headers)
    two = world.http.post(world.url("/Flag"), json=flag_body(other), headers=create_headers)
    assert one.status_code == two.status_code == 201 and one.json()["id"] == two.json()["id"]
    assert len(world.store.flags_for_patient(other)) == 1


REUSED = "request id reused for a different request"


def test_a_request_id_reused_for_another_patient_is_refused_not_replayed(world: World) -> None:
    """The same X-Request-ID with a different body (a flag for ANOTHER patient) is a different request: refused
    with 422, nothing created for the second patient, and on the record as a reuse, never as a 'replay' (which
    would claim the second patient's flag was written)."""
    first_patient, second_patient = world.patient(), world.patient()
    headers = world.headers("nurse-1", **FHIR_JSON)
    one = world.http.post(world.url("/Flag"), json=flag_body(first_patient), headers=headers)
    assert one.status_code == 201, one.text
    two = world.http.post(world.url("/Flag"), json=flag_body(second_patient), headers=headers)
    assert two.status_code == 422, two.text
    assert two.json()["issue"][0]["details"]["coding"][0]["code"] == "INVALID_VALUE"
    assert one.json()["id"] not in two.text and first_patient not in two.text  # the first answer is not leaked
    assert world.store.flags_for_patient(second_patient) == []
    records = world.audit(one)
    assert [(r.outcome, r.nhs_number, r.details.get("replay", False), r.details.get("reason")) for r in records] == [
        ("422", second_patient, False, REUSED), ("201", first_patient, False, None)]
    # the genuine retry still replays the stored answer
    three = world.http.post(world.url("/Flag"), json=flag_body(first_patient), headers=headers)
    assert (three.status_code, three.content) == (201, one.content)
    assert world.audit(one)[0].details == {"replay": True}


def test_a_request_id_reused_with_another_body_on_the_same_path_is_refused(world: World) -> None:
    """Same method and path, same If-Match, different body: not the request that was answered."""
    nhs = world.patient()
    flag = world.create(nhs).json()
    headers = {**world.headers("nurse-1", **FHIR_JSON), "If-Match": 'W/"1"'}
    first = world.http.put(world.url(f"/Flag/{flag['id']}"), json=flag_body(nhs, notes="first"), headers=headers)
    assert first.status_code == 200, first.text
    second = world.http.put(world.url(f"/Flag/{flag['id']}"), json=flag_body(nhs, notes="second"), headers=headers)
    assert second.status_code == 422, second.text
    assert world.store.get_flag(flag["id"]).version == 2
    [refused, done] = world.audit(first)
    assert (refused.outcome, refused.details) == ("422", {"reason": REUSED})
    assert (done.outcome, done.details.get("replay", False)) == ("200", False)


def test_a_request_id_answered_before_request_hashing_is_not_replayed(world: World) -> None:
    """A stored answer from before the request hash was kept (an upgrade inside the retention window) cannot be
    matched to a request: a repeat of its id is refused (422), never replayed, and audited as such."""
    nhs = world.patient()
    headers = world.headers("nurse-1", **FHIR_JSON)
    rid = headers["X-Request-ID"].lower()
    world.store.remember(rid, "alice", "POST", f"{FLAGS_BASE}/Flag", 201, [("content-type", "application/fhir+json")],
                         b'{"resourceType": "Flag", "id": "old"}')  # written without a request hash
    out = world.http.post(world.url("/Flag"), json=flag_body(nhs), headers=headers)
    assert out.status_code == 422, out.text
    assert world.store.flags_for_patient(nhs) == []
    [record] = world.audit(out)
    assert record.outcome == "422" and "replay" not in record.details
    assert record.details["reason"].startswith("request id reused")


def test_remove_keeps_the_flag_in_history(world: World) -> None:
    nhs = world.patient()
    flag = world.create(nhs, flag_body(nhs, notes="Secret note")).json()
    assert world.remove(nhs, None).status_code == 412
    assert world.remove(nhs, 'W/"1"', urid="clerk-1").status_code == 403
    assert world.remove(nhs, 'W/"1"', reason="Bored").status_code == 400
    gone = world.remove(nhs, 'W/"1"')
    assert gone.status_code == 200, gone.text
    assert gone.json()["issue"][0]["details"]["text"] == "OK" and gone.headers["etag"] == 'W/"2"'
    [record] = world.audit(gone)
    assert (record.action, record.outcome, record.details["reason"]) == ("flags.remove", "200", "DoesntApply")
    assert world.remove(nhs, 'W/"2"').status_code == 404  # nothing active any more

    now = world.read(flag["id"]).json()
    assert now["status"] == "inactive" and now["period"]["end"] and check_conformance(now) == []
    assert world.put(flag["id"], flag_body(nhs), 'W/"2"').status_code == 400  # removed flags cannot change
    active = world.http.get(world.url("/Flag"), params={"patient": nhs, "status": "active"},
                            headers=world.headers("clin-1"))
    assert active.json()["total"] == 0
    every = world.http.get(world.url("/Flag"), params={"patient": nhs}, headers=world.headers("clin-1"))
    assert [e["resource"]["status"] for e in every.json()["entry"]] == ["inactive"]

    history = world.http.get(world.url(f"/Flag/{flag['id']}/_history"), headers=world.headers("clin-1")).json()
    assert history["type"] == "history" and history["total"] == 2
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    assert history["entry"][1]["resource"] == flag  # the removed content is all still there
    assert all(check_conformance(e["resource"]) == [] for e in history["entry"])
    version1 = world.http.get(world.url(f"/Flag/{flag['id']}/_history/1"), headers=world.headers("clin-1"))
    assert version1.json() == flag and version1.headers["etag"] == 'W/"1"'
    assert world.http.get(world.url(f"/Flag/{flag['id']}/_history/9"),
                          headers=world.headers("clin-1")).status_code == 404
    withheld = world.http.get(world.url(f"/Flag/{flag['id']}/_history"), headers=world.headers("clerk-1"))
    assert withheld.json()["total"] == 2 and "Secret note" not in withheld.text and content_free(withheld)

    again = world.create(nhs)  # the patient may be given a new flag
    assert again.status_code == 201 and again.json()["id"] != flag["id"]


def test_removal_in_error(world: World) -> None:
    nhs = world.patient()
    flag = world.create(nhs).json()
    assert world.remove(nhs, 'W/"1"', reason="Error").status_code == 200
    out = world.read(flag["id"]).json()
    assert out["status"] == "entered-in-error" and check_conformance(out) == []
    assert out["contained"][0]["activity"]["coding"][0]["code"] == "NULLIFY"


@pytest.mark.parametrize(("case", "body", "status", "code"), [
    ("invalid-nhs-number", flag_body("9000000000"), 400, "INVALID_RESOURCE_ID"),
    ("unknown-patient", flag_body("9999999999"), 404, "RESOURCE_NOT_FOUND"),
    ("missing-consent", flag_body(contained=[impairment("1")]), 400, "MISSING_VALUE"),
    ("unknown-adjustment", flag_body(contained=[consent(), adjustment("001", "123456789")]), 400, "INVALID_VALUE"),
    ("not-a-flag", {"resourceType": "Patient"}, 400, "INVALID_VALUE"),
])
def test_create_validation(world: World, case: str, body: dict[str, Any], status: int, code: str) -> None:
    response = world.create("9000000009", body)
    assert response.status_code == status, response.text
    assert response.json()["issue"][0]["details"]["coding"][0]["code"] == code
    assert [r.outcome for r in world.audit(response)] == [str(status)]


def test_create_refuses_malformed_json_and_media_types(world: World) -> None:
    # each request its own X-Request-ID: a repeat of one id with another body is refused as a reuse (422)
    for body in (b"{not json", b"[" * 50_000):
        headers = world.headers("nurse-1", **FHIR_JSON)
        assert world.http.post(world.url("/Flag"), content=body, headers=headers).status_code == 400
    assert world.http.post(world.url("/Flag"), json=flag_body(), headers=world.headers(
        "nurse-1", **{"Content-Type": "text/xml"})).status_code == 415


def test_a_second_active_flag_is_a_conflict(world: World) -> None:
    nhs = world.patient()
    first = world.create(nhs).json()
    second = world.create(nhs)
    assert second.status_code == 409 and first["id"] in second.json()["issue"][0]["diagnostics"]


def test_the_igs_example_record_round_trips_over_http(world: World) -> None:
    nhs = world.patient()
    created = world.create(nhs, ig_patient_flag(nhs))
    assert created.status_code == 201, created.text
    read = world.read(created.json()["id"]).json()
    assert read == created.json() and check_conformance(read) == []


def test_audit_records_carry_no_clinical_content(world: World) -> None:
    text = json.dumps([r.details for r in world.store.query_audit(limit=100_000) if r.action.startswith("flags.")])
    for secret in ("Secret note", "Prefers a quiet room", BSL, "Best-interest", "RACONSENT"):
        assert secret not in text
    assert world.store.verify_audit().ok


def concurrent_puts(world: World, nhs: str, workers: int = 20) -> None:
    """``workers`` writers each add their own adjustment: read, PUT with If-Match, on 409 re-read and retry.
    Afterwards every adjustment is there, one version per success, every version in the history, and the audit
    trail holds one record per 200 and per 409."""
    flag = world.create(nhs).json()
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    lock, barrier = threading.Lock(), threading.Barrier(workers)
    client = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=workers))

    def worker(i: int) -> None:
        rng = random.Random(i)
        try:
            barrier.wait(timeout=30)
            for attempt in range(200):
                read = client.get(world.url(f"/Flag/{flag['id']}"), headers=world.headers("nurse-1"))
                body = read.json()
                body["contained"].append(adjustment("011", text=f"worker {i}"))
                r = client.put(world.url(f"/Flag/{flag['id']}"), json=body, headers={
                    **world.headers("nurse-1", **FHIR_JSON), "If-Match": read.headers["etag"]})
                with lock:
                    statuses[r.status_code] += 1
                if r.status_code == 200:
                    return
                assert r.status_code == 409, r.text
                time.sleep(rng.uniform(0, 0.004 * 2 ** min(attempt, 5)))
            raise AssertionError(f"worker {i} gave up")
        except BaseException as exc:
            with lock:
                failures.append(f"worker {i}: {exc!r}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    client.close()
    assert not failures, failures
    assert statuses[200] == workers and set(statuses) <= {200, 409}, statuses
    final = world.store.get_flag(flag["id"])
    texts = {c["code"].get("text") for c in final.resource["contained"] if c["resourceType"] == "Flag"}
    assert {f"worker {i}" for i in range(workers)} <= texts, "an update was lost"
    assert final.version == 1 + workers
    assert [r.version for r in world.store.flag_history(flag["id"])] == list(range(workers + 1, 0, -1))
    outcomes = Counter(r.outcome for r in world.store.query_audit(nhs_number=nhs, action="flags.update",
                                                                   limit=10_000))
    assert outcomes["200"] == workers and outcomes["409"] == statuses[409]


def test_twenty_concurrent_puts_lose_no_update(world: World) -> None:
    """The default server (handlers on its small database thread pool)."""
    concurrent_puts(world, world.patient())


def test_twenty_concurrent_puts_on_a_thread_pool_server(store: Store, tmp_path: Path) -> None:
    """Handlers overlapping on 8 threads: the store's compare-and-swap is what must catch the race."""
    with serve(store, TrainingCA.load_or_create(tmp_path / "pki"), patients=20, threads=8) as live, \
            httpx.Client(timeout=60) as http:
        store.add_role_profile(RoleProfile("nurse-1", "alice", "A81001", "Training Surgery", "S8000:G8000:R8001",
                                           "S8000:G8000:R8001", ("B0264", "B0360")))
        concurrent_puts(World(live, http, []), "9000000017")
