"""The unauthenticated login endpoints are rate-limited per client address: a burst from one address gets 429
(Retry-After, an OperationOutcome) once its bucket is empty, other addresses are unaffected, buckets refill with
time (an injected clock: nothing here sleeps), and the number of remembered addresses is bounded."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from app.pki import TrainingCA
from app.protocol import AUTH_CHALLENGE_PATH, AUTH_SESSION_PATH
from app.service.core.limits import HttpLimits, LimitError
from app.service.core.ratelimit import TokenBuckets
from app.service.runtime import ServiceConfig, build_service
from app.service.storage import open_store


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_refused_after_the_limit_and_refills_with_time():
    ticks = Ticks()
    buckets = TokenBuckets(20, 10, clock=ticks)  # 20 a minute: one token every 3 s
    assert [buckets.take("10.0.0.1") for _ in range(10)] == [0.0] * 10
    assert buckets.take("10.0.0.1") == pytest.approx(3.0)
    assert buckets.take("10.0.0.2") == 0.0  # another source has its own bucket
    ticks.now += 1.5
    assert buckets.take("10.0.0.1") == pytest.approx(1.5)
    ticks.now += 1.5
    assert buckets.take("10.0.0.1") == 0.0 and buckets.take("10.0.0.1") > 0
    ticks.now += 3600
    assert [buckets.take("10.0.0.1") for _ in range(11)].count(0.0) == 10  # refills to the burst, no further


def test_memory_is_bounded_least_recently_used_forgotten_first():
    ticks = Ticks()
    buckets = TokenBuckets(1, 1, max_sources=3, clock=ticks)
    for source in ("a", "b", "c"):
        assert buckets.take(source) == 0.0
    assert buckets.take("a") > 0  # a is the most recently used now
    assert buckets.take("d") == 0.0
    assert len(buckets) == 3
    assert buckets.take("a") > 0  # still remembered (and still empty)
    assert buckets.take("b") == 0.0  # b was the least recently used: forgotten, so it starts full again
    assert len(buckets) == 3


def call(app, path: str, client: str) -> tuple[int, httpx.Headers, bytes]:  # type: ignore[no-untyped-def]  # app: ASGI
    """One request through the service's ASGI app from ``client`` (the TCP peer the server reports)."""

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(client, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as http:
            return await http.post(path, content=b"{}", headers={"content-type": "application/json",
                                                                 "x-forwarded-for": "192.0.2.99"})

    response = asyncio.run(post())
    return response.status_code, response.headers, response.content


@pytest.fixture
def service(tmp_path):
    ca = TrainingCA.load_or_create(tmp_path / "pki")
    limits = HttpLimits(auth_rate_per_minute=1, auth_burst=3)
    svc = build_service(ServiceConfig("unused://", base_url="http://127.0.0.1:8443", training_pki=str(ca.directory),
                                      limits=limits),
                        open_store(f"sqlite:///{tmp_path / 's.db'}"))
    yield svc
    svc.close()


@pytest.mark.parametrize("path", [AUTH_CHALLENGE_PATH, AUTH_SESSION_PATH])
def test_the_service_answers_429_per_client_address(service, path):
    statuses = [call(service.app, path, "203.0.113.7")[0] for _ in range(3)]
    assert 429 not in statuses and all(400 <= s < 500 for s in statuses)  # no certificate: refused, not throttled
    status, headers, body = call(service.app, path, "203.0.113.7")
    assert status == 429
    assert int(headers["retry-after"]) >= 1
    outcome = json.loads(body)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "throttled"
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "TOO_MANY_REQUESTS"
    assert call(service.app, path, "203.0.113.8")[0] != 429  # another address (X-Forwarded-For is not trusted)


def test_the_two_endpoints_have_separate_buckets(service):
    for _ in range(3):
        call(service.app, AUTH_CHALLENGE_PATH, "203.0.113.9")
    assert call(service.app, AUTH_CHALLENGE_PATH, "203.0.113.9")[0] == 429
    assert call(service.app, AUTH_SESSION_PATH, "203.0.113.9")[0] != 429  # a login needs one of each


def test_the_rate_limit_settings_are_typed_limits():
    limits = HttpLimits().with_overrides(["auth_rate_per_minute=60", "auth_burst=5", "auth_sources=100"])
    assert (limits.auth_rate_per_minute, limits.auth_burst, limits.auth_sources) == (60.0, 5, 100)
    assert (HttpLimits().auth_rate_per_minute, HttpLimits().auth_burst) == (20.0, 10)
    with pytest.raises(LimitError):
        HttpLimits().with_overrides(["auth_burst=0"])
