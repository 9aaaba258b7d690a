"""Two ``python -m app service`` processes over one database behave as ONE service.

Everything processes must share lives in the database (login challenges, sessions, idempotency records, the
audit chain), so a client may be sent to either process at any moment: a challenge issued by A is answered at B,
a token issued by B works at A, a PATCH repeated at B under the same X-Request-ID replays A's stored answer and
is applied once, a stale If-Match at B after A's update is a 409, a logout at A ends the session at B, and audit
records written by both processes form one valid hash chain. Run over PostgreSQL (the scale-out store; fails
rather than skips in CI, like the store tests) and over SQLite (two processes, one file).
"""

from __future__ import annotations

import base64
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from app.pki import TrainingCA
from app.protocol import PDS_BASE, login_message
from app.service.core.auth import token_hash
from app.service.storage import open_store
from app.service.store import SearchFilter, Store, open_seal
from tests.support.service.fixtures import ROOT, _with_schema, child_env, free_port
from tests.support.service.live import seed

pytestmark = pytest.mark.stress  # heavy load, kill -9 or many processes: left out of the clock-shifted runs

PATCH_TYPE = {"Content-Type": "application/json-patch+json"}
START_TIMEOUT_S = 30
PUBLIC_URL = "http://spine.cluster.test"  # behind a load balancer: one address for every process


# --- helpers shared with test_crash_safety ---------------------------------------------------------------------

class ServiceProcess:
    """``python -m app service --database URL --port P`` in training mode, its training CA under ``data_dir``."""

    def __init__(self, database: str, data_dir: Path, log: Path) -> None:
        self.database, self.data_dir, self.log = database, data_dir, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        env = child_env(SPINEDESK_DATA_DIR=str(self.data_dir),
                        # training mode (a site configuration file that does not exist), whatever the host has
                        SPINEDESK_SITE_CONFIG=str(self.data_dir / "no-such-site.toml"))
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "app", "service", "--database", self.database,
                                          "--port", str(self.port), "--public-url", PUBLIC_URL], cwd=ROOT, env=env,
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"service exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/_status", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"service did not answer /_status within {timeout} s:\n{self.output()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no flush, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def make_database(kind: str, base: Path, request: pytest.FixtureRequest) -> tuple[str, Any]:
    """(url, cleanup) of a fresh database: a SQLite file in ``base`` or a new schema in the session's PostgreSQL."""
    if kind == "sqlite":
        return f"sqlite:///{base / 'service.db'}", lambda: None
    pg = request.getfixturevalue("pg_database")  # skips without PostgreSQL; fails in CI
    import psycopg

    schema = f"s_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")

    def drop() -> None:
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")

    return _with_schema(pg, schema), drop


def new_session(store: Store, user: str = "alice", urid: str = "clin-1") -> str:
    """A bearer token for ``user`` bound to ``urid``, made directly in the store (as ``/auth/session`` would)."""
    token = base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
    store.create_session(token_hash(token), user, datetime.now(UTC) + timedelta(hours=1), role_profile_id=urid)
    return token


def headers(token: str, urid: str = "clin-1", request_id: str | None = None, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "NHSD-Session-URID": urid,
            "X-Request-ID": request_id or str(uuid.uuid4()), **extra}


def editable_patients(store: Store, count: int) -> list[str]:
    """NHS numbers of live, unrestricted seeded patients (safe to PATCH)."""
    rows = store.search(SearchFilter(birth_date_from=date(1900, 1, 1), birth_date_to=date(2100, 1, 1), limit=500))
    numbers = [r.nhs_number for r in rows if not r.restricted and not r.deceased]
    assert len(numbers) >= count, "the seed has too few editable patients"
    return numbers[:count]


def add_telecom(value: str) -> dict[str, Any]:
    return {"patches": [{"op": "add", "path": "/telecom/-", "value": {"system": "phone", "value": value,
                                                                     "use": "home"}}]}


def version_of(etag: str) -> int:
    assert etag.startswith('W/"') and etag.endswith('"'), etag
    return int(etag[3:-1])


# --- the two-process service -----------------------------------------------------------------------------------

@dataclass
class Cluster:
    database: str
    a: str
    b: str
    store: Store
    keys: dict[str, ec.EllipticCurvePrivateKey]
    certs: dict[str, bytes]
    patients: list[str]
    data_dir: Path  # both processes' data folder: the training CA and the audit key

    def pds(self, base: str, path: str) -> str:
        return f"{base}{PDS_BASE}{path}"


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp(f"scale-out-{request.param}")
    database, cleanup = make_database(request.param, base, request)
    data_dir = base / "data"
    ca = TrainingCA.load_or_create(data_dir / "training-pki")  # the CA both processes trust (training mode)
    # creates and migrates the schema before either process starts, and the audit key both processes chain with
    store = open_store(database, audit_seal=open_seal(data_dir / "audit.key", create=True))
    procs: list[ServiceProcess] = []
    try:
        keys, certs = seed(store, ca, patients=60)
        procs = [ServiceProcess(database, data_dir, base / f"service-{name}.log").start() for name in "ab"]
        for p in procs:
            p.wait_ready()
        yield Cluster(database, procs[0].url, procs[1].url, store, keys, certs, editable_patients(store, 4),
                      data_dir)
    finally:
        for p in procs:
            p.stop()
        store.close()
        cleanup()


# --- tests -----------------------------------------------------------------------------------------------------

def test_login_challenge_on_one_process_signature_on_the_other(cluster: Cluster) -> None:
    cert = base64.b64encode(cluster.certs["alice"]).decode()
    challenge = httpx.post(f"{cluster.a}/auth/challenge", json={"certificate": cert})
    assert challenge.status_code == 200, challenge.text
    nonce = challenge.json()["nonce"]
    assert challenge.json()["audience"] == PUBLIC_URL  # the processes share one identity: the address clients use
    message = login_message(nonce, PUBLIC_URL)
    signature = base64.b64encode(cluster.keys["alice"].sign(message, ec.ECDSA(hashes.SHA256()))).decode()
    body = {"nonce": nonce, "signature": signature, "certificate": cert, "urid": "clin-1"}

    session = httpx.post(f"{cluster.b}/auth/session", json=body)  # the nonce lives in the database, not in A
    assert session.status_code == 201, session.text
    token = session.json()["token"]
    assert {r["urid"] for r in session.json()["role_profiles"]} == {"clin-1", "clerk-1"}

    for base in (cluster.a, cluster.b):
        r = httpx.get(cluster.pds(base, "/Patient/9000000009"), headers=headers(token))
        assert r.status_code == 200, (base, r.text)
        assert r.json()["id"] == "9000000009"
    # single use across processes: the same signed nonce cannot log in again at A
    again = httpx.post(f"{cluster.a}/auth/session", json=body)
    assert again.status_code == 401, again.text


def test_patch_repeated_on_the_other_process_replays_and_applies_once(cluster: Cluster) -> None:
    nhs = cluster.patients[0]
    token = new_session(cluster.store)
    current = httpx.get(cluster.pds(cluster.a, f"/Patient/{nhs}"), headers=headers(token))
    assert current.status_code == 200, current.text
    version = version_of(current.headers["etag"])
    value = f"0163296{uuid.uuid4().int % 10_000:04d}"
    h = headers(token, **PATCH_TYPE, **{"If-Match": current.headers["etag"]})

    first = httpx.patch(cluster.pds(cluster.a, f"/Patient/{nhs}"), json=add_telecom(value), headers=h)
    assert first.status_code == 200, first.text
    assert version_of(first.headers["etag"]) == version + 1
    repeat = httpx.patch(cluster.pds(cluster.b, f"/Patient/{nhs}"), json=add_telecom(value), headers=h)

    assert (repeat.status_code, repeat.content, repeat.headers["etag"]) == (
        first.status_code, first.content, first.headers["etag"])
    assert repeat.headers["x-request-id"] == h["X-Request-ID"]
    stored = cluster.store.get_patient(nhs)
    assert stored is not None and stored.version == version + 1  # applied once, not twice
    assert [t["value"] for t in stored.resource["telecom"]].count(value) == 1
    seen_by_b = httpx.get(cluster.pds(cluster.b, f"/Patient/{nhs}"), headers=headers(token))
    assert seen_by_b.headers["etag"] == first.headers["etag"]
    patches = [r for r in cluster.store.query_audit(nhs_number=nhs, action="pds.patch", limit=50)
               if r.request_id == h["X-Request-ID"]]
    assert patches and {r.outcome for r in patches} == {"200"}  # (a replay may be audited too, as a read)
    assert {r.details.get("version") for r in patches} - {None} == {version + 1}


def test_stale_if_match_on_b_after_update_on_a_is_a_conflict(cluster: Cluster) -> None:
    nhs = cluster.patients[1]
    token = new_session(cluster.store)
    read_at_b = httpx.get(cluster.pds(cluster.b, f"/Patient/{nhs}"), headers=headers(token))
    etag = read_at_b.headers["etag"]
    updated = httpx.patch(cluster.pds(cluster.a, f"/Patient/{nhs}"), json=add_telecom("01632960001"),
                          headers=headers(token, **PATCH_TYPE, **{"If-Match": etag}))
    assert updated.status_code == 200, updated.text

    stale = httpx.patch(cluster.pds(cluster.b, f"/Patient/{nhs}"), json=add_telecom("01632960002"),
                        headers=headers(token, **PATCH_TYPE, **{"If-Match": etag}))
    assert stale.status_code == 409, stale.text
    assert stale.json()["issue"][0]["details"]["coding"][0]["code"] == "RESOURCE_VERSION_MISMATCH"
    stored = cluster.store.get_patient(nhs)
    assert stored is not None and stored.version == version_of(updated.headers["etag"])
    assert "01632960002" not in [t["value"] for t in stored.resource["telecom"]]


def test_logout_on_a_ends_the_session_on_b(cluster: Cluster) -> None:
    token = new_session(cluster.store)
    assert httpx.get(cluster.pds(cluster.b, "/Patient/9000000009"), headers=headers(token)).status_code == 200
    out = httpx.delete(f"{cluster.a}/auth/session", headers={"Authorization": f"Bearer {token}"})
    assert out.status_code == 204, out.text
    for base in (cluster.b, cluster.a):
        r = httpx.get(cluster.pds(base, "/Patient/9000000009"), headers=headers(token))
        assert r.status_code == 401, (base, r.text)
    assert httpx.delete(f"{cluster.b}/auth/session", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_audit_records_from_both_processes_form_one_chain(cluster: Cluster) -> None:
    token = new_session(cluster.store)
    sent: dict[str, list[str]] = {cluster.a: [], cluster.b: []}
    failures: list[str] = []

    def reader(base: str, patients: list[str]) -> None:
        with httpx.Client(timeout=20) as client:
            for i in range(20):
                h = headers(token)
                r = client.get(cluster.pds(base, f"/Patient/{patients[i % len(patients)]}"), headers=h)
                if r.status_code != 200:
                    failures.append(f"{base}: {r.status_code} {r.text[:200]}")
                sent[base].append(h["X-Request-ID"])

    threads = [threading.Thread(target=reader, args=(base, cluster.patients)) for base in (cluster.a, cluster.b) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures[:3]

    verdict = cluster.store.verify_audit()
    assert verdict.ok, verdict
    records = sorted(cluster.store.query_audit(limit=100_000), key=lambda r: r.seq)
    seqs = [r.seq for r in records]
    assert seqs == list(range(1, verdict.checked + 1))  # strictly increasing, no gaps, nothing unchained
    assert all(x.at <= y.at for x, y in itertools.pairwise(records))  # chain order is time order
    reads = {r.request_id: r for r in records if r.action == "pds.read"}
    for base, ids in sent.items():
        assert len(ids) == 40 and all(i in reads for i in ids), f"records missing for requests sent to {base}"
    assert all(r.hash.startswith("hmac-sha256:") for r in records)  # both processes keyed with the one key
    cli = subprocess.run([sys.executable, "-m", "app", "service", "--database", cluster.database, "audit", "verify"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env=child_env(SPINEDESK_DATA_DIR=str(cluster.data_dir),
                                       SPINEDESK_SITE_CONFIG=str(cluster.data_dir / "no-such-site.toml")))
    assert cli.returncode == 0 and "Audit chain intact" in cli.stdout, cli.stdout + cli.stderr
    assert "Last checkpoint matched: record" in cli.stdout, cli.stdout


def send_at_once(barrier: threading.Barrier, answers: dict[str, httpx.Response], key: str, url: str,
                 body: dict[str, Any], h: dict[str, str]) -> None:
    with httpx.Client(timeout=20) as client:
        barrier.wait()
        answers[key] = client.patch(url, json=body, headers=h)


def test_same_patch_sent_to_both_processes_at_once_answers_what_was_applied(cluster: Cluster) -> None:
    """A client that times out at A and retries at B (same X-Request-ID) while A is still working: both must get
    the answer that matches the database — 200 and version +1, or a failure and no change."""
    nhs = cluster.patients[3]
    token = new_session(cluster.store)
    wrong: list[tuple[int, int, int]] = []
    for i in range(30):
        current = httpx.get(cluster.pds(cluster.a, f"/Patient/{nhs}"), headers=headers(token))
        before = version_of(current.headers["etag"])
        h = headers(token, **PATCH_TYPE, **{"If-Match": current.headers["etag"]})
        barrier, answers = threading.Barrier(2), {}
        body = add_telecom(f"0163297{i:04d}")
        threads = [threading.Thread(target=send_at_once,
                                    args=(barrier, answers, base, cluster.pds(base, f"/Patient/{nhs}"), body, h))
                   for base in (cluster.a, cluster.b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        a, b = answers[cluster.a], answers[cluster.b]
        assert (a.status_code, a.content) == (b.status_code, b.content)  # one stored answer for both
        stored = cluster.store.get_patient(nhs)
        assert stored is not None
        applied = stored.version - before
        if (a.status_code == 200) != (applied == 1):
            wrong.append((a.status_code, b.status_code, applied))
    assert not wrong, f"answers that contradict the database (status A, status B, versions applied): {wrong}"
