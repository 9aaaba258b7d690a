"""Delivers CP-IS Access to Service Notifications from the durable outbox to each local authority's endpoint.

One deliverer thread runs in every service process (started by ``runtime.build_service``, stopped by
``Service.close``). Processes share the outbox through the database: a deliverer CLAIMS due rows for a lease
(PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite: the single writer lock) by moving their ``next_attempt_at`` past
the lease, POSTs each to the authority's webhook (or, when it has none, the service's own local-authority inbox)
with an ``Idempotency-Key`` and an HMAC ``X-CPIS-Signature``, then marks it delivered or schedules a retry with
exponential backoff. A process killed mid-delivery leaves its claims to expire and be delivered again with the
SAME key: the receiver drops the duplicate, so each notification is delivered (stored) exactly once.

Nothing about a notification's content is logged: only its key, authority and the HTTP outcome.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx

from app.service.domain.cpis_rules import IDEMPOTENCY_HEADER, INBOX_PATH, SIGNATURE_HEADER, retry_at, sign
from app.service.store import Store, StoreError
from app.service.store.base_cpis import LocalAuthority, OutboxItem

log = logging.getLogger(__name__)
LEASE_ENV = "SPINEDESK_CPIS_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 30.0
PARALLEL = 4  # POSTs in flight per process


def delivery_trust(ca_file: str | None) -> ssl.SSLContext:
    """What the deliverer's TLS trusts: the system store plus ``ca_file`` (the site CA that signed the service's
    own certificate, so that the built-in inbox at the service's own HTTPS address is reachable)."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def lease_seconds(extra: Mapping[str, object]) -> float:
    """The claim lease: ``extra["cpis_lease_seconds"]``, else $SPINEDESK_CPIS_LEASE_SECONDS, else 30 s."""
    value = extra.get("cpis_lease_seconds") or os.environ.get(LEASE_ENV)
    try:
        return max(1.0, float(value)) if value is not None else DEFAULT_LEASE_SECONDS  # type: ignore[arg-type]
    except ValueError:
        log.warning("ignoring %s=%r (not a number of seconds)", LEASE_ENV, value)
        return DEFAULT_LEASE_SECONDS


class Deliverer:
    def __init__(self, store: Store, base_url: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 poll_seconds: float = 0.25, verify: bool | ssl.SSLContext = True) -> None:
        self.store = store
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
            try:
                done = self.run_once()
            except StoreError as exc:
                if "closed" in str(exc):
                    return  # the store was closed under us (the service is going away)
                log.warning("CP-IS deliverer: store unavailable (%s); retrying", exc)
                done = 0
            except Exception:
                log.exception("CP-IS deliverer: unexpected failure; retrying")
                done = 0
            if not done:
                self._stop.wait(self.poll_seconds)

    # --- one round ------------------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Claim what is due, send it (``parallel`` at a time), record the outcomes in one transaction;
        returns how many were attempted."""
        if not self.store.cpis_outbox_due():
            return 0
        items = self.store.claim_cpis_notifications(self.token, lease_seconds=self.lease_seconds, limit=self.batch)
        if not items:
            return 0
        authorities = {code: self.store.local_authority(code) for code in {i.la_code for i in items}}
        errors = list(self._pool.map(lambda item: self.deliver(item, authorities[item.la_code]), items))
        now = datetime.now(UTC)
        failed = []
        for item, error in zip(items, errors, strict=True):
            if error is not None:
                log.warning("CP-IS notification %s for %s not delivered (attempt %d): %s", item.id, item.la_code,
                            item.attempts, error)
                failed.append((item.id, error, retry_at(now, item.attempts)))
        self.store.finish_cpis_notifications(
            self.token, delivered=[i.id for i, e in zip(items, errors, strict=True) if e is None], failed=failed,
            now=now)
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
