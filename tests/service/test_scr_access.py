"""The SCR access rules and request parsing (pure domain, no I/O)."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest

from app.nhs_number import is_valid
from app.service.scr.access import (
    AlertClaim,
    Episode,
    check_alert_allowed,
    decide_consent,
    decide_view,
    effective_consent,
    officer_alert_types,
    parse_alert,
)
from app.service.scr.fhir import ScrError
from app.service.scr.requests import (
    check_content_type,
    parse_bundle_query,
    parse_document_reference,
    parse_permission,
    parse_upload,
)
from app.service.scr.store import ScrGrant

from .scr_world import SCR_EXAMPLES, alert_body, permission_body

EXAMPLES = SCR_EXAMPLES  # NHS's SCR examples, vendored in the repository
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_consent_yes_is_ask_and_nothing_recorded_is_ask():
    assert [effective_consent(c) for c in ("Yes", "Ask", None, "No")] == ["Ask", "Ask", "Ask", "No"]


def g(kind: str, granted: bool = True) -> ScrGrant:
    return ScrGrant("u", "r", "9000000009", kind, granted, "", "q", NOW, NOW)


CASES = [  # consent, gp, episode grants, expected basis or denial reason
    ("Ask", "A1", [], "no-permission"),
    ("Ask", "A1", [g("ptv")], "permission"),
    ("Yes", "A1", [g("ptv")], "permission"),
    ("Ask", "B2", [g("ptv")], "no-relationship"),
    ("Ask", "B2", [g("lr"), g("ptv")], "permission"),
    ("Ask", None, [g("lr"), g("emergency")], "emergency"),
    ("Ask", "A1", [g("ptv", False)], "permission-refused"),
    ("Ask", "A1", [g("ptv", False), g("emergency")], "permission-refused"),
    ("Ask", "A1", [g("ptv", False), g("legal")], "legal-override"),
    ("No", "A1", [g("ptv"), g("emergency"), g("legal")], "opted-out"),
    (None, "a1", [g("emergency")], "emergency"),
]


@pytest.mark.parametrize(("consent", "gp", "grants", "expected"), CASES)
def test_view_decision_table(consent, gp, grants, expected):
    try:
        access = decide_view(consent=consent, role_org="A1", gp_ods=gp, episode=Episode.of(grants))
    except ScrError as exc:
        assert exc.status == 403 and exc.reason == expected, exc.text
        return
    assert access.basis == expected


@pytest.mark.parametrize(("gp", "grants", "expected"), [
    ("A1", [], "registered-practice"), ("a1", [], "registered-practice"),
    ("B2", [g("lr")], "self-claimed"), (None, [g("lr")], "self-claimed"),
    ("B2", [], "no-relationship"), (None, [], "no-relationship"),
    ("B2", [g("ptv"), g("emergency"), g("legal")], "no-relationship"),  # permission or overrides: no relationship
])
def test_consent_decision_needs_the_relationship_the_viewing_rules_use(gp, grants, expected):
    try:
        assert decide_consent(role_org="A1", gp_ods=gp, episode=Episode.of(grants)) == expected
    except ScrError as exc:
        assert (exc.status, exc.reason) == (403, expected), exc.text
        assert "(A1)" in exc.text and (gp is None or gp not in exc.text)  # never names the patient's practice


def test_an_episode_remembers_the_alert_its_self_claim_raised():
    claimed = ScrGrant("u", "r", "9000000009", "lr", True, "", "q", NOW, NOW, alert_id="ALERT-1")
    assert Episode.of([claimed, g("ptv")]).claim_alert == "ALERT-1"
    assert Episode.of([g("ptv")]).claim_alert is None


@pytest.mark.parametrize(("alert_type", "subtype"), [(1, 5), (2, 4), (2, 6)])
def test_not_permitted_alert_combinations_are_rejected(alert_type, subtype):
    with pytest.raises(ScrError, match="not a permitted combination"):
        parse_alert(alert_body("9000000009", alert_type, subtype, "why"), is_valid)


@pytest.mark.parametrize(("alert_type", "subtype", "grants", "activity"), [
    (1, 1, ("lr", "legal"), "B0082"), (1, 4, ("lr", "emergency"), "B0168"), (1, 6, ("lr",), "B0370"),
    (2, 3, ("legal",), "B0082"), (2, 5, ("emergency",), "B0168")])
def test_permitted_alerts_grant_and_need(alert_type, subtype, grants, activity):
    claim = parse_alert(alert_body("9000000009", alert_type, subtype, " why "), is_valid)
    assert (claim.grants, claim.activity, claim.reason) == (grants, activity, "why")


def test_overrides_need_a_reason_but_a_plain_self_claim_does_not():
    for reason in (None, "", "   "):
        with pytest.raises(ScrError, match="reason is required"):
            parse_alert(alert_body("9000000009", 2, 5, reason), is_valid)
    assert parse_alert(alert_body("9000000009", 1, 6, None), is_valid).reason == ""


def test_the_specifications_own_alert_example_parses():
    claim = parse_alert(json.loads((EXAMPLES / "AuditEvent.json").read_text()), is_valid)
    assert (claim.nhs_number, claim.alert_type, claim.subtype) == ("9000000009", 1, 1)


@pytest.mark.parametrize("body", [None, [], {"resourceType": "Patient"}, {"resourceType": "AuditEvent"},
                                  {**alert_body("9000000009", 2, 5, "x"), "subtype": []},
                                  {**alert_body("9000000009", 2, 5, "x"), "type": {"code": "9"}},
                                  alert_body("9000000000", 2, 5, "x")])
def test_malformed_alerts_are_400(body):
    with pytest.raises(ScrError) as exc:
        parse_alert(body, is_valid)
    assert exc.value.status == 400


def test_alert_permission_checks():
    claim = AlertClaim("9000000009", 2, 5, "why")
    with pytest.raises(ScrError, match="B0168"):
        check_alert_allowed(claim, {"B0370"}, consent=None, role_org="A1", gp_ods="A1", episode=Episode())
    with pytest.raises(ScrError, match="relationship"):
        check_alert_allowed(claim, {"B0370", "B0168"}, consent=None, role_org="A1", gp_ods="B2", episode=Episode())
    with pytest.raises(ScrError, match="opted out"):
        check_alert_allowed(claim, {"B0370", "B0168"}, consent="No", role_org="A1", gp_ods="A1", episode=Episode())
    check_alert_allowed(claim, {"B0370", "B0168"}, consent="Yes", role_org="A1", gp_ods="A1", episode=Episode())
    check_alert_allowed(AlertClaim("9000000009", 1, 4, "why"), {"B0370", "B0168"}, consent=None, role_org="A1",
                        gp_ods="B2", episode=Episode())


def test_officer_alert_types():
    assert officer_alert_types({"B0015"}) == (1, 2)
    assert officer_alert_types({"B0016"}) == (1,)
    assert officer_alert_types({"B0370"}) == ()


def test_query_parameters():
    nhs = "https://fhir.nhs.uk/Id/nhs-number|9000000009"
    assert parse_document_reference({"patient": [nhs], "type": ["http://snomed.info/sct|196981000000101"],
                                     "_sort": ["date"], "_count": ["1"]}) == "9000000009"
    for bad in ({}, {"patient": ["9000000009"]}, {"patient": [nhs], "_count": ["2"]}, {"patient": [nhs, nhs]},
                {"patient": [nhs], "_sort": ["name"]}, {"patient": [nhs], "type": ["x|1"]},
                {"patient": ["https://fhir.nhs.uk/Id/nhs-number|9000000000"]}, {"patient": [nhs], "x": ["1"]}):
        with pytest.raises(ScrError):
            parse_document_reference(bad)
    scr = "fa60be64-1f34-11eb-a2a8-000c29a364eb"
    assert parse_bundle_query({"composition.identifier": [scr], "composition.subject:Patient.identifier": [nhs]}) \
        == (scr.upper(), "9000000009")
    with pytest.raises(ScrError):
        parse_bundle_query({"composition.identifier": ["INVALID ID"], "composition.subject:Patient.identifier": [nhs]})


def test_permission_bodies():
    example = json.loads((EXAMPLES / "SetPermission.json").read_text())
    assert parse_permission(example).kind == "setPermissions"
    assert parse_permission(permission_body("9000000009", "No")).code == "No"
    for bad in (permission_body("9000000009", "Ask"), permission_body("9000000009", "Maybe"),
                permission_body("9000000000", "Yes"), permission_body("9000000009", "Yes", "other"),
                {"resourceType": "Parameters"}, "text"):
        with pytest.raises(ScrError):
            parse_permission(bad)


def test_the_specifications_upload_example_parses_and_broken_ones_do_not():
    example = json.loads((EXAMPLES / "UploadScrBundle.json").read_text())
    upload = parse_upload(example)
    assert (upload.nhs_number, upload.scr_id, upload.replaces) == (
        "9000000009", "BF4180FD-C403-4EF7-A4AB-E07303AF5477", "D18B57ED-992E-45A2-A6AF-55200D20F48E")
    no_composition = {**example, "entry": [e for e in example["entry"]
                                           if e["resource"]["resourceType"] != "Composition"]}
    for bad in ({**example, "type": "collection"}, {**example, "entry": []}, no_composition,
                {k: v for k, v in example.items() if k != "timestamp"}):
        with pytest.raises(ScrError):
            parse_upload(bad)


def test_content_type():
    check_content_type("application/fhir+json; charset=utf-8")
    for bad in (None, "", "application/json", "text/plain"):
        with pytest.raises(ScrError) as exc:
            check_content_type(bad)
        assert exc.value.status == 415 and exc.value.issue_code == "not-supported"


def test_seeded_content_is_plausible():
    """Nobody is prescribed what they are allergic to or reacted to; every code comes from the reference set;
    every record has the core sections."""
    from app.service.pds.seed import generate_patients
    from app.service.scr.seed import document_for, reference_set

    ref = reference_set()
    known = {i["code"] for k in ("allergies", "adverse_reactions", "problems", "procedures", "immunisations",
                                 "end_of_life", "communication") for i in ref[k]} | {ref["no_known_allergy"]["code"]}
    known |= {i["substance"].get("code") for k in ("allergies", "adverse_reactions", "medications") for i in ref[k]}
    penicillins = {"372687004"}  # amoxicillin
    rows = [r for chunk in generate_patients(400, seed=5) for r in chunk if not r.superseded_by]
    for row in rows[:400]:
        bundle = document_for(row, 5).bundle
        resources = [e["resource"] for e in bundle["entry"]]
        allergy_substances = {a["reaction"][0]["substance"]["coding"][0]["code"] for a in resources
                              if a["resourceType"] == "AllergyIntolerance" and "reaction" in a
                              and a["reaction"][0]["substance"].get("coding")}
        allergy_codes = {a["code"]["coding"][0]["code"] for a in resources if a["resourceType"] == "AllergyIntolerance"}
        meds = {m["medicationCodeableConcept"]["coding"][0]["code"] for m in resources
                if m["resourceType"] == "MedicationStatement"}
        assert not meds & allergy_substances, (row.nhs_number, meds, allergy_substances)
        if allergy_codes & {"91936005", "294505008"}:
            assert not meds & penicillins
        codes = {c["code"] for r in resources for key in ("code", "vaccineCode") if isinstance(r.get(key), dict)
                 for c in r[key].get("coding", [])}
        assert codes <= known, codes - known
        sections = [s["code"]["coding"][0]["code"] for s in resources[0]["section"]]
        assert sections[:5] == ["Title", "AllergiesHeader", "AcuteMedsHeader", "RepeatMedsHeader",
                                "DiscRepeatMedsHeader"]


def test_any_json_is_a_400_never_a_crash():
    """Every parser answers arbitrary JSON (and near-miss bodies) with a ScrError, never another exception."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.just("9000000009")
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["resourceType", "type", "subtype", "agent", "who", "identifier", "system", "value",
                         "parameter", "part", "name", "valueString", "valueCoding", "code", "entry", "resource",
                         "relatesTo", "status", "outcomeDesc", "timestamp"]), inner, max_size=6), max_leaves=20)
    seeds = [alert_body("9000000009", 2, 5, "x"), permission_body("9000000009", "Yes"),
             json.loads((EXAMPLES / "UploadScrBundle.json").read_text())]

    def mutate(doc: object, path: list, new: object) -> object:
        if not path or not isinstance(doc, dict | list):
            return new
        key = path[0] % len(doc) if doc else 0
        if isinstance(doc, dict) and doc:
            k = list(doc)[key]
            return {**doc, k: mutate(doc[k], path[1:], new)}
        if isinstance(doc, list) and doc:
            return [*doc[:key], mutate(doc[key], path[1:], new), *doc[key + 1:]]
        return new

    @settings(max_examples=300, deadline=None, database=None)
    @given(values, st.sampled_from(range(3)), st.lists(st.integers(0, 50), max_size=6))
    def check(value, which, path):
        for body in (value, mutate(seeds[which], path, value)):
            for parse in (lambda b: parse_alert(b, is_valid), parse_permission, parse_upload):
                with contextlib.suppress(ScrError):
                    parse(body)

    check()


def test_bodies_nested_too_deep_are_refused_before_storage():
    from app.service.scr.requests import MAX_DEPTH, json_body

    assert json_body(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
    for depth in (MAX_DEPTH + 1, 300, 990):
        with pytest.raises(ScrError, match="nests"):
            json_body(b"[" * depth + b"]" * depth)


def test_lone_surrogates_are_refused():
    from app.service.scr.requests import json_body

    for raw in (b'{"outcomeDesc": "\\ud800"}', b'{"\\udfff": 1}', b'[["\\ud83d"]]'):
        with pytest.raises(ScrError, match="surrogate"):
            json_body(raw)
    assert json_body('{"a": "\\ud83d\\ude00 é"}'.encode()) == {"a": "\U0001F600 é"}
    for raw in (b'{"outcomeDesc": "a\\u0000b"}', b'{"\\u0000": 1}'):
        with pytest.raises(ScrError, match="NUL"):
            json_body(raw)
