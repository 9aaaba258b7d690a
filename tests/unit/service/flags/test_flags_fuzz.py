"""Schemathesis over the flags endpoints with REAL flag ids, on both stores: no input makes them fail with a 5xx.

``test_schemathesis.py`` fuzzes every operation in the service document (these included), but with random
``flagID`` values nearly every request stops at 404. Here the path id is a real flag (active, and removed) and
``If-Match`` carries its current version, so generated Flag bodies, search parameters and removal Parameters
reach the validators, and the writes that pass them reach the store. Positive and negative generation; the
audit chain must verify afterwards.
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
from app.protocol import FLAGS_BASE
from app.service.core.auth import token_hash
from app.service.flags import seed as seed_flags
from app.service.flags.codes import load_codes
from app.service.pds.seed import generate_patients
from app.service.store import RoleProfile, Store
from tests.support.service.live import Live, serve

EXAMPLES = int(os.environ.get("SPINEDESK_FUZZ_EXAMPLES", "15"))
pytestmark = [pytest.mark.stress,
              pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")]


@pytest.fixture(scope="module")
def live(shared_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    ca = TrainingCA.load_or_create(tmp_path_factory.mktemp("pki"))
    with serve(shared_store, ca, patients=40) as service:
        yield service


@pytest.fixture(scope="module")
def token(live: Live) -> str:
    live.store.add_user("flagfuzz", "Flag Fuzz")
    live.store.add_role_profile(RoleProfile("flagfuzz-1", "flagfuzz", "A81001", "Training Surgery",
                                            "S8000:G8000:R8001", "S8000:G8000:R8001", ("B0264", "B0360")))
    value = secrets.token_urlsafe(32)
    live.store.create_session(token_hash(value), "flagfuzz", datetime.now(UTC) + timedelta(hours=1),
                              role_profile_id="flagfuzz-1")
    return value


def test_fuzz_flags_with_real_ids(live: Live, token: str) -> None:
    rows = [r for r in next(generate_patients(40, seed=7)) if not (r.superseded_by or r.invalidated)][:6]
    flags = [seed_flags.flag_for(r, 3, load_codes()) for r in rows]
    live.store.put_flags(flags)
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    ops = [r.ok() for r in schema.get_all_operations()]
    ops = [op for op in ops if op.path.startswith(FLAGS_BASE)]
    assert {op.label for op in ops} == {
        f"GET {FLAGS_BASE}/Flag", f"POST {FLAGS_BASE}/Flag", f"GET {FLAGS_BASE}/Flag/{{flagID}}",
        f"PUT {FLAGS_BASE}/Flag/{{flagID}}", f"GET {FLAGS_BASE}/Flag/{{flagID}}/_history",
        f"GET {FLAGS_BASE}/Flag/{{flagID}}/_history/{{vid}}", f"POST {FLAGS_BASE}/$removerarecord"}
    statuses: Counter[int] = Counter()
    http = requests.Session()

    def headers(flag_id: str) -> dict[str, str]:
        current = live.store.get_flag(flag_id)
        return {"Authorization": f"Bearer {token}", "NHSD-Session-URID": "flagfuzz-1",
                "X-Request-ID": str(uuid.uuid4()), "If-Match": f'W/"{current.version if current else 1}"'}

    def run(op: Any, mode: GenerationMode, flag_id: str) -> None:
        params = {"flagID": flag_id, "vid": "1"} if "{flagID}" in op.path else None

        @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(generation_mode=mode, path_parameters=params))
        def one(case: Any) -> None:
            if op.path.endswith("/Flag") and case.query is not None and "patient" in case.query \
                    and mode is GenerationMode.POSITIVE and len(statuses) % 2:
                case.query["patient"] = flags[0].nhs_number  # half the positive searches name a flagged patient
            response = case.call(base_url=live.url, session=http, headers=headers(flag_id), timeout=15)
            statuses[response.status_code] += 1
            case.validate_response(response, checks=[not_a_server_error])

        try:
            one()
        except Unsatisfiable:
            if mode is not GenerationMode.NEGATIVE:
                raise

    try:
        for i, op in enumerate(ops):
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                run(op, mode, flags[i % len(flags)].id)
    finally:
        http.close()
    print(f"flags fuzzing: {dict(sorted(statuses.items()))}")
    assert not any(s >= 500 for s in statuses)
    assert statuses[200] > 0 and sum(v for s, v in statuses.items() if 400 <= s < 500) > 0
    assert live.store.verify_audit().ok
