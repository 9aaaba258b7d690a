"""GET /audit/records — the audit trail for privacy officers (activities B0015/B0016). The query is audited too.

Scope: an officer sees the records of accesses made under roles of THEIR organisation (the role profile's ODS
code, the record's ``org``) and no other, whatever the parameters; records outside it are filtered out (200), not
refused, so a query never says whether another organisation touched a patient. Why the acting organisation and
not the patient's registration: a privacy officer answers for what their own organisation's staff did — that is
what their organisation can investigate and act on — and a registration scope would show them what other
organisations' staff did (and would give a hospital's officer, whose organisation registers nobody, nothing to
review, not even their own staff). Records with no organisation (a user presenting a role that is not theirs) are
in no officer's scope. A national scope would have to be explicit data (e.g. in ``resources/rbac.json`` or the
role profile); there is none.
"""

from __future__ import annotations

from datetime import UTC, datetime

from app.nhs_number import is_valid
from app.service.core.context import ServiceContext
from app.service.core.http import Request, Response
from app.service.core.outcome import FhirError, invalid_value
from app.service.core.routes import Route
from app.service.core.withheld import NOTHING, redact

AUDIT_PATH = "/audit/records"
ALLOWED = {"patient", "user", "action", "since", "until", "_count"}


def _one(request: Request, name: str) -> str | None:
    values = request.query.get(name)
    return values[-1] if values else None


def _time(request: Request, name: str) -> datetime | None:
    value = _one(request, name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise invalid_value(name, value, where="parameter") from exc
    if parsed.tzinfo is None:
        raise invalid_value(name, value, where="parameter")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # e.g. year 1 at +14:00 is before the first representable UTC instant
        raise invalid_value(name, value, where="parameter") from exc


def records(ctx: ServiceContext, request: Request) -> Response:
    call = ctx.authorise(request, "audit.query")
    unknown = sorted(set(request.query) - ALLOWED)
    if unknown:
        raise invalid_value(unknown[0], "", where="parameter")
    patient = _one(request, "patient")
    if patient is not None and not is_valid(patient):
        raise invalid_value("patient", patient, where="parameter")
    count = _one(request, "_count") or "100"
    if not (count.isascii() and count.isdigit()) or not 1 <= int(count) <= 1000:  # "²".isdigit() too
        raise invalid_value("_count", count, where="parameter")
    scope = call.principal.role.org_ods
    if not scope:  # deny by default: a role with no organisation has no scope (and "" would match the records
        # of users presenting a role not theirs)
        ctx.audit(call, "audit.query", patient, "403", {"reason": "role has no organisation"})
        raise FhirError("ACCESS_DENIED", "the role has no organisation to scope the audit trail to", status=403)
    for name in ("user", "action"):  # compared in the database: a value it cannot hold is no match, refused
        value = _one(request, name)
        if value is not None and (len(value) > 200 or "\x00" in value):
            raise invalid_value(name, value[:64], where="parameter")
    found = ctx.store.query_audit(nhs_number=patient, user_id=_one(request, "user"),
                                  since=_time(request, "since"), until=_time(request, "until"),
                                  action=_one(request, "action"), org=scope, limit=int(count))
    ctx.audit(call, "audit.query", patient, "200", {"returned": len(found), "scope": {"org": scope}})
    # a record about a restricted patient names the organisation that acted — possibly their own GP practice —
    # and its details may hold what the request carried: both go through the patient's withheld values (the
    # hash stays that of the record as stored)
    hidden = {nhs: ctx.withheld(nhs) for nhs in {r.nhs_number for r in found} if nhs}
    return Response.json(200, {"records": [redact({
        "seq": r.seq, "at": r.at.isoformat(), "user": r.user_id, "role_profile": r.role_profile_id,
        "org": r.org, "action": r.action, "nhs_number": r.nhs_number, "request_id": r.request_id,
        "outcome": r.outcome, "details": r.details, "hash": r.hash}, hidden.get(r.nhs_number or "", NOTHING))
        for r in found]}, content_type="application/json")


ROUTES: tuple[Route, ...] = (
    ("GET", AUDIT_PATH, records),
)
