"""The flag a client sends: its checks before sending, its FHIR body (accepted by the service's own parser), and a
stored flag read back as a draft to edit."""

from __future__ import annotations

import pytest

from app.client.flag_edit import (
    AdjustmentEntry,
    EditableFlag,
    FlagDraft,
    FlagEditClient,
    ImpairmentEntry,
    draft_from_resource,
    draft_problems,
    flag_body,
)
from app.flag_rules import load_codes

NHS = "9000000009"


@pytest.fixture(scope="module")
def codes():
    return load_codes()


def full_draft() -> FlagDraft:
    return FlagDraft(consent="002", consent_summary="Assessed with the family and the learning disability nurse",
                     impairments=(ImpairmentEntry("2", "Profound, both ears"), ImpairmentEntry("10", "Tinnitus")),
                     adjustments=(AdjustmentEntry("001", "441092009", "", "Face the patient"),
                                  AdjustmentEntry("011", "", "Quiet room before appointments", "")),
                     notes="Prefers morning appointments")


def test_problems_are_named_before_anything_is_sent(codes):
    assert draft_problems(full_draft(), codes) == []
    empty = draft_problems(FlagDraft(), codes)
    assert any("who consented" in p for p in empty) and any("at least one" in p for p in empty)
    assert any("how it was reached" in p for p in draft_problems(
        FlagDraft(consent="002", impairments=(ImpairmentEntry("1"),)), codes))
    assert any("attorney or deputy" in p for p in draft_problems(
        FlagDraft(consent="003", impairments=(ImpairmentEntry("1"),)), codes))
    assert any("prefer not to say" in p for p in draft_problems(
        FlagDraft(consent="001", impairments=(ImpairmentEntry("12"), ImpairmentEntry("1"))), codes))
    assert any("describe the impairment" in p for p in draft_problems(
        FlagDraft(consent="001", impairments=(ImpairmentEntry("10"),)), codes))
    assert any("from the list" in p for p in draft_problems(
        FlagDraft(consent="001", adjustments=(AdjustmentEntry("001", "", "free text only"),)), codes))
    assert any("bespoke" in p for p in draft_problems(
        FlagDraft(consent="001", adjustments=(AdjustmentEntry("011"),)), codes))


def test_the_body_passes_the_services_own_rules_and_reads_back(codes):
    from app.service.flags.codes import load_codes
    from app.service.flags.parse import parse_flag

    body = flag_body(NHS, full_draft(), codes, flag_id="abc-1")
    nhs, content = parse_flag(body, load_codes(), flag_id="abc-1")
    assert nhs == NHS and content.consent.proxy_role == "002" and content.consent.summary.startswith("Assessed")
    assert [(i.code, i.note) for i in content.impairments] == [("2", "Profound, both ears"), ("10", "Tinnitus")]
    assert [(a.category, a.code, a.text, a.note) for a in content.adjustments] == [
        ("001", "441092009", None, "Face the patient"), ("011", None, "Quiet room before appointments", None)]
    assert content.notes == "Prefers morning appointments"
    # what the service stores, read back as the draft the editor shows
    from datetime import UTC, datetime

    from app.service.flags.fhir import render_flag
    from app.service.flags.model import Recorder

    now = datetime.now(UTC)
    stored = render_flag(flag_id="abc-1", nhs=NHS, version=3, content=content, activity="UPDATE", created=now,
                         codes=load_codes(), recorder=Recorder("u", "Dr A", "R8000", "Clinical", "A81001", "Org", now))
    assert draft_from_resource(stored, codes) == full_draft()


class Recording:
    """A SpineApi at the seam: records the call and answers like the service."""

    base_url = "http://service"

    def __init__(self, error: BaseException | None = None) -> None:
        self.calls, self.error = [], error

    def fhir(self, method, path, auth, *, params=None, body=None, headers=None):
        self.calls.append((method, path, body, headers))
        if self.error is not None:
            raise self.error
        return ({**(body or {}), "id": "abc-1", "meta": {"versionId": "4"}}, 'W/"4"')


def test_change_and_removal_are_sent_against_the_version_read(codes):
    from app.client.models import Auth
    from app.errors import RecordChanged, ServiceRejected

    flag = EditableFlag("abc-1", NHS, 3, full_draft())
    spine = Recording()
    updated = FlagEditClient(spine, Auth("t", "u"), codes).update(flag, full_draft())
    method, path, body, headers = spine.calls[-1]
    assert (method, path, headers["If-Match"]) == ("PUT", "/patient-flags/FHIR/R4/Flag/abc-1", 'W/"3"')
    assert headers["Content-Type"] == "application/fhir+json" and body["id"] == "abc-1"
    assert updated.version == 4
    FlagEditClient(spine, Auth("t", "u"), codes).remove(flag, "Error", "Wrong patient")
    method, path, body, headers = spine.calls[-1]
    assert path.endswith("/$removerarecord") and headers["If-Match"] == 'W/"3"'
    assert [p["name"] for p in body["parameter"]] == ["nhsNumber", "removalReason", "supportingComment"]
    stale = Recording(ServiceRejected(409, "RESOURCE_VERSION_MISMATCH", "stale"))
    with pytest.raises(RecordChanged):
        FlagEditClient(stale, Auth("t", "u"), codes).update(flag, full_draft())
    duplicate = Recording(ServiceRejected(409, "INVALID_UPDATE", "already has one"))
    with pytest.raises(ServiceRejected):
        FlagEditClient(duplicate, Auth("t", "u"), codes).create(NHS, full_draft())


def test_scr_consent_preference_and_legal_override_bodies():
    """SCR (docs/decisions/scr.md): setPermissions carries the preference; a legal override is an alert with the
    basis (SCR-AlertReason 1-3) and the reason, type 2 with a relationship and type 1 without, then the read."""
    from app.client.models import Auth
    from app.client.scr import ACS_SYSTEM, Scr

    spine = Recording()
    scr = Scr(spine, Auth("t", "u"))
    scr.set_consent_preference(NHS, "No", self_claim=False)
    (method, path, body, _), = spine.calls
    assert (method, path) == ("POST", "/summary-care-record/FHIR/R4/$setPermission")
    (param,) = body["parameter"]
    assert param["name"] == "setPermissions"
    assert param["part"][1]["valueCoding"] == {"system": ACS_SYSTEM, "code": "No"}
    spine.calls.clear()  # registered elsewhere: a self-claimed relationship (type 1, subtype 6) first
    scr.set_consent_preference(NHS, "Ask", self_claim=True)
    (_, claim_path, claim, _), (_, path, body, _) = spine.calls
    assert claim_path.endswith("/AuditEvent") and (claim["type"]["code"], claim["subtype"][0]["code"]) == ("1", "6")
    assert path.endswith("/$setPermission") and body["parameter"][0]["part"][1]["valueCoding"]["code"] == "Ask"
    with pytest.raises(ValueError):
        scr.set_consent_preference(NHS, "Maybe", self_claim=False)
    for here, expected_type in ((True, "2"), (False, "1")):
        spine.calls.clear()
        scr.open_under_legal_override(NHS, "scr-1", 3, "Court order 123", registered_here=here)
        method, path, body, _ = spine.calls[0]
        assert spine.calls[1][:2] == ("GET", "/summary-care-record/FHIR/R4/Bundle")  # then the read
        assert path.endswith("/AuditEvent") and body["type"]["code"] == expected_type
        assert body["subtype"][0]["code"] == "3" and body["outcomeDesc"] == "Court order 123"
    with pytest.raises(ValueError):
        scr.open_under_legal_override(NHS, "scr-1", 5, "not a legal basis", registered_here=True)
