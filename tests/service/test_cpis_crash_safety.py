"""An unscheduled CP-IS view produces exactly one notification, delivered exactly once, even when the service
process is ``kill -9``ed between the access and the delivery, or in the middle of delivering it.

A real ``python -m app service`` process over a SQLite file or a PostgreSQL schema, and a real receiving webhook
(an HTTP server on loopback standing in for the local authority, which keeps each Idempotency-Key once). The
claim lease is shortened to 6 s ($SPINEDESK_CPIS_LEASE_SECONDS) so the restarted service takes over quickly.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import httpx
import pytest

from app.pki import TrainingCA
from app.protocol import CPIS_BASE
from app.service.cpis import rules
from app.service.cpis.store import LocalAuthority
from app.service.storage import open_store

from .cpis_helpers import NHS_SYSTEM, Receiver, add_cpis_people, add_plans, wait_for
from .live import seed
from .test_scale_out import ServiceProcess, make_database

pytestmark = pytest.mark.stress  # heavy load, kill -9 or many processes: left out of the clock-shifted runs

LEASE_SECONDS = "6"


def point_at(store: object, receiver: Receiver) -> None:
    la = store.local_authority("TLA01")  # type: ignore[attr-defined]
    store.put_local_authorities([LocalAuthority(la.code, la.name, la.team, la.office_hours,  # type: ignore[attr-defined]
                                                la.out_of_hours, receiver.url)])


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
@pytest.mark.parametrize("when", ["between-access-and-delivery", "during-delivery"])
def test_kill_9_loses_no_notification_and_sends_none_twice(kind: str, when: str, tmp_path: Path,
                                                           request: pytest.FixtureRequest,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPINEDESK_CPIS_LEASE_SECONDS", LEASE_SECONDS)
    database, cleanup = make_database(kind, tmp_path, request)
    data_dir = tmp_path / "data"
    try:
        with Receiver() as receiver:
            with open_store(database) as store:
                seed(store, TrainingCA.load_or_create(data_dir / "training-pki"), patients=20)
                tokens = add_cpis_people(store)
                nhs = add_plans(store)["cpp"]
                point_at(store, receiver)
            if when == "between-access-and-delivery":
                receiver.accepting = False  # the local authority is down: the notification waits in the outbox
            else:
                receiver.hold = threading.Event()  # the first POST stalls: the kill lands mid-delivery

            first = ServiceProcess(database, data_dir, tmp_path / "service-1.log").start()
            request_id = str(uuid.uuid4())
            try:
                first.wait_ready(30)
                r = httpx.get(f"{first.url}{CPIS_BASE}/CareTeam", timeout=10,
                              params={"patient:identifier": f"{NHS_SYSTEM}|{nhs}"},
                              headers={"Authorization": f"Bearer {tokens['unsched-1']}",
                                       "NHSD-Session-URID": "unsched-1", "X-Request-ID": request_id})
                assert r.status_code == 200 and r.json()["total"] == 1, r.text
                assert receiver.arrived.wait(20), f"no delivery attempt:\n{first.output()}"
            finally:
                first.kill()  # SIGKILL: mid-retry, or with the POST in flight
            with open_store(database) as store:
                (item,) = store.cpis_notifications(nhs_number=nhs)
                assert item.delivered_at is None, "delivered before the kill: the test proves nothing"
            receiver.accepting = True
            if receiver.hold is not None:
                receiver.hold.set()  # the stalled POST now completes at the receiver: the service never heard

            second = ServiceProcess(database, data_dir, tmp_path / "service-2.log").start()
            try:
                second.wait_ready(30)
                with open_store(database) as store:
                    assert wait_for(lambda: store.cpis_notifications(nhs_number=nhs)[0].delivered_at is not None,
                                    timeout=40), f"not delivered after the restart:\n{second.output()}"
                    outbox = store.cpis_notifications(nhs_number=nhs)
                    access = rules.access_id("una", request_id)
                    assert [n.access_id for n in outbox] == [access], "not exactly one notification"
                    assert [e.id for e in store.cpis_access_history(nhs)] == [access]
                    (record,) = [x for x in store.query_audit(action="cpis.careteam", limit=1000)
                                 if x.request_id == request_id]
                    assert record.outcome == "200" and record.details["notifications"] == [outbox[0].id]
                    assert store.verify_audit().ok
            finally:
                second.stop()
            keys = {k for k, _ in receiver.posts}
            assert keys == {outbox[0].id}, "a delivery carried another key"
            assert list(receiver.stored) == [outbox[0].id], "stored other than exactly once"
            assert receiver.stored[outbox[0].id]["patient"]["value"] == nhs
            print(f"{when}/{kind}: {len(receiver.posts)} POST(s), attempts {outbox[0].attempts}, stored once")
    finally:
        cleanup()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_service_processes_share_the_outbox_without_double_delivery(kind: str, tmp_path: Path,
                                                                        request: pytest.FixtureRequest) -> None:
    """Two processes over one database, both with a deliverer: unscheduled views at both; every notification is
    POSTed exactly once in all (claims are exclusive: SKIP LOCKED on PostgreSQL, the writer lock on SQLite)."""
    database, cleanup = make_database(kind, tmp_path, request)
    data_dir = tmp_path / "data"
    try:
        with Receiver() as receiver:
            with open_store(database) as store:
                seed(store, TrainingCA.load_or_create(data_dir / "training-pki"), patients=20)
                tokens = add_cpis_people(store)
                children = add_plans(store)
                point_at(store, receiver)
            nhs = children["cpp"]
            services = [ServiceProcess(database, data_dir, tmp_path / f"service-{n}.log").start() for n in (1, 2)]
            try:
                for s in services:
                    s.wait_ready(30)
                sent = 0
                with httpx.Client(timeout=10) as http:
                    for i in range(30):
                        r = http.get(f"{services[i % 2].url}{CPIS_BASE}/CareTeam",
                                     params={"patient:identifier": f"{NHS_SYSTEM}|{nhs}"},
                                     headers={"Authorization": f"Bearer {tokens['unsched-1']}",
                                              "NHSD-Session-URID": "unsched-1", "X-Request-ID": str(uuid.uuid4())})
                        assert r.status_code == 200, r.text
                        sent += 1
                with open_store(database) as store:
                    assert wait_for(lambda: len(store.cpis_notifications(nhs_number=nhs)) == sent and all(
                        n.delivered_at for n in store.cpis_notifications(nhs_number=nhs)), timeout=60)
                    made = {n.id for n in store.cpis_notifications(nhs_number=nhs)}
                    assert store.verify_audit().ok
            finally:
                for s in services:
                    s.stop()
            keys = [k for k, _ in receiver.posts]
            assert len(made) == sent and set(keys) == made
            assert len(keys) == len(made), "a notification was POSTed twice"
            assert set(receiver.stored) == made
    finally:
        cleanup()
