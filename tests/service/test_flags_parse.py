"""The flags rules without a server: parsing and validating bodies, searches and removals; rendering; the IG's
own examples round-tripped; conformance of what the service writes; the withheld view carries no content."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from app.service.core.outcome import FhirError
from app.service.flags import codes as fc
from app.service.flags import fhir
from app.service.flags.model import Recorder, Removal
from app.service.flags.parse import parse_flag, parse_removal, parse_search

from .flags_helpers import (
    BSL,
    CODES,
    EASYREAD,
    adjustment,
    check_conformance,
    consent,
    flag_body,
    ig_examples,
    ig_patient_flag,
    impairment,
    removal,
)

WHO = Recorder("u1", "Dr Test", "S8000:G8000:R8000", "Clinical Practitioner Access Role", "A81001",
               "Training Surgery", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))


def render(body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    nhs, content = parse_flag(body, CODES)
    return fhir.render_flag(flag_id="f-1", nhs=nhs, version=kw.pop("version", 1), content=content, recorder=WHO,
                            activity=kw.pop("activity", "CREATE"), created=WHO.at, codes=CODES, **kw)


def error_of(body: object, **kw: Any) -> FhirError:
    with pytest.raises(FhirError) as caught:
        parse_flag(body, CODES, **kw)
    return caught.value


def test_a_full_record_parses_and_renders_conformant() -> None:
    out = render(flag_body(notes="Prefers mornings"))
    assert check_conformance(out) == []
    kinds = [c["resourceType"] for c in out["contained"]]
    assert kinds == ["Provenance", "Consent", "Condition", "Condition", "Flag", "Flag"]
    assert out["contained"][4]["code"]["coding"][0] == {"system": fc.SNOMED, "code": BSL,
                                                        "display": CODES.adjustment.codes[BSL]}
    provenance = out["contained"][0]
    assert provenance["agent"][0]["who"]["identifier"]["value"] == "u1"
    assert provenance["agent"][0]["onBehalfOf"]["identifier"]["value"] == "A81001"
    assert provenance["recorded"] == "2026-01-02T03:04:05+00:00"


def test_our_output_parses_back_to_the_same_content() -> None:
    body = flag_body(contained=[consent("002", summary="Best-interest meeting"), impairment("10", note="Pain"),
                                adjustment("011", text="Quiet room", note="ask first"),
                                adjustment("011", "73618009", note="x")], notes="n")
    first = render(body)
    assert parse_flag(first, CODES) == parse_flag(body, CODES)
    assert render(first) == first


def test_the_igs_example_record_round_trips() -> None:
    """NHS's own example RA record (PatientFlag, Consent, two Conditions, two adjustment Flags) is accepted, and
    every coded fact and note in it comes back out, conformant."""
    ex = ig_examples()
    out = render(ig_patient_flag())
    assert check_conformance(out) == []
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for c in out["contained"]:
        by_kind.setdefault(c["resourceType"], []).append(c)
    assert by_kind["Consent"][0]["policyRule"] == {"coding": [CODES.proxy_role.coding("001")]}
    assert by_kind["Consent"][0]["provision"]["purpose"][0]["code"] == "RACONSENT"
    assert by_kind["Consent"][0]["extension"][0]["valueAnnotation"]["text"] == \
        ex["RAConsentExample1"]["extension"][0]["valueAnnotation"]["text"]
    assert [c["code"]["coding"][0]["code"] for c in by_kind["Condition"]] == ["5", "9"]
    adjustments = [(c["category"][1]["coding"][0]["code"], c["code"]["coding"][0]["code"],
                    c["extension"][0]["valueAnnotation"]["text"]) for c in by_kind["Flag"]]
    assert adjustments == [(ex[n]["category"][1]["coding"][0]["code"], ex[n]["code"]["coding"][0]["code"],
                            ex[n]["extension"][0]["valueAnnotation"]["text"]) for n in ("RAFlagExample1",
                                                                                        "RAFlagExample2")]
    notes = [e for e in out["extension"] if e["url"] == fc.EXT_FLAG_NOTES]
    assert notes[0]["valueAnnotation"] == ex["RAPatientFlagExample1"]["extension"][0]["valueAnnotation"]


def test_the_igs_detail_examples_each_parse() -> None:
    ex = ig_examples()
    for name in ("RAConditionExample1", "RAConditionExample2", "RAFlagExample1", "RAFlagExample2"):
        body = flag_body(contained=[consent(), ex[name]])
        assert check_conformance(render(body)) == [], name


def test_removal_renders_status_period_reason_and_keeps_content() -> None:
    for reason, status, activity in (("DoesntApply", "inactive", "DELETE"), ("Error", "entered-in-error",
                                                                                 "NULLIFY")):
        out = render(flag_body(), version=2, activity=activity, removal=Removal(reason, "why"))
        assert check_conformance(out) == [], reason
        assert out["status"] == status and out["period"]["end"]
        assert {c["status"] for c in out["contained"] if c["resourceType"] in ("Consent", "Flag")} == {status}
        ext = next(e for e in out["extension"] if e["url"] == fc.EXT_REMOVAL)
        assert ext["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == reason
        assert out["contained"][0]["activity"]["coding"][0]["code"] == activity
        assert len([c for c in out["contained"] if c["resourceType"] == "Condition"]) == 2


def test_withheld_view_says_it_exists_and_nothing_more() -> None:
    full = render(flag_body(notes="Secret clinical note"))
    out = fhir.withheld_view(full)
    text = json.dumps(out)
    for secret in ("Secret clinical note", BSL, EASYREAD, "RACONSENT", CODES.impairment.system, "Consent",
                   "Condition", fc.EXT_FLAG_DETAIL):
        assert secret not in text
    assert out["meta"]["security"] == [fhir.REDACTED] and "withheld" in out["text"]["div"]
    assert out["status"] == "active" and out["code"] == full["code"] and out["subject"] == full["subject"]
    assert [c["resourceType"] for c in out["contained"]] == ["Provenance"]
    assert fhir.is_withheld(out) and not fhir.is_withheld(full)
    assert "security" not in full["meta"], "the stored resource must not be changed by the view"


# --- validation -------------------------------------------------------------------------------------------------


def _without(body: dict[str, Any], kind: str) -> dict[str, Any]:
    body = copy.deepcopy(body)
    body["contained"] = [c for c in body["contained"] if c["resourceType"] != kind]
    return body


BAD = {
    "not-a-flag": ({"resourceType": "Patient"}, "INVALID_VALUE", "Flag.resourceType"),
    "a-list": ([1, 2], "INVALID_VALUE", "Flag.resourceType"),
    "unknown-element": ({**flag_body(), "pets": 1}, "ADDITIONAL_PROPERTIES", None),
    "no-consent": (_without(flag_body(), "Consent"), "MISSING_VALUE", "Flag.contained.Consent"),
    "two-consents": (flag_body(contained=[consent(), consent()]), "TOO_MANY_VALUES_SUBMITTED", None),
    "unknown-proxy-role": (flag_body(contained=[consent("009")]), "INVALID_VALUE", None),
    "dissent": (flag_body(contained=[consent(purpose="RADISSENT")]), "INVALID_VALUE", None),
    "revoked": (flag_body(contained=[consent(purpose="RAREVOKED")]), "INVALID_VALUE", None),
    "best-interest-without-summary": (flag_body(contained=[consent("002")]), "MISSING_VALUE", None),
    "unknown-impairment": (flag_body(contained=[consent(), impairment("11")]), "INVALID_VALUE", None),
    "other-without-description": (flag_body(contained=[consent(), impairment("10")]), "MISSING_VALUE", None),
    "prefer-not-to-say-and-more": (flag_body(contained=[consent(), impairment("12"), impairment("1")]),
                                   "INVALID_VALUE", None),
    "same-group-twice": (flag_body(contained=[consent(), impairment("1"), impairment("1")]), "INVALID_VALUE", None),
    "unknown-adjustment-category": (flag_body(contained=[consent(), adjustment("012", BSL)]), "INVALID_VALUE",
                                    None),
    "adjustment-not-in-value-set": (flag_body(contained=[consent(), adjustment("001", "73618009")]),
                                    "INVALID_VALUE", None),
    "adjustment-without-code": (flag_body(contained=[consent(), adjustment("001")]), "MISSING_VALUE", None),
    "bespoke-not-snomed": (flag_body(contained=[consent(), adjustment("011", "abc")]), "INVALID_VALUE", None),
    "invalid-nhs-number": (flag_body("9000000000"), "INVALID_RESOURCE_ID", None),
    "no-subject": ({k: v for k, v in flag_body().items() if k != "subject"}, "MISSING_VALUE", None),
    "other-system-subject": ({**flag_body(), "subject": {"identifier": {"system": "x", "value": "9000000009"}}},
                             "INVALID_VALUE", None),
    "inactive-status": ({**flag_body(), "status": "inactive"}, "INVALID_VALUE", "Flag.status"),
    "cp-is-flag": ({**flag_body(), "code": {"coding": [{"system": fc.CATEGORY_SYSTEM, "code": "CP-IS"}]}},
                   "INVALID_VALUE", None),
    "unknown-category": ({**flag_body(), "category": [{"coding": [{"system": fc.CATEGORY_SYSTEM, "code": "X"}]}]},
                         "INVALID_VALUE", None),
    "contained-patient": (flag_body(contained=[consent(), {"resourceType": "Patient"}]), "INVALID_VALUE", None),
    "unknown-extension": ({**flag_body(), "extension": [{"url": "http://x"}]}, "INVALID_VALUE", None),
    "note-too-long": (flag_body(notes="x" * 1001), "INVALID_VALUE", None),
    "codings-not-a-list": (flag_body(contained=[consent(), {"resourceType": "Condition", "code": {"coding": 5}}]),
                           "INVALID_VALUE", None),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_invalid_bodies_are_refused_with_a_clear_outcome(case: str) -> None:
    body, code, expression = BAD[case]
    error = error_of(body)
    assert error.spine_code == code and error.status == 400, (case, error)
    outcome = error.to_outcome()
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == code
    assert error.diagnostics and len(error.diagnostics) > 20, "the text must say what to do"
    if expression:
        assert error.expression == expression


def test_put_body_id_must_match_the_url() -> None:
    assert error_of({**flag_body(), "id": "other"}, flag_id="mine").spine_code == "INVALID_VALUE"
    assert parse_flag({**flag_body(), "id": "mine"}, CODES, flag_id="mine")[0] == "9000000009"


def test_the_igs_https_snomed_system_is_accepted_and_normalised() -> None:
    body = flag_body(contained=[consent(), adjustment("002", BSL)])
    body["contained"][1]["code"]["coding"][0]["system"] = "https://snomed.info/sct"
    assert render(body)["contained"][2]["code"]["coding"][0]["system"] == fc.SNOMED


# --- search and removal parameters --------------------------------------------------------------------------


def q(**params: str | list[str]) -> dict[str, list[str]]:
    return {k: v if isinstance(v, list) else [v] for k, v in params.items()}


def test_search_parameters() -> None:
    s = parse_search(q(patient="https://fhir.nhs.uk/Id/nhs-number|9000000009", status="active,inactive",
                       category=f"{fc.CATEGORY_SYSTEM}|NRAF", _include="Flag:detail"), CODES)
    assert (s.nhs_number, s.statuses, s.nraf) == ("9000000009", ("active", "inactive"), True)
    assert parse_search(q(patient="9000000009", category="FGM"), CODES).nraf is False
    assert parse_search(q(patient="9000000009", code="NRAF,FGM"), CODES).nraf is True
    assert parse_search(q(patient="9000000009", category=f"{fc.LEGACY_CATEGORY_SYSTEM}|NRAF"), CODES).nraf
    assert parse_search(q(patient="9000000009"), CODES).statuses is None


@pytest.mark.parametrize(("params", "code"), [
    ({}, "MISSING_VALUE"), (q(patient="9000000000"), "INVALID_RESOURCE_ID"), (q(patient="x|9000000009"),
                                                                               "INVALID_RESOURCE_ID"),
    (q(patient="9000000009", pets="1"), "ADDITIONAL_PROPERTIES"),
    (q(patient=["9000000009", "9000000017"]), "INVALID_SEARCH_DATA"),
    (q(patient="9000000009", status="deleted"), "INVALID_SEARCH_DATA"),
    (q(patient="9000000009", category="XYZ"), "INVALID_SEARCH_DATA"),
    (q(patient="9000000009", _include="Flag:subject"), "INVALID_SEARCH_DATA"),
])
def test_bad_searches(params: dict[str, list[str]], code: str) -> None:
    with pytest.raises(FhirError) as caught:
        parse_search(params, CODES)
    assert caught.value.spine_code == code and caught.value.status == 400


def test_removal_parameters() -> None:
    assert parse_removal(removal(), CODES) == ("9000000009", Removal("DoesntApply", "No longer applies"))
    flat = {"resourceType": "Parameters", "parameter": removal(reason="Error")["parameter"][0]["part"]}
    assert parse_removal(flat, CODES)[1].status == "entered-in-error"
    for bad, code in ((removal(reason="Bored"), "INVALID_VALUE"), (removal(nhs="9000000000"), "INVALID_RESOURCE_ID"),
                      ({"resourceType": "Flag"}, "INVALID_VALUE"), (removal(comment=""), "INVALID_VALUE")):
        with pytest.raises(FhirError) as caught:
            parse_removal(bad, CODES)
        assert caught.value.spine_code == code
    no_reason = removal()
    del no_reason["parameter"][0]["part"][1]
    with pytest.raises(FhirError) as caught:
        parse_removal(no_reason, CODES)
    assert caught.value.spine_code == "MISSING_VALUE"
