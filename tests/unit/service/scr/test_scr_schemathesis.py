"""Schemathesis over the SCR operations of the live service's /openapi.json, on both stores: no 5xx.

``test_schemathesis.py`` fuzzes every operation of the document (the SCR ones included) with a user holding
every activity. This file goes deeper into the SCR paths: a caller with every SCR activity at the practice of a
patient who has an SCR (so generated requests get past RBAC and the relationship rule), requests aimed at real
patients and the real latest SCR id (so the access rules and the record are reached), and afterwards the audit
chain verifies and every request that carried the session is on the audit trail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

if os.environ.get("CI"):
    import schemathesis
else:
    schemathesis = pytest.importorskip("schemathesis")

from app.protocol import SCR_BASE
from app.service.store import RoleProfile, Store
from tests.support.service.scr_world import FULL, NO_RECORD, OPTED_OUT, ScrWorld, scr_world
from tests.unit.service.pds.test_schemathesis import EXAMPLES, MODES, fuzz

pytestmark = [pytest.mark.stress,
              pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")]
ACTIVITIES = ("B0370", "B0168", "B0082", "B0020", "B0360", "B0015", "B0016")


@pytest.fixture(scope="module")
def world(shared_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScrWorld]:
    with scr_world(shared_store, tmp_path_factory.mktemp("pki")) as w:
        shared_store.add_user("fuzz-scr", "Fuzz SCR")
        shared_store.add_role_profile(RoleProfile("fuzz-scr-1", "fuzz-scr", "Y12345", "Training Practice",
                                                  "S8000:G8000:R8000", "Clinical", ACTIVITIES))
        w.users["fuzz-scr-1"] = "fuzz-scr"
        for nhs in (FULL, NO_RECORD):  # permission to view recorded: reads of these reach the record
            assert w.permission("fuzz-scr-1", nhs).status_code == 201
        yield w


def scr_operations(world: ScrWorld) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{world.live.url}/openapi.json")
    ops = [r.ok() for r in schema.get_all_operations()]
    found = [op for op in ops if op.path.startswith(SCR_BASE)]
    assert {op.label for op in found} == {
        f"GET {SCR_BASE}/DocumentReference", f"GET {SCR_BASE}/Bundle", f"POST {SCR_BASE}/Bundle",
        f"POST {SCR_BASE}/$setPermission", f"POST {SCR_BASE}/AuditEvent", f"GET {SCR_BASE}/alerts",
        f"POST {SCR_BASE}/alerts/{{id}}/$acknowledge"}
    return found


def test_fuzz_scr_operations(world: ScrWorld) -> None:
    sent: list[str] = []

    def headers() -> dict[str, str]:
        h = world.headers("fuzz-scr-1")
        sent.append(h["X-Request-ID"])
        return h

    statuses: dict[int, int] = {}

    def count(case: Any, response: Any) -> None:
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    total = 0
    for op in scr_operations(world):
        for mode in MODES:
            total += fuzz(op, mode, headers, count, world.live.url)
    print(f"SCR fuzzing: {total} requests: {dict(sorted(statuses.items()))}")
    assert not [s for s in statuses if s >= 500]
    assert world.store.verify_audit().ok
    audited = {r.request_id for r in world.store.query_audit(limit=1_000_000)}
    reached = [rid for rid in sent if rid in audited]
    assert len(reached) >= len(sent) // 2, (len(reached), len(sent))


@pytest.mark.parametrize("nhs", [FULL, OPTED_OUT, NO_RECORD])
def test_fuzz_scr_reads_of_real_patients(world: ScrWorld, nhs: str) -> None:
    """The GETs with a real patient (and the real latest id): generated headers and extra parameters around
    requests that reach the access rules and the record."""
    statuses: dict[int, int] = {}
    ident = f"https://fhir.nhs.uk/Id/nhs-number|{nhs}"
    for op in scr_operations(world):
        if op.method.upper() != "GET" or op.path.endswith("/alerts"):
            continue
        query = {"patient": ident} if op.path.endswith("DocumentReference") else {
            "composition.identifier": world.latest(nhs) or str(uuid.uuid4()),
            "composition.subject:Patient.identifier": ident}

        @schemathesis_settings()
        def run(case: Any) -> None:
            response = case.call(base_url=world.live.url, headers=world.headers("fuzz-scr-1"), timeout=15)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500, response.text

        from hypothesis import given

        given(case=op.as_strategy(query=query))(run)()
    print(f"{nhs}: {dict(sorted(statuses.items()))}")
    assert statuses and not [s for s in statuses if s >= 500]
    if nhs == FULL:
        assert statuses.get(200, 0) >= 2, statuses  # the record itself was read


def schemathesis_settings() -> Any:
    from hypothesis import HealthCheck, Phase, settings

    return settings(max_examples=max(1, EXAMPLES // 2), deadline=None, database=None,
                    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
