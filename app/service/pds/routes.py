"""Personal Demographics Service routes under ``/personal-demographics/FHIR/R4`` (NHS's PDS FHIR R4 API)."""

from __future__ import annotations

import json
from typing import cast

from app.protocol import PDS_BASE
from app.service.core.context import AuditDetails, ServiceContext
from app.service.core.http import FHIR_JSON, Request, Response
from app.service.core.outcome import FhirError, invalid_update
from app.service.core.patient import etag, is_restricted, read_view, to_row
from app.service.core.patient_read import resolve_patient
from app.service.core.routes import Route
from app.service.pds.patch import check_content_type, update_patient
from app.service.pds.rank import search_response
from app.service.pds.search import parse_search
from app.service.pds.store import PdsStore
from app.service.store import NotFound, VersionConflict


def _store(ctx: ServiceContext) -> PdsStore:
    """The store as PDS sees it: its own protocol (the composed store implements every feature's)."""
    return cast(PdsStore, ctx.store)



def read(ctx: ServiceContext, request: Request) -> Response:
    nhs = request.params["id"]
    call = ctx.authorise(request, "pds.read", nhs_number=nhs)

    def work(details: AuditDetails) -> Response:
        doc = resolve_patient(nhs, ctx.store.get_patient_json)
        if doc.nhs_number != nhs:
            details["superseded_by"] = doc.nhs_number
        details["restricted"] = doc.restricted
        headers = [("etag", etag(doc.version))]
        if doc.restricted:  # withheld parts are stripped from the decoded resource
            return Response.json(200, read_view(json.loads(doc.json), doc.version), headers=headers)
        # nothing to strip: the stored JSON (meta.versionId == version) leaves as it is, without re-encoding
        return Response(200, doc.json.encode(), [("content-type", FHIR_JSON), *headers])

    return ctx.audited(call, "pds.read", nhs, work)


def search(ctx: ServiceContext, request: Request) -> Response:
    call = ctx.authorise(request, "pds.search")

    def work(details: AuditDetails) -> Response:
        query = parse_search(request.query)
        body = search_response(query, _store(ctx).search(query.filter), base_url=ctx.base_url + PDS_BASE,
                               timestamp=ctx.now())
        # who was shown: the audit names every patient a search returned
        details["returned"] = [e["resource"]["id"] for e in body.get("entry", [])]
        if body.get("resourceType") == "OperationOutcome":
            details["too_many_matches"] = True
        return Response.json(200, body)

    return ctx.audited(call, "pds.search", None, work)


def patch(ctx: ServiceContext, request: Request) -> Response:
    nhs = request.params["id"]
    call = ctx.authorise(request, "pds.patch", nhs_number=nhs)

    def work(details: AuditDetails) -> Response:
        check_content_type(request.header("content-type"))
        row = resolve_patient(nhs, ctx.store.get_patient)
        if row.nhs_number != nhs:
            raise invalid_update(f"patient {nhs} has been merged into {row.nhs_number}; update that record")
        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise invalid_update("the body is not valid JSON (or nests too deeply)") from exc
        result = update_patient(row.resource, body, current_version=row.version,
                                if_match=request.header("if-match"), today=ctx.now().date())
        details["version"] = result.version
        response = Response.json(200, read_view(result.resource, result.version),
                                 headers=[("etag", etag(result.version))])
        try:  # the change, its audit record and this answer commit together or not at all
            _store(ctx).update_patient(nhs, row.version, to_row(result.resource, result.version),
                                     audit=details.entries(), answer=ctx.answer(call, response))
        except VersionConflict as exc:
            raise FhirError("RESOURCE_VERSION_MISMATCH", "Invalid update with error - This resource has "
                            "changed since you last read. Please re-read and try again with the new version "
                            "number.") from exc
        except NotFound as exc:
            raise FhirError("RESOURCE_NOT_FOUND", f"Patient '{nhs}' not found") from exc
        return response

    return ctx.idempotent(call, "pds.patch", nhs, work)


def related(ctx: ServiceContext, request: Request) -> Response:
    nhs = request.params["id"]
    call = ctx.authorise(request, "pds.related", nhs_number=nhs)

    def work(details: AuditDetails) -> Response:
        row = resolve_patient(nhs, ctx.store.get_patient)
        # a restricted patient's contacts are withheld like their address
        people = [] if is_restricted(row.resource) else _store(ctx).related_persons(row.nhs_number)
        base_url = ctx.base_url + PDS_BASE
        details["returned"] = len(people)
        return Response.json(200, {"resourceType": "Bundle", "type": "searchset", "total": len(people),
                                   "entry": [{"fullUrl": f"{base_url}/Patient/{row.nhs_number}/RelatedPerson/"
                                                         f"{p.get('id', '')}", "resource": p} for p in people]})

    return ctx.audited(call, "pds.related", nhs, work)


ROUTES: tuple[Route, ...] = (
    ("GET", f"{PDS_BASE}/Patient/{{id}}", read),
    ("PATCH", f"{PDS_BASE}/Patient/{{id}}", patch),
    ("GET", f"{PDS_BASE}/Patient", search),
    ("GET", f"{PDS_BASE}/Patient/{{id}}/RelatedPerson", related),
)
