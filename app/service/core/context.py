"""What every route shares: authentication, header rules, RBAC, idempotency and the audit trail.

Order for a patient-data request: bearer token (401) → X-Request-ID present and a UUID (400) → every id in the
path a FHIR id (400 INVALID_RESOURCE_ID, audited with a safe representation of the id) → the caller's
role (``NHSD-Session-URID``) holds an activity the operation needs (403, deny by default) → replay of a
state-changing request already answered under the same X-Request-ID → the handler → the audit record,
committed before the response leaves (a failed audit write fails the request: no unaudited data leaves).
GETs are safe and are evaluated afresh on a repeated X-Request-ID (and audited again: data was read again).

A stored answer is replayed only to the SAME request: its SHA-256 fingerprint (method, path, query, body; see
``request_fingerprint``) is kept with the answer. The id reused for a different request (another patient in the
body, another path) is refused with 422 and audited as a reuse, never as a replay; so is a repeat of an id whose
answer was stored before fingerprints were kept (it cannot be matched to any request).
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import re
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

from app.protocol import HEADER_CORRELATION_ID, HEADER_REQUEST_ID, HEADER_URID
from app.service.core.auth import AuthError, AuthService, IssuedSession, Principal
from app.service.core.card_admin import CardAdmin
from app.service.core.http import Request, Response
from app.service.core.outcome import FhirError, invalid_resource_id, invalid_value, missing_value
from app.service.core.ratelimit import TokenBuckets
from app.service.core.rbac import RoleTable
from app.service.core.withheld import NOTHING, Withheld, withheld_of
from app.service.store import Answer, AuditEntry, AuditWriter, Store
from app.service.store.audit_chain import safe_text
from app.service.store.group_commit import GroupCommitter

log = logging.getLogger(__name__)
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
ECHOED = (HEADER_REQUEST_ID, HEADER_CORRELATION_ID)
# Every id in a route's path (NHS numbers, flag ids and versions, alert ids, local-authority codes) is a FHIR id
# (R4 "id" datatype): 1-64 of A-Z a-z 0-9 - . — the whole value (``$`` would let a final newline through).
PATH_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")

# Audit records a request has queued; the response may leave only once every one of them has committed.
# The HTTP adapter awaits them without holding a thread (group commit makes one fsync serve many requests).
PENDING_AUDIT: contextvars.ContextVar[list[Future[Any]] | None] = contextvars.ContextVar("pending_audit",
                                                                                           default=None)


LOGIN_ACTION = "auth.login"  # a card login (POST /auth/session), audited with how the card was matched to its user
REUSED = "request id reused for a different request"
REUSED_UNMATCHED = ("request id reused; its stored answer predates request fingerprints, so it cannot be matched "
                    "to this request")


def request_fingerprint(request: Request) -> str:
    """SHA-256 (hex) of what makes a state-changing request the request it is: method, path, query (keys sorted,
    each key's values in order) and body, each part length-prefixed so no two requests share an encoding."""
    digest = hashlib.sha256()
    query = json.dumps(sorted((k, list(v)) for k, v in request.query.items()), ensure_ascii=True)
    for part in (request.method.encode(), request.path.encode("utf-8", "backslashreplace"), query.encode(),
                 request.body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _safe_id(value: str | None) -> str | None:
    """The id a request named, as the audit keeps it: unchanged when it is plain text of at most 64 characters,
    else escaped and cut (see ``safe_text``): never a NUL, an unpaired surrogate or an unbounded length."""
    return None if value is None else safe_text(value)


class InProgress(Exception):
    """The request id is claimed by another process that has not answered yet."""


@dataclass(frozen=True)
class Call:
    """An authorised request: who, in which role, under which request id."""

    principal: Principal
    request_id: str
    request: Request


class AuditDetails(dict[str, object]):
    """The details of the record ``ServiceContext.audited`` writes for a request, filled in by the work.

    Work that CHANGES data calls :meth:`entries` to get its success record(s) and hands them to the store method
    that writes them in the same transaction as the change; ``audited`` then does not write them again. If that
    store call fails, nothing was written and ``audited`` records the failure as usual."""

    def __init__(self, ctx: ServiceContext, call: Call, action: str, nhs_number: str | None) -> None:
        super().__init__()
        self._ctx, self._call, self._action, self._nhs = ctx, call, action, nhs_number
        self.inline = False

    def entries(self, outcome: str = "200") -> list[AuditEntry]:
        self.inline = True
        return [self._ctx.audit_entry(self._call, self._action, self._nhs, outcome, dict(self))]


def error_response(exc: FhirError) -> Response:
    """The one place a ``FhirError`` becomes an HTTP response."""
    headers = [("retry-after", str(exc.retry_after))] if exc.retry_after else []
    if exc.status == 401:
        headers.append(("www-authenticate", 'Bearer realm="spine-desk"'))
    return Response.json(exc.status, exc.to_outcome(), headers=headers)


def access_denied(error: AuthError) -> FhirError:
    if error.status == 503:  # the service cannot decide now (revocation information out of date): not a denial
        return FhirError("SERVICE_UNAVAILABLE", error.message, status=503)
    return FhirError("ACCESS_DENIED", error.message, status=error.status)


class ServiceContext:
    def __init__(self, store: Store, auth: AuthService, roles: RoleTable, audit: AuditWriter, *,
                 cpis_writer: GroupCommitter[Any, bool], base_url: str = "",
                 clock: Callable[[], datetime] | None = None, delivery_alarm: Any = None,
                 login_limiter: TokenBuckets | None = None, scr_episode_hours: float | None = None,
                 card_admin: CardAdmin | None = None) -> None:
        self.store = store
        self.auth = auth
        self.roles = roles
        self.audit_writer = audit
        self.cpis_writer = cpis_writer
        self.base_url = base_url.rstrip("/")
        self.now = clock or (lambda: datetime.now(UTC))
        self.delivery_alarm = delivery_alarm  # CP-IS's DeliveryAlarm: when /_status reports delivery stuck
        self.login_limiter = login_limiter  # per client address on the unauthenticated login endpoints
        self.scr_episode_hours = scr_episode_hours  # how long SCR episode grants last (None: the SCR default)
        self.card_admin = card_admin  # training: the CA and card records behind card self-service; None: production

    def withheld(self, nhs_number: str | None) -> Withheld:
        """What no answer about this patient may carry: nothing unless they are restricted (R or V); see
        ``app.service.core.withheld``. One look-up by primary key; only a restricted record is decoded."""
        found = self.store.get_patient_json(nhs_number) if nhs_number else None
        return withheld_of(json.loads(found.json)) if found is not None and found.restricted else NOTHING

    def request_id(self, request: Request) -> str:
        value = request.header(HEADER_REQUEST_ID)
        if value is None or value == "":
            raise missing_value(HEADER_REQUEST_ID)
        if not UUID_RE.match(value):
            raise invalid_value(HEADER_REQUEST_ID, value, where="header")
        return value.lower()

    def authorise(self, request: Request, operation: str, *, nhs_number: str | None = None) -> Call:
        """Authenticate, check headers and the role; a denial for a known user is audited too."""
        try:
            principal = self.auth.authenticate(request.header("authorization"), request.header(HEADER_URID))
        except AuthError as exc:
            if exc.user is not None:  # a known user refused (a role not theirs, a revoked card): on the record
                future = self.audit_writer.submit(AuditEntry(
                    user_id=exc.user.id, role_profile_id=safe_text(request.header(HEADER_URID) or ""), org="",
                    action=operation, nhs_number=_safe_id(nhs_number),
                    request_id=safe_text(request.header(HEADER_REQUEST_ID) or ""),
                    outcome=str(exc.status), details={"reason": exc.reason}))
                self._await_or_defer(future)
            raise access_denied(exc) from exc
        request_id = self.request_id(request)
        bad = [value for value in request.params.values() if not PATH_ID.fullmatch(value)]
        if bad:  # before the role check, the store or an idempotency record sees it; on the record, made safe
            self.audit(Call(principal, request_id, request), operation, None, "400",
                       {"error": "INVALID_RESOURCE_ID", "path_id": safe_text(bad[0])})
            raise invalid_resource_id()
        if not self.roles.allowed(operation, principal.role.activity_codes):
            self.audit(Call(principal, request_id, request), operation, nhs_number, "403",
                       {"reason": "role lacks the activity"})
            raise FhirError("ACCESS_DENIED", f"the role {principal.role.role_name} ({principal.role.id}) may not "
                            f"perform {operation}", status=403)
        return Call(principal, request_id, request)

    def audit_login(self, request: Request, issued: IssuedSession) -> None:
        """The record of a card login: who, in which role (if named), and how the certificate was matched to them
        (fingerprint, NHS user UUID or card UUID, with the UUID and the certificate's issuer and serial)."""
        role = issued.role
        details = issued.identity.audit_details() if issued.identity is not None else {}
        self._await_or_defer(self.audit_writer.submit(AuditEntry(
            user_id=issued.user.id, role_profile_id=role.id if role else "", org=role.org_ods if role else "",
            action=LOGIN_ACTION, nhs_number=None, request_id=safe_text(request.header(HEADER_REQUEST_ID) or ""),
            outcome="201", details=details)))

    def audit_entry(self, call: Call, action: str, nhs_number: str | None, outcome: str,
                    details: dict[str, object] | None = None) -> AuditEntry:
        role = call.principal.role
        return AuditEntry(user_id=call.principal.user.id, role_profile_id=role.id, org=role.org_ods, action=action,
                          nhs_number=_safe_id(nhs_number), request_id=call.request_id, outcome=outcome,
                          details=dict(details or {}))

    def audit(self, call: Call, action: str, nhs_number: str | None, outcome: str,
              details: dict[str, object] | None = None) -> None:
        """Queue the record. Inside a request the response waits for its commit (see ``PENDING_AUDIT``);
        outside one (tools, tests) this waits for the commit itself."""
        self._await_or_defer(self.audit_writer.submit(self.audit_entry(call, action, nhs_number, outcome, details)))

    def record(self, entry: AuditEntry) -> None:
        """Queue a record built by the caller (a request without a role, such as card self-service), as
        :meth:`audit` does."""
        self._await_or_defer(self.audit_writer.submit(entry))

    def audited(self, call: Call, action: str, nhs_number: str | None,
                work: Callable[[AuditDetails], Response]) -> Response:
        """Run ``work`` and make sure its audit record (success or failure) commits before the response leaves."""
        details = AuditDetails(self, call, action, nhs_number)
        try:
            response = work(details)
        except FhirError as exc:
            self.audit(call, action, nhs_number, str(exc.status), {**details, "error": exc.spine_code})
            raise
        except Exception as exc:  # a crash is still an access attempt: on the record as a 500, then the 500 path
            self.audit(call, action, nhs_number, "500", {**details, "error": type(exc).__name__})
            raise
        if not details.inline:
            self.audit(call, action, nhs_number, str(response.status), details)
        return response

    @staticmethod
    def answer(call: Call, response: Response) -> Answer:
        """The answer to store for this request's X-Request-ID in the same transaction as its change."""
        return Answer(call.request_id, call.principal.user.id, call.request.method, call.request.path,
                      response.status, tuple(response.headers), response.body, request_fingerprint(call.request))

    def idempotent(self, call: Call, action: str, nhs_number: str | None,
                   work: Callable[[AuditDetails], Response]) -> Response:
        """A state-changing request: replay a stored answer for its X-Request-ID, else run it ``audited`` and
        store its answer (errors too). Work that commits ``entries()`` and ``answer()`` with its change makes the
        change, its audit and its answer one transaction."""
        replay = self.replay(call, action, nhs_number)
        if replay is not None:  # the stored answer leaves again: on the record as a replay
            self.audit(call, action, nhs_number, str(replay.status), {"replay": True})
            return replay
        try:
            response = self.audited(call, action, nhs_number, work)
        except FhirError as exc:
            response = error_response(exc)
        except BaseException:
            self.store.release(call.request_id, call.principal.user.id)  # no answer to replay: let a retry run
            raise
        return self.remember(call, response)

    @staticmethod
    def _await_or_defer(future: Future[Any]) -> None:
        pending = PENDING_AUDIT.get()
        if pending is None:
            future.result()
        else:
            pending.append(future)

    def replay(self, call: Call, action: str, nhs_number: str | None) -> Response | None:
        """Claim the request id; if someone already answered this same request under it, that answer. While
        another process is still working on it, raise :class:`InProgress`: the HTTP adapter yields and runs the
        request again shortly (never sleeping on the event loop); an abandoned claim is taken over once its lease
        has run out. The id already used for a different request (or for one whose fingerprint was never stored):
        audited as a reuse and refused with 422; the stored answer is neither replayed nor replaced."""
        fingerprint = request_fingerprint(call.request)
        stored = self.store.claim(call.request_id, call.principal.user.id, call.request.method, call.request.path,
                                  request_hash=fingerprint)
        if stored is None:
            return None
        if stored.request_hash and stored.request_hash != fingerprint:
            self._refuse_reuse(call, action, nhs_number, REUSED)
        if stored.status == 0:
            raise InProgress(call.request_id)
        if not stored.request_hash:
            same_target = (stored.method, stored.path) == (call.request.method, call.request.path)
            self._refuse_reuse(call, action, nhs_number, REUSED_UNMATCHED if same_target else REUSED)
        return Response(stored.status, stored.body, list(stored.headers))

    def _refuse_reuse(self, call: Call, action: str, nhs_number: str | None, reason: str) -> NoReturn:
        self.audit(call, action, nhs_number, "422", {"reason": reason})
        raise FhirError("INVALID_VALUE", f"Invalid value - '{call.request_id}' in header '{HEADER_REQUEST_ID}': "
                        "this X-Request-ID was already used for a different request; send a new request with a "
                        "new X-Request-ID (repeat a request only with the same method, path, query and body)",
                        status=422)

    def remember(self, call: Call, response: Response) -> Response:
        stored = self.store.remember(call.request_id, call.principal.user.id, call.request.method,
                                     call.request.path, response.status, response.headers, response.body,
                                     request_hash=request_fingerprint(call.request))
        return Response(stored.status, stored.body, list(stored.headers))


def echo_headers(request: Request, response: Response) -> Response:
    present = {k.lower() for k, _ in response.headers}
    for name in ECHOED:
        value = request.header(name)
        if value is not None and name.lower() not in present and len(value) <= 200 and value.isprintable():
            response.headers.append((name, value))
    return response
