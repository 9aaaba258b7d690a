"""Reasonable Adjustment Flag routes under ``/patient-flags/FHIR/R4`` (NHS England's Patient Flags model).

``GET /Flag?patient=…`` (search), ``GET /Flag/{flagID}``, ``GET /Flag/{flagID}/_history[/{vid}]``,
``POST /Flag`` (create), ``PUT /Flag/{flagID}`` (update, ``If-Match``) and ``POST /$removerarecord`` (remove with
a reason, the retired RA Flag API's operation). RBAC operations (``resources/rbac.json``): ``flags.search`` /
``flags.read`` to see that a flag exists, ``flags.content`` to see what it says, ``flags.create`` /
``flags.update`` / ``flags.remove`` to change one.
Every request is audited; every write commits its change, audit record and X-Request-ID answer together.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from email.utils import format_datetime
from typing import Any, cast
from urllib.parse import urlencode

from app.nhs_number import is_valid
from app.protocol import FLAGS_BASE
from app.service.core.context import AuditDetails, Call, ServiceContext
from app.service.core.etag import check_version, etag
from app.service.core.http import Request, Response
from app.service.core.outcome import FhirError, invalid_update, operation_outcome, quote_value
from app.service.core.patient_read import resolve_patient
from app.service.core.routes import Route
from app.service.core.withheld import NOTHING, Withheld, redact
from app.service.flags import fhir
from app.service.flags.codes import NRAF, load_codes
from app.service.flags.model import ACTIVE, Recorder
from app.service.flags.parse import check_content_type, parse_flag, parse_removal, parse_search, subject_nhs
from app.service.flags.store import FlagRow, FlagStore
from app.service.store import AlreadyExists, NotFound, VersionConflict

FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
REMOVED_OK = operation_outcome({"severity": "information", "code": "informational", "details": {"text": "OK"}})


def _store(ctx: ServiceContext) -> FlagStore:
    """The store as flags sees it: its own protocol (the composed store implements every feature's)."""
    return cast(FlagStore, ctx.store)



def _body(request: Request) -> tuple[Any, FhirError | None]:
    try:
        return request.json(), None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, FhirError("INVALID_VALUE", "The body is not valid JSON (or nests too deeply); send a FHIR "
                               "resource as application/fhir+json")


def _headers(row: FlagRow) -> list[tuple[str, str]]:
    return [("etag", etag(row.version)), ("last-modified", format_datetime(row.updated_at, usegmt=True))]


def _not_found(flag_id: str) -> FhirError:
    return FhirError("RESOURCE_NOT_FOUND", f"Flag '{quote_value(flag_id)}' not found; search by patient to find "
                     "its id")


def _removal_nhs(body: object) -> str | None:
    """The NHS number a $removerarecord body names (best effort, for the audit record before validation)."""
    params = body.get("parameter") if isinstance(body, dict) else None
    pending = list(params[:10]) if isinstance(params, list) else []
    for item in pending:
        if not isinstance(item, dict):
            continue
        value = item.get("valueString")
        if item.get("name") == "nhsNumber" and isinstance(value, str) and is_valid(value):
            return value
        if isinstance(item.get("part"), list) and len(pending) < 20:
            pending.extend(item["part"][:10])
    return None


def content_allowed(ctx: ServiceContext, call: Call) -> bool:
    return ctx.roles.allowed("flags.content", call.principal.role.activity_codes)


def shown(resource: dict[str, Any], content: bool, hidden: Withheld) -> dict[str, Any]:
    """What the caller sees of one version: the content only with flags.content; a restricted patient's
    withheld details never (the recorder is often their own GP practice)."""
    return redact(fhir.view(resource, content), hidden)


def recorder(call: Call, at: datetime) -> Recorder:
    user, role = call.principal.user, call.principal.role
    return Recorder(user.id, user.name, role.role_code, role.role_name, role.org_ods, role.org_name, at)


def url(ctx: ServiceContext, flag_id: str) -> str:
    base_url = ctx.base_url + FLAGS_BASE
    return f"{base_url}/Flag/{flag_id}"


def lookup(ctx: ServiceContext, flag_id: str) -> FlagRow | None:
    return _store(ctx).get_flag(flag_id) if FHIR_ID.match(flag_id) else None


def search(ctx: ServiceContext, request: Request) -> Response:
    codes = load_codes()
    base_url = ctx.base_url + FLAGS_BASE
    patient = (request.query.get("patient") or [""])[0].rpartition("|")[2]
    nhs = patient if is_valid(patient) else None
    call = ctx.authorise(request, "flags.search", nhs_number=nhs)

    def work(details: AuditDetails) -> Response:
        query = parse_search(request.query, codes)
        rows = _store(ctx).flags_for_patient(query.nhs_number, statuses=query.statuses) if query.nraf else []
        content = content_allowed(ctx, call)
        details["returned"] = [r.id for r in rows]
        details["content"] = content
        hidden = ctx.withheld(query.nhs_number) if rows else NOTHING
        self_url = f"{base_url}/Flag?{urlencode([(k, v) for k, vs in request.query.items() for v in vs])}"
        return Response.json(200, fhir.searchset([(url(ctx, r.id), shown(r.resource, content, hidden)) for r in rows],
                                                 self_url))

    return ctx.audited(call, "flags.search", nhs, work)


def read(ctx: ServiceContext, request: Request) -> Response:
    flag_id = request.params["flagID"]
    call = ctx.authorise(request, "flags.read")
    row = lookup(ctx, flag_id)

    def work(details: AuditDetails) -> Response:
        details["flag"] = flag_id[:64]
        if row is None:
            raise _not_found(flag_id)
        content = content_allowed(ctx, call)
        details["content"] = content
        return Response.json(200, shown(row.resource, content, ctx.withheld(row.nhs_number)),
                             headers=_headers(row))

    return ctx.audited(call, "flags.read", row.nhs_number if row else None, work)


def history(ctx: ServiceContext, request: Request) -> Response:
    flag_id, vid = request.params["flagID"], request.params.get("vid")
    call = ctx.authorise(request, "flags.read")
    rows = _store(ctx).flag_history(flag_id) if FHIR_ID.match(flag_id) else []

    def work(details: AuditDetails) -> Response:
        details["flag"] = flag_id[:64]
        if not rows:
            raise _not_found(flag_id)
        content = content_allowed(ctx, call)
        details["content"] = content
        hidden = ctx.withheld(rows[0].nhs_number)
        if vid is None:
            details["versions"] = len(rows)
            return Response.json(200, fhir.history([(url(ctx, flag_id), shown(r.resource, content, hidden))
                                                    for r in rows]))
        found = next((r for r in rows if str(r.version) == vid), None)
        if found is None:
            raise FhirError("RESOURCE_NOT_FOUND", f"Flag '{flag_id}' has no version '{quote_value(vid, 20)}'; "
                            f"its versions are 1 to {rows[0].version}")
        details["version"] = found.version
        return Response.json(200, shown(found.resource, content, hidden), headers=_headers(found))

    return ctx.audited(call, "flags.read", rows[0].nhs_number if rows else None, work)


def create(ctx: ServiceContext, request: Request) -> Response:
    codes = load_codes()
    call = ctx.authorise(request, "flags.create")
    body, body_error = _body(request)

    def work(details: AuditDetails) -> Response:
        check_content_type(request.header("content-type"))
        if body_error is not None:
            raise body_error
        nhs, content = parse_flag(body, codes)
        patient = resolve_patient(nhs, ctx.store.get_patient)
        if patient.nhs_number != nhs:
            raise invalid_update(f"patient {nhs} has been merged into {patient.nhs_number}; record the flag "
                                 "on that record")
        now, flag_id = ctx.now(), str(uuid.uuid4())
        resource = fhir.render_flag(flag_id=flag_id, nhs=nhs, version=1, content=content,
                                    recorder=recorder(call, now), activity="CREATE", created=now, codes=codes)
        row = FlagRow(flag_id, nhs, NRAF, ACTIVE, 1, resource, now)
        details["flag"] = flag_id
        response = Response.json(201, shown(resource, content_allowed(ctx, call), ctx.withheld(nhs)),
                                 headers=[*_headers(row), ("location", url(ctx, flag_id))])
        try:
            _store(ctx).create_flag(row, audit=details.entries("201"), answer=ctx.answer(call, response))
        except AlreadyExists as exc:
            existing = _store(ctx).flags_for_patient(nhs, statuses=(ACTIVE,))
            raise FhirError("INVALID_UPDATE", f"Invalid update with error - patient {nhs} already has an active "
                            f"Reasonable Adjustment Flag ({existing[0].id if existing else 'just created'}); "
                            "change it with PUT /Flag/{id} instead", status=409, issue_code="duplicate") from exc
        return response

    return ctx.idempotent(call, "flags.create", subject_nhs(body), work)


def update(ctx: ServiceContext, request: Request) -> Response:
    codes = load_codes()
    flag_id = request.params["flagID"]
    call = ctx.authorise(request, "flags.update")
    current = lookup(ctx, flag_id)
    body, body_error = _body(request)

    def work(details: AuditDetails) -> Response:
        details["flag"] = flag_id[:64]
        check_content_type(request.header("content-type"))
        if current is None:
            raise _not_found(flag_id)
        check_version(request.header("if-match"), current.version)
        if current.status != ACTIVE:
            raise invalid_update(f"flag {flag_id} was removed ({current.status}); removed flags are kept as "
                                 "history and cannot change: create a new flag instead")
        if body_error is not None:
            raise body_error
        nhs, content = parse_flag(body, codes, flag_id=flag_id)
        if nhs != current.nhs_number:
            raise invalid_update("a flag cannot move to another patient; keep Flag.subject as it is")
        return save(ctx, call, details, current, content, None)

    return ctx.idempotent(call, "flags.update", current.nhs_number if current else None, work)


def remove(ctx: ServiceContext, request: Request) -> Response:
    codes = load_codes()
    call = ctx.authorise(request, "flags.remove")
    body, body_error = _body(request)

    def work(details: AuditDetails) -> Response:
        check_content_type(request.header("content-type"))
        if body_error is not None:
            raise body_error
        nhs, removal = parse_removal(body, codes)
        active = _store(ctx).flags_for_patient(nhs, statuses=(ACTIVE,))
        if not active:
            raise FhirError("RESOURCE_NOT_FOUND", f"Patient '{nhs}' has no active Reasonable Adjustment Flag "
                            "to remove")
        current = active[0]
        details["flag"], details["reason"] = current.id, removal.reason
        check_version(request.header("if-match"), current.version)
        _, content = parse_flag(current.resource, codes)
        return save(ctx, call, details, current, content, removal)

    return ctx.idempotent(call, "flags.remove", _removal_nhs(body), work)


def save(ctx: ServiceContext, call: Call, details: AuditDetails, current: FlagRow, content: Any,
         removal: Any) -> Response:
    """Write the next version of ``current``: its content changed (PUT) or it was removed."""
    codes = load_codes()
    now, version = ctx.now(), current.version + 1
    created = datetime.fromisoformat(current.resource["period"]["start"])
    activity = "UPDATE" if removal is None else fhir.removal_activity(removal)
    resource = fhir.render_flag(flag_id=current.id, nhs=current.nhs_number, version=version, content=content,
                                recorder=recorder(call, now), activity=activity, created=created, codes=codes,
                                removal=removal)
    row = FlagRow(current.id, current.nhs_number, NRAF, resource["status"], version, resource, now)
    details["version"] = version
    if removal is None:
        response = Response.json(200, shown(resource, content_allowed(ctx, call), ctx.withheld(current.nhs_number)),
                                 headers=_headers(row))
    else:
        response = Response.json(200, REMOVED_OK, headers=[*_headers(row), ("content-location", url(ctx, row.id))])
    try:  # the change, its audit record and this answer commit together or not at all
        _store(ctx).update_flag(current.id, current.version, row, audit=details.entries(),
                              answer=ctx.answer(call, response))
    except VersionConflict as exc:
        raise FhirError("RESOURCE_VERSION_MISMATCH", "Invalid update with error - This flag has changed since "
                        "you last read it. Please re-read and try again with the new version number.") from exc
    except NotFound as exc:
        raise _not_found(current.id) from exc
    return response


ROUTES: tuple[Route, ...] = (
    ("GET", f"{FLAGS_BASE}/Flag", search),
    ("POST", f"{FLAGS_BASE}/Flag", create),
    ("GET", f"{FLAGS_BASE}/Flag/{{flagID}}", read),
    ("PUT", f"{FLAGS_BASE}/Flag/{{flagID}}", update),
    ("GET", f"{FLAGS_BASE}/Flag/{{flagID}}/_history", history),
    ("GET", f"{FLAGS_BASE}/Flag/{{flagID}}/_history/{{vid}}", history),
    ("POST", f"{FLAGS_BASE}/$removerarecord", remove),
)
