"""CP-IS routes under ``/cpis/FHIR/R4`` (NHS's draft CP-IS FHIR R4 API) and the local-authority inbox.

* ``GET /cpis/FHIR/R4/CareTeam?patient:identifier=…`` (operation ``cpis.careteam``): the plans. An unscheduled
  access by a B0107 role records the access event and the Access to Service Notification(s) in the SAME
  transaction as the request's audit record (see ``cpis/rules.py`` for who notifies).
* ``GET /cpis/FHIR/R4/AuditEvent?patient:identifier=…`` (``cpis.auditevent``): the last 25 unscheduled accesses.
* ``POST /cpis/local-authority/{code}/notifications``: the service's own local-authority inbox, the default
  webhook. Machine to machine: authenticated by the HMAC signature of the authority's secret, not a session;
  stores each Idempotency-Key once.
* ``GET /cpis/local-authority/{code}/notifications`` (``cpis.inbox``): list what the inbox received; only to a
  role whose organisation (the role profile's ODS code) IS that local authority (403 otherwise, audited).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import cast

from app.protocol import CPIS_BASE
from app.service.core.context import PATH_ID, PENDING_AUDIT, AuditDetails, Call, ServiceContext
from app.service.core.http import Request, Response
from app.service.core.outcome import FhirError, invalid_value
from app.service.core.routes import Route
from app.service.core.withheld import redact
from app.service.cpis import fhir, rules
from app.service.cpis.rules import INBOX_PATH
from app.service.cpis.store import AccessEvent, AccessWrite, CpisStore, Notification

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
NOT_NOTIFIED = ("Your role may view CP-IS information but cannot send an Access to Service Notification: the local "
                "authority has NOT been notified of this access and it is not in the access history. If this is "
                "unscheduled care, contact the local authority on the numbers shown.")


def _store(ctx: ServiceContext) -> CpisStore:
    """The store as CPIS sees it: its own protocol (the composed store implements every feature's)."""
    return cast(CpisStore, ctx.store)



def _patient_of(payload: object) -> str | None:
    """The NHS number a received notification is about (its ``patient.value``), if it names one."""
    patient = payload.get("patient") if isinstance(payload, dict) else None
    value = patient.get("value") if isinstance(patient, dict) else None
    return value if isinstance(value, str) else None


def care_team(ctx: ServiceContext, request: Request) -> Response:
    base_url = ctx.base_url + CPIS_BASE
    named = rules.lenient_nhs_number(request.query)
    call = ctx.authorise(request, "cpis.careteam", nhs_number=named)

    def work(details: AuditDetails) -> Response:
        nhs = rules.parse_patient(request.query)
        mode = rules.decide_access(call.principal.role.activity_codes,
                                   rules.parse_unscheduled(request.header(rules.UNSCHEDULED_HEADER)))
        now = ctx.now()
        today = now.date()
        found = _store(ctx).cpis_plans(nhs, ended_on_or_after=rules.window_start(today))
        details.update(access=mode.reason, plans=[p.id for p, _ in found])
        note = fhir.information(NOT_NOTIFIED) if found and mode.reason == "unscheduled_denied" else None
        response = Response.json(200, fhir.searchset(base_url, [fhir.care_team(p, la, today) for p, la in found],
                                                     now, note))
        if not (mode.notify and found):
            return response
        event = _event(call, nhs, now)
        open_las = list(dict.fromkeys(p.la_code for p, _ in found if rules.is_open(p.end_date, today)))
        who = {"userId": event.user_id, "userName": event.user_name, "roleCode": event.role_code,
               "roleName": event.role_name, "organisationCode": event.org_ods, "organisationName": event.org_name}
        notes = []
        for la in open_las:
            key = rules.notification_id(event.id, la)
            plans = [p.id for p, _ in found if p.la_code == la]
            notes.append(Notification(key, la, nhs, rules.notification_payload(key, la, nhs, now, who, plans)))
        details.update(access_event=event.id, notifications=[n.id for n in notes])
        # the access, its notifications and this request's audit record: one transaction (group-committed
        # with other requests'); the response leaves only once it has committed
        committed = ctx.cpis_writer.submit(AccessWrite(event, tuple(notes), tuple(details.entries())))
        pending = PENDING_AUDIT.get()
        if pending is None:
            committed.result()
        else:
            pending.append(committed)  # type: ignore[arg-type]
        return response

    return ctx.audited(call, "cpis.careteam", named, work)


def _event(call: Call, nhs: str, now: datetime) -> AccessEvent:
    user, role = call.principal.user, call.principal.role
    return AccessEvent(rules.access_id(user.id, call.request_id), nhs, now, user.id, user.name, role.id,
                       role.role_code, role.role_name, role.org_ods, role.org_name, call.request_id)


def audit_events(ctx: ServiceContext, request: Request) -> Response:
    base_url = ctx.base_url + CPIS_BASE
    named = rules.lenient_nhs_number(request.query)
    call = ctx.authorise(request, "cpis.auditevent", nhs_number=named)

    def work(details: AuditDetails) -> Response:
        nhs = rules.parse_patient(request.query)
        events = _store(ctx).cpis_access_history(nhs, limit=rules.HISTORY_LIMIT)
        details["returned"] = len(events)
        history = fhir.searchset(base_url, [fhir.audit_event(e) for e in events], ctx.now())
        # who looked names their organisation: for a restricted patient, possibly their own GP practice
        return Response.json(200, redact(history, ctx.withheld(nhs)) if events else history)

    return ctx.audited(call, "cpis.auditevent", named, work)


def receive(ctx: ServiceContext, request: Request) -> Response:
    code = request.params["code"]
    key = request.header(rules.IDEMPOTENCY_HEADER) or ""
    la = _store(ctx).local_authority(code) if len(code) <= 20 and PATH_ID.fullmatch(code) else None
    if not UUID.match(key) or la is None or not rules.signature_ok(
            la.secret, key, request.body, request.header(rules.SIGNATURE_HEADER)):
        raise FhirError("ACCESS_DENIED", f"Send a notification with an {rules.IDEMPOTENCY_HEADER} (a UUID) and "
                        f"an {rules.SIGNATURE_HEADER} made with the local authority's key", status=401)
    try:
        payload = request.json()
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise invalid_value("body", "not JSON", where="request") from exc
    if not isinstance(payload, dict) or payload.get("id") != key or payload.get("localAuthority") != code:
        raise invalid_value("body", "id/localAuthority", where="request")
    new = _store(ctx).receive_cpis_notification(key, code, payload, now=ctx.now())
    return Response.json(201 if new else 200, {"id": key, "duplicate": not new}, content_type="application/json")


def inbox(ctx: ServiceContext, request: Request) -> Response:
    code = request.params["code"]
    call = ctx.authorise(request, "cpis.inbox")
    role = call.principal.role
    if role.org_ods != code:  # an authority's inbox is its own staff's business: no cross-organisation reading
        ctx.audit(call, "cpis.inbox", None, "403",
                  {"local_authority": code[:20], "reason": "role's organisation is not this local authority"})
        raise FhirError("ACCESS_DENIED", f"the role {role.role_name} ({role.id}) is at {role.org_ods}, not at "
                        "the local authority whose inbox this is", status=403)

    def work(details: AuditDetails) -> Response:
        unknown = sorted(set(request.query) - {"_count"})
        if unknown:
            raise invalid_value(unknown[0], "", where="parameter")
        count = (request.query.get("_count") or ["100"])[-1]
        if not count.isdigit() or not 1 <= int(count) <= 1000:
            raise invalid_value("_count", count, where="parameter")
        items = _store(ctx).cpis_inbox(code[:20], limit=int(count))
        patients = [_patient_of(i.payload) for i in items]
        details.update(local_authority=code[:20], returned=patients)
        # a notification names who looked, and their organisation: for a restricted patient, possibly their
        # own GP practice
        hidden = {nhs: ctx.withheld(nhs) for nhs in set(patients) if nhs}
        return Response.json(200, {"localAuthority": code, "notifications": [
            {"id": i.id, "receivedAt": i.received_at.isoformat(),
             "notification": redact(i.payload, hidden[nhs]) if nhs else i.payload}
            for i, nhs in zip(items, patients, strict=True)]}, content_type="application/json")

    return ctx.audited(call, "cpis.inbox", None, work)


ROUTES: tuple[Route, ...] = (
    ("GET", f"{CPIS_BASE}/CareTeam", care_team),
    ("GET", f"{CPIS_BASE}/AuditEvent", audit_events),
    ("POST", INBOX_PATH, receive),
    ("GET", INBOX_PATH, inbox),
)
