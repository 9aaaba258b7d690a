"""Schemathesis over the CP-IS operations of the live service's own /openapi.json, on both stores: no 5xx.

test_schemathesis.py fuzzes every operation (these included) with random inputs, which almost never name a real
patient. Here the CP-IS operations are fuzzed harder and also with the patient fixed to children WITH plans (and
the inbox code fixed to a real authority), so generated headers (IsUnscheduledAccessEvent, X-Request-ID …) reach
the plan lookup, the access/outbox transaction and the inbox; then the audit chain must verify and every
notification the fuzzing caused must be delivered exactly once.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

if os.environ.get("CI"):
    import schemathesis
else:
    schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from app.pki import TrainingCA
from app.service.core.auth import token_hash
from app.service.store import RoleProfile, Store
from tests.support.service.cpis_helpers import NHS_SYSTEM, CpisWorld, serve_cpis, wait_for

EXAMPLES = int(os.environ.get("SPINEDESK_FUZZ_EXAMPLES", "25"))
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
pytestmark = [pytest.mark.stress,
              pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")]


@pytest.fixture(scope="module")
def world(shared_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CpisWorld]:
    ca = TrainingCA.load_or_create(tmp_path_factory.mktemp("pki"))
    with serve_cpis(shared_store, ca) as w:
        w.store.add_user("fuzz", "Fuzz")
        w.store.add_role_profile(RoleProfile("fuzz-1", "fuzz", "RXX01", "Training Hospital", "S8000:G8000:R8000",
                                             "S8000:G8000:R8000", ("B0107", "B0170", "B0015")))
        token = secrets.token_urlsafe(32)
        w.store.create_session(token_hash(token), "fuzz", datetime.now(UTC) + timedelta(hours=1),
                               role_profile_id="fuzz-1")
        w.tokens["fuzz-1"] = token
        yield w


def cpis_operations(world: CpisWorld) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{world.url}/openapi.json")
    ops = [r.ok() for r in schema.get_all_operations()]
    found = [op for op in ops if "/cpis/" in op.path]
    assert {op.label for op in found} == {
        "GET /cpis/FHIR/R4/CareTeam", "GET /cpis/FHIR/R4/AuditEvent",
        "GET /cpis/local-authority/{code}/notifications", "POST /cpis/local-authority/{code}/notifications"}
    return found


def run(op: Any, mode: GenerationMode, base_url: str, statuses: Counter[int], *, auth: dict[str, str] | None,
        **fixed: Any) -> None:
    http = requests.Session()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode, **fixed))
    def test(case: Any) -> None:
        headers = None if auth is None else {**auth, "X-Request-ID": str(uuid.uuid4())}
        response = case.call(base_url=base_url, session=http, headers=headers, timeout=15)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=[not_a_server_error], headers=headers)

    try:
        test()
    except Unsatisfiable:
        if mode is not GenerationMode.NEGATIVE:
            raise
    finally:
        http.close()


def test_fuzz_cpis_operations(world: CpisWorld) -> None:
    statuses: Counter[int] = Counter()
    auth = {"Authorization": f"Bearer {world.tokens['fuzz-1']}", "NHSD-Session-URID": "fuzz-1"}
    for op in cpis_operations(world):
        session = auth if any(p.name == "NHSD-Session-URID" for p in op.iter_parameters()) else None
        for mode in MODES:
            run(op, mode, world.url, statuses, auth=session)
            if "{code}" in op.path:  # the inbox listing is for the authority's own officer (po-cpis-1 is at TLA01)
                officer = {"Authorization": f"Bearer {world.tokens['po-cpis-1']}", "NHSD-Session-URID": "po-cpis-1"}
                run(op, mode, world.url, statuses, auth=officer if session else None,
                    path_parameters={"code": "TLA01"})
            else:
                for label in ("cpp", "two-las", "ended-recently"):
                    run(op, mode, world.url, statuses, auth=session,
                        query={"patient:identifier": f"{NHS_SYSTEM}|{world.children[label]}"})
    print(f"CP-IS fuzzing: {dict(sorted(statuses.items()))}")
    assert statuses[200] >= 20, statuses  # fuzzing really reached the plans
    assert not any(s >= 500 for s in statuses)
    assert world.store.verify_audit().ok
    # every notification the fuzzing caused is delivered, and the inbox holds each exactly once
    assert wait_for(lambda: all(n.delivered_at for n in world.store.cpis_notifications()), timeout=60)
    made = {n.id for n in world.store.cpis_notifications()}
    received = [i.id for code in ("TLA01", "TLA04", "TLA05") for i in world.store.cpis_inbox(code, limit=10_000)]
    assert made and made <= set(received) and len(received) == len(set(received))
