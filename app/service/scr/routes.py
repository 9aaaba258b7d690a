"""Summary Care Record routes under ``/summary-care-record/FHIR/R4`` (NHS's SCR FHIR R4 API), plus the privacy
officers' alert queue (``GET /alerts``, ``POST /alerts/{id}/$acknowledge``; Spine Desk's own).

Every route authorises first (401/403, deny by default), then runs audited; changes (upload, consent,
permission to view, alerts, acknowledgements) are idempotent by X-Request-ID and commit their audit record and
stored answer in the same transaction as the change. Access rules: ``app.service.scr.access``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any, cast

from app.nhs_number import is_valid
from app.protocol import SCR_BASE
from app.service.core.context import AuditDetails, Call, ServiceContext
from app.service.core.http import Request, Response
from app.service.core.outcome import FhirError
from app.service.core.routes import Route
from app.service.core.withheld import redact, withheld_of
from app.service.scr.access import (
    DEFAULT_EPISODE_HOURS,
    OPTED_OUT,
    OPTED_OUT_TEXT,
    RECORD_CONSENT,
    VIEW,
    Episode,
    alert_patient,
    check_alert_allowed,
    decide_consent,
    decide_view,
    effective_consent,
    officer_alert_types,
    parse_alert,
)
from app.service.scr.fhir import (
    ScrError,
    alert_resource,
    alerts_bundle,
    bundle_url,
    document_reference_bundle,
    forbidden,
    invalid,
    scr_bundle_json,
)
from app.service.scr.requests import (
    UUID_RE,
    check_content_type,
    json_body,
    parse_bundle_query,
    parse_document_reference,
    parse_permission,
    parse_upload,
)
from app.service.scr.store import (
    DEFAULT_CONSENT,
    AlertAcknowledged,
    ScrAlert,
    ScrConsentRefused,
    ScrDocument,
    ScrGrant,
    ScrLatestMoved,
    ScrStore,
)
from app.service.store import AlreadyExists, NotFound, PatientRow

ALERTS_PATH = f"{SCR_BASE}/alerts"


def _store(ctx: ServiceContext) -> ScrStore:
    """The store as SCR sees it: its own protocol (the composed store implements every feature's)."""
    return cast(ScrStore, ctx.store)


def episode_hours(setting: float | None) -> float:
    """How long an episode's permission, relationship or override lasts: the service's setting
    (``ServiceConfig.scr_episode_hours``) when it is more than 0 and at most a week, else the default."""
    return setting if setting is not None and 0 < setting <= 24 * 7 else DEFAULT_EPISODE_HOURS


def _peek(fn: Callable[[], Any]) -> Any:
    """Best effort, for the audit record of a request that may yet be rejected: ``None`` if it does not parse."""
    try:
        return fn()
    except ScrError:
        return None


def authorise(ctx: ServiceContext, request: Request, operation: str, nhs: str | None = None) -> Call:
    try:
        return ctx.authorise(request, operation, nhs_number=nhs)
    except FhirError as exc:
        raise exc if isinstance(exc, ScrError) else ScrError.from_fhir(exc) from exc


def patient(ctx: ServiceContext, nhs: str) -> PatientRow:
    row = ctx.store.get_patient(nhs)
    if row is None or row.invalidated:
        raise invalid(f"Patient {nhs} not found. Check the NHS number with a PDS search.")
    if row.superseded_by:
        raise invalid(f"NHS number {nhs} has been merged into {row.superseded_by}: use that number.")
    return row


def episode(ctx: ServiceContext, call: Call, nhs: str) -> Episode:
    role = call.principal.role
    return Episode.of(_store(ctx).scr_grants(call.principal.user.id, role.id, nhs, now=ctx.now()))


def grant(ctx: ServiceContext, call: Call, nhs: str, kind: str, *, granted: bool = True,
          reason: str = "") -> ScrGrant:
    now = ctx.now()
    return ScrGrant(call.principal.user.id, call.principal.role.id, nhs, kind, granted, reason,
                    call.request_id, now, now + timedelta(hours=episode_hours(ctx.scr_episode_hours)))


def index(ctx: ServiceContext, request: Request) -> Response:
    base_url = ctx.base_url + SCR_BASE
    nhs = _peek(lambda: parse_document_reference(request.query))
    call = authorise(ctx, request, "scr.index", nhs)

    def work(details: AuditDetails) -> Response:
        number = parse_document_reference(request.query)
        patient(ctx, number)
        record = _store(ctx).scr_record(number)
        consent = record.consent if record else DEFAULT_CONSENT
        doc = record.latest if record else None
        details.update(consent=consent, scr_id=doc.id if doc else None)
        if doc is None and effective_consent(consent) == OPTED_OUT:
            # the specification's 403 for this endpoint: "There's no patient's consent to store SCR"
            raise forbidden(f"There's no patient's consent to store SCR. {OPTED_OUT_TEXT}", reason="opted-out")
        return Response.json(200, document_reference_bundle(number, doc, consent, base_url=base_url,
                                                            bundle_id=str(uuid.uuid4())))

    return ctx.audited(call, "scr.index", nhs, work)


def read(ctx: ServiceContext, request: Request) -> Response:
    peeked = _peek(lambda: parse_bundle_query(request.query))
    call = authorise(ctx, request, "scr.read", peeked[1] if peeked else None)

    def work(details: AuditDetails) -> Response:
        scr_id, number = parse_bundle_query(request.query)
        row = patient(ctx, number)
        view = _store(ctx).scr_view(number)
        details["scr_id"] = scr_id
        try:
            access = decide_view(consent=view.consent if view else None, role_org=call.principal.role.org_ods,
                                 gp_ods=row.gp_ods, episode=episode(ctx, call, number))
        except ScrError as exc:
            details["denied"] = exc.reason
            raise
        current = view is not None and view.latest_id == scr_id
        entries = view.entries if view is not None and current else 0
        entries_json = view.entries_json if view is not None and current else None
        hidden = withheld_of(row.resource)
        if hidden and entries_json:  # a restricted patient: their practice wrote it, and may be named in it
            entries_json = json.dumps(redact(json.loads(entries_json), hidden), separators=(",", ":"),
                                      ensure_ascii=False)
        body = scr_bundle_json(entries_json, entries, bundle_id=str(uuid.uuid4()), now=ctx.now())
        details.update(relationship=access.relationship, basis=access.basis, current=current, returned=entries)
        return Response(200, body, [("content-type", "application/fhir+json")])

    return ctx.audited(call, "scr.read", peeked[1] if peeked else None, work)


def upload(ctx: ServiceContext, request: Request) -> Response:
    base_url = ctx.base_url + SCR_BASE
    nhs = _peek(lambda: parse_upload(json_body(request.body)).nhs_number)
    call = authorise(ctx, request, "scr.upload", nhs)

    def work(details: AuditDetails) -> Response:
        check_content_type(request.header("content-type"))
        up = parse_upload(json_body(request.body))
        row = patient(ctx, up.nhs_number)
        org = call.principal.role.org_ods
        if (row.gp_ods or "").upper() != org.upper():
            # never name the practice: for a restricted patient it is withheld (and PDS shows it otherwise)
            raise forbidden("Only the patient's registered GP practice can upload their Summary Care Record; "
                            f"your role is at {org}.", reason="not-gp")
        record = _store(ctx).scr_record(up.nhs_number)
        current = record.latest.id if record and record.latest else None
        if current is not None and up.replaces != current:
            raise invalid(f"This upload does not replace the latest SCR ({current}). Get the latest id with GET "
                          "/DocumentReference and set it in Composition.relatesTo (code 'replaces').")
        details.update(scr_id=up.scr_id, replaces=current)
        response = Response(201, b"", [("location", bundle_url(base_url, up.scr_id, up.nhs_number))])
        doc = ScrDocument(up.scr_id, up.nhs_number, ctx.now(), up.bundle, call.principal.user.id, org, current)
        try:
            _store(ctx).put_scr_document(doc, expected_latest=current, audit=details.entries("201"),
                                       answer=ctx.answer(call, response))
        except ScrConsentRefused as exc:
            raise forbidden("There's no patient's consent to store SCR: the patient has opted out "
                            "(consent preference 'No').", reason="opted-out") from exc
        except ScrLatestMoved as exc:
            raise ScrError(409, f"The SCR changed while you uploaded (latest is now {exc.latest}); get it "
                           "again with GET /DocumentReference and retry.", issue_code="conflict") from exc
        except AlreadyExists as exc:
            raise invalid(f"Duplicate event with eventId {up.scr_id} and nhsNumber {up.nhs_number}: give "
                          "the new version a new Composition identifier.") from exc
        return response

    return ctx.idempotent(call, "scr.upload", nhs, work)


def set_permission(ctx: ServiceContext, request: Request) -> Response:
    nhs = _peek(lambda: parse_permission(json_body(request.body)).nhs_number)
    call = authorise(ctx, request, "scr.permission", nhs)

    def work(details: AuditDetails) -> Response:
        check_content_type(request.header("content-type"))
        req = parse_permission(json_body(request.body))
        row = patient(ctx, req.nhs_number)
        activities = set(call.principal.role.activity_codes)
        response = Response(201, b"")
        details.update(parameter=req.kind, code=req.code)
        if req.kind == "setPermissions":
            held = episode(ctx, call, req.nhs_number)
            try:
                if RECORD_CONSENT not in activities:
                    raise forbidden("Your role may not record a patient's SCR consent preference (activity "
                                    "B0020).", reason="activity")
                lr = decide_consent(role_org=call.principal.role.org_ods, gp_ods=row.gp_ods, episode=held)
            except ScrError as exc:
                details["denied"] = exc.reason
                raise
            details["relationship"] = lr
            if lr == "self-claimed":  # the explicit route: audited here, alerted when it was claimed
                details["alert_id"] = held.claim_alert
            _store(ctx).set_scr_consent(req.nhs_number, req.code, by=call.principal.user.id, now=ctx.now(),
                                      audit=details.entries("201"), answer=ctx.answer(call, response))
            return response
        if VIEW not in activities:
            raise forbidden("Your role may not view Summary Care Records (activity B0370).", reason="activity")
        given = grant(ctx, call, req.nhs_number, "ptv", granted=req.code == "Yes",
                      reason="permission given" if req.code == "Yes" else "permission refused")
        details["expires_at"] = given.expires_at.isoformat()
        try:
            _store(ctx).put_scr_grants([given], refuse_opted_out=req.nhs_number, audit=details.entries("201"),
                                     answer=ctx.answer(call, response))
        except ScrConsentRefused as exc:
            raise forbidden(OPTED_OUT_TEXT, reason="opted-out") from exc
        return response

    return ctx.idempotent(call, "scr.permission", nhs, work)


def alert(ctx: ServiceContext, request: Request) -> Response:
    base_url = ctx.base_url + SCR_BASE
    named = _peek(lambda: alert_patient(json_body(request.body)))
    nhs = named if is_valid(named) else None
    call = authorise(ctx, request, "scr.alert", nhs)

    def work(details: AuditDetails) -> Response:
        check_content_type(request.header("content-type"))
        claim = parse_alert(json_body(request.body), is_valid)
        row = patient(ctx, claim.nhs_number)
        record = _store(ctx).scr_record(claim.nhs_number)
        role, user = call.principal.role, call.principal.user
        details.update(alert_type=claim.alert_type, alert_subtype=claim.subtype, grants=list(claim.grants))
        try:
            check_alert_allowed(claim, role.activity_codes, consent=record.consent if record else None,
                                role_org=role.org_ods, gp_ods=row.gp_ods, episode=episode(ctx, call, claim.nhs_number))
        except ScrError as exc:
            details["denied"] = exc.reason
            raise
        new = ScrAlert(str(uuid.uuid4()).upper(), ctx.now(), user.id, user.name, role.id, role.role_name,
                       role.org_ods, claim.nhs_number, claim.alert_type, claim.subtype, claim.reason,
                       call.request_id)
        details["alert_id"] = new.id
        response = Response.json(201, alert_resource(new, base_url=base_url),
                                 headers=[("location", f"{base_url}/alerts/{new.id}")])
        grants = [grant(ctx, call, claim.nhs_number, k, reason=claim.reason) for k in claim.grants]
        try:
            _store(ctx).put_scr_grants(grants, alert=new, refuse_opted_out=claim.nhs_number,
                                     audit=details.entries("201"), answer=ctx.answer(call, response))
        except ScrConsentRefused as exc:
            raise forbidden(OPTED_OUT_TEXT, reason="opted-out") from exc
        return response

    return ctx.idempotent(call, "scr.alert", nhs, work)


_EPISODE_ROUTES: tuple[Route, ...] = (
    ("GET", f"{SCR_BASE}/DocumentReference", index),
    ("GET", f"{SCR_BASE}/Bundle", read),
    ("POST", f"{SCR_BASE}/Bundle", upload),
    ("POST", f"{SCR_BASE}/$setPermission", set_permission),
    ("POST", f"{SCR_BASE}/AuditEvent", alert),
)


def _query_value(request: Request, name: str, default: str) -> str:
    values = request.query.get(name)
    if values and len(values) > 1:
        raise invalid(f"Query parameter '{name}' may be given only once.")
    return values[0] if values else default


def _ack_note(request: Request) -> str | None:
    if not request.body:
        return None
    check_content_type(request.header("content-type"))
    body = json_body(request.body)
    params = body.get("parameter") if isinstance(body, dict) and body.get("resourceType") == "Parameters" else None
    if not isinstance(params, list) or not all(isinstance(p, dict) and p.get("name") == "note" and
                                               isinstance(p.get("valueString"), str) for p in params):
        raise invalid("The body is optional; if sent it must be a Parameters resource with one 'note' "
                      "parameter (valueString).")
    return params[0]["valueString"][:1000] if params else None


# The alert queue: privacy officers (B0015 every alert; B0016 self-claimed relationship alerts) of the alert's
# organisation list the queue and acknowledge alerts; who acknowledged and when is kept with the alert.

def listing(ctx: ServiceContext, request: Request) -> Response:
    base_url = ctx.base_url + SCR_BASE
    call = authorise(ctx, request, "scr.alerts")

    def work(details: AuditDetails) -> Response:
        extra = sorted(set(request.query) - {"status", "_count"})
        if extra:
            raise invalid(f"Unsupported query parameter '{extra[0][:60]}'. Allowed: status, _count.")
        status = _query_value(request, "status", "open")
        if status not in ("open", "acknowledged", "all"):
            raise invalid("status must be open, acknowledged or all.")
        count = _query_value(request, "_count", "100")
        if not (count.isascii() and count.isdigit()) or not 1 <= int(count) <= 500:
            raise invalid("_count must be a number from 1 to 500.")
        role = call.principal.role
        found = _store(ctx).scr_alerts(org=role.org_ods, types=officer_alert_types(role.activity_codes),
                                     acknowledged={"open": False, "acknowledged": True}.get(status),
                                     limit=int(count))
        details.update(status=status, returned=[a.id for a in found])
        return Response.json(200, alerts_bundle(found, base_url=base_url, bundle_id=str(uuid.uuid4())))

    return ctx.audited(call, "scr.alerts", None, work)


def acknowledge(ctx: ServiceContext, request: Request) -> Response:
    base_url = ctx.base_url + SCR_BASE
    alert_id = request.params["id"].upper()
    call = authorise(ctx, request, "scr.alerts.ack")

    def work(details: AuditDetails) -> Response:
        note = _ack_note(request)
        role = call.principal.role
        found = _store(ctx).get_scr_alert(alert_id) if UUID_RE.match(alert_id) else None
        if found is None or found.org != role.org_ods or \
                found.alert_type not in officer_alert_types(role.activity_codes):
            raise ScrError(404, f"There is no alert {alert_id[:40]} in your organisation's queue.",
                           issue_code="not-found")
        details["alert_id"] = found.id
        now = ctx.now()
        done = replace(found, acknowledged_at=now, acknowledged_by=call.principal.user.id,
                       acknowledged_role=role.id, acknowledgement_note=note)
        response = Response.json(200, alert_resource(done, base_url=base_url))
        try:
            _store(ctx).acknowledge_scr_alert(found.id, by=call.principal.user.id, role=role.id, note=note, now=now,
                                            audit=details.entries(), answer=ctx.answer(call, response))
        except AlertAcknowledged as exc:
            first = exc.alert
            when = first.acknowledged_at.isoformat(timespec="seconds") if first.acknowledged_at else "unknown"
            raise ScrError(409, f"Alert {first.id} was already acknowledged by {first.acknowledged_by} at "
                           f"{when}.", issue_code="conflict") from exc
        except NotFound as exc:
            raise ScrError(404, f"There is no alert {alert_id[:40]}.", issue_code="not-found") from exc
        return response

    return ctx.idempotent(call, "scr.alerts.ack", None, work)


_QUEUE_ROUTES: tuple[Route, ...] = (
    ("GET", ALERTS_PATH, listing),
    ("POST", f"{ALERTS_PATH}/{{id}}/$acknowledge", acknowledge),
)


ROUTES: tuple[Route, ...] = _EPISODE_ROUTES + _QUEUE_ROUTES
