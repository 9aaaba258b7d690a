"""Delivers CP-IS Access to Service Notifications from the durable outbox to each local authority's endpoint.

One deliverer thread runs in every service process (started by ``runtime.build_service``, stopped by
``Service.close``). Processes share the outbox through the database: a deliverer CLAIMS due rows for a lease
(PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite: the single writer lock) by moving their ``next_attempt_at`` past
the lease, POSTs each to the authority's webhook (or, when it has none, the service's own local-authority inbox)
with an ``Idempotency-Key`` and an HMAC ``X-CPIS-Signature``, then marks it delivered or schedules a retry with
exponential backoff. A process killed mid-delivery leaves its claims to expire and be delivered again with the
SAME key: the receiver drops the duplicate, so each notification is delivered (stored) exactly once.

Nothing about a notification's content is logged: only its key, authority and the HTTP outcome.

A delivery that keeps failing is an alarm, not just a retry: a notification whose ``DeliveryAlarm.attempts``-th
attempt failed, or that is still undelivered ``DeliveryAlarm.after_seconds`` after it was made, is STUCK. The
deliverer logs at ERROR when notifications become stuck (once, not at every retry) and again when none are, and
``GET /_status`` reports them (``cpis-delivery`` check, status "warn"), read from the shared outbox.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from app.errors import AppError
from app.service.cpis.rules import IDEMPOTENCY_HEADER, INBOX_PATH, SIGNATURE_HEADER, retry_at, sign
from app.service.cpis.store import CpisStore, LocalAuthority, OutboxItem, StuckNotifications
from app.service.store import StoreError

log = logging.getLogger(__name__)
DEFAULT_LEASE_SECONDS = 30.0
PARALLEL = 4  # POSTs in flight per process


Clock = Callable[[], datetime]


def system_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DeliveryAlarm:
    """When undelivered notifications count as stuck (see the module's docstring)."""

    attempts: int = 8  # attempts 1 … 8 fail over about four minutes of backoff (1, 2, 4 … s)
    after_seconds: float = 900.0  # or still undelivered 15 minutes after the access that made it

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = int if f.type == "int" else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
                raise DeliveryAlarmError(f.name, f"must be a positive {f.type}, not {value!r}")

    def stuck(self, store: CpisStore, now: datetime) -> StuckNotifications:
        return store.stuck_cpis_notifications(attempts=self.attempts,
                                              created_before=now - timedelta(seconds=self.after_seconds))


class DeliveryAlarmError(AppError):
    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"CP-IS delivery alarm {name}: {problem}")


def describe_stuck(stuck: StuckNotifications, alarm: DeliveryAlarm) -> str:
    since = f"; the oldest was made at {stuck.oldest:%Y-%m-%dT%H:%M:%SZ}" if stuck.oldest else ""
    return (f"{stuck.count} CP-IS notification(s) not delivered after {alarm.attempts} failed attempts or "
            f"{alarm.after_seconds:g} s{since} (up to {stuck.attempts} attempts)")


def delivery_trust(ca_file: str | None) -> ssl.SSLContext:
    """What the deliverer's TLS trusts: the system store plus ``ca_file`` (the site CA that signed the service's
    own certificate, so that the built-in inbox at the service's own HTTPS address is reachable)."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def lease_seconds(setting: float | None) -> float:
    """The claim lease: the service's setting (``ServiceConfig.cpis_lease_seconds``, at least 1 s), else 30 s."""
    return max(1.0, setting) if setting is not None else DEFAULT_LEASE_SECONDS


class Deliverer:
    def __init__(self, store: CpisStore, base_url: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 poll_seconds: float = 0.25, verify: bool | ssl.SSLContext = True,
                 alarm: DeliveryAlarm | None = None, clock: Clock = system_now,
                 alarm_check_seconds: float = 10.0) -> None:
        self.store = store
        self.alarm = alarm or DeliveryAlarm()
        self.clock = clock
        self.alarm_check_seconds = alarm_check_seconds  # how often the idle loop looks for stuck notifications
        self.stuck = StuckNotifications()  # as last checked (check_alarm)
        self._next_check = 0.0
        self.base_url = base_url.rstrip("/")
        self.lease_seconds = lease_seconds
        self.timeout = max(0.5, min(5.0, lease_seconds / 3))  # an attempt always ends well inside its lease
        self.parallel = PARALLEL
        # a claimed batch is sent PARALLEL at a time; every round ends (timeout) well inside the lease
        self.batch = self.parallel * max(1, int(lease_seconds // (self.timeout * 2)))
        self.poll_seconds = poll_seconds
        self.token = uuid.uuid4().hex  # this process's claims
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=self.timeout, verify=verify, follow_redirects=False,
                                  limits=httpx.Limits(max_connections=PARALLEL * 2))
        self._pool = ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="cpis-post")

    # --- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> Deliverer:
        self._thread = threading.Thread(target=self._run, name="cpis-deliverer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            done = 0
            try:
                done = self.run_once()
                if time.monotonic() >= self._next_check:  # also while nothing is due: a row may be getting old
                    self._next_check = time.monotonic() + self.alarm_check_seconds
                    self.check_alarm()
            except StoreError as exc:
                if "closed" in str(exc):
                    return  # the store was closed under us (the service is going away)
                log.warning("CP-IS deliverer: store unavailable (%s); retrying", exc)
            except Exception:
                log.exception("CP-IS deliverer: unexpected failure; retrying")
            if not done:
                self._stop.wait(self.poll_seconds)

    def check_alarm(self) -> StuckNotifications:
        """Look for stuck notifications (at ``clock()``); log at ERROR when some become stuck, and when none
        are any more — once per change, not at every retry."""
        stuck = self.alarm.stuck(self.store, self.clock())
        if stuck.count and not self.stuck.count:
            log.error("CP-IS delivery is failing: %s; local authorities are not being told of these accesses "
                      "(see the warnings for each attempt's error)", describe_stuck(stuck, self.alarm))
        elif not stuck.count and self.stuck.count:
            log.warning("CP-IS delivery recovered: no notification is stuck any more")
        self.stuck = stuck
        return stuck

    # --- one round ------------------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Claim what is due, send it (``parallel`` at a time), record the outcomes in one transaction;
        returns how many were attempted."""
        if not self.store.cpis_outbox_due(now=self.clock()):
            return 0
        items = self.store.claim_cpis_notifications(self.token, lease_seconds=self.lease_seconds, limit=self.batch,
                                                    now=self.clock())
        if not items:
            return 0
        authorities = {code: self.store.local_authority(code) for code in {i.la_code for i in items}}
        errors = list(self._pool.map(lambda item: self.deliver(item, authorities[item.la_code]), items))
        now = self.clock()
        failed = []
        for item, error in zip(items, errors, strict=True):
            if error is not None:
                log.warning("CP-IS notification %s for %s not delivered (attempt %d): %s", item.id, item.la_code,
                            item.attempts, error)
                failed.append((item.id, error, retry_at(now, item.attempts)))
        self.store.finish_cpis_notifications(
            self.token, delivered=[i.id for i, e in zip(items, errors, strict=True) if e is None], failed=failed,
            now=now)
        if failed or self.stuck.count:  # a failure may make some stuck; a success may end it
            self.check_alarm()
        return len(items)

    def endpoint(self, la: LocalAuthority) -> str | None:
        if la.webhook_url:
            return la.webhook_url
        return f"{self.base_url}{INBOX_PATH.replace('{code}', la.code)}" if self.base_url else None

    def deliver(self, item: OutboxItem, la: LocalAuthority | None) -> str | None:
        """None when the receiver accepted it (2xx), else why not."""
        if la is None:
            return f"unknown local authority {item.la_code}"
        url = self.endpoint(la)
        if url is None:
            return "no webhook and no service base URL to reach the built-in inbox"
        body = json.dumps(item.payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: item.id,
                   SIGNATURE_HEADER: sign(la.secret, item.id, body)}
        try:
            response = self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:  # e.g. "ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED] …" (never the body)
            return f"{type(exc).__name__}: {exc}"[:300] if str(exc) else type(exc).__name__
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"
