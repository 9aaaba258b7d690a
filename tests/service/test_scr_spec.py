"""Conformance with NHS's SCR FHIR R4 specification: our responses and accepted requests validate against the
specification's own JSON schemas, on both stores. The specification is vendored unmodified under
``tests/specs/scr/`` (see its ``SOURCE.md``), so these tests never skip.

The schemas are read with PyYAML (``yaml.safe_load``) and ``$ref``-inlined as the PDS tests do. A few schema details
contradict both FHIR R4 and the specification's own examples; they are corrected before validating (``ERRATA``),
and a test proves the specification's examples validate against the corrected schemas — so the corrections are
exactly what the specification itself does, nothing looser.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.service.store import Store

from .scr_world import FULL, NO_RECORD, OPTED_OUT, SCR_EXAMPLES, SCR_SPEC_DIR, ScrWorld, scr_world

SPEC_DIR = SCR_SPEC_DIR
SCHEMAS = SPEC_DIR / "components" / "schemas"
EXAMPLES = SCR_EXAMPLES

ERRATA = """
* ``coding`` typed as one object (DocumentReference.securityLabel, Condition/Observation.category): FHIR and the
  specification's examples give an array of codings;
* ``clinicalStatus`` / ``verificationStatus`` typed as arrays: FHIR and the examples give one CodeableConcept;
* ``enum: [1, 2]`` on string codes (AuditEvent type/subtype): YAML reads the numbers as integers; the example
  sends "1".
"""


def _correct(node: Any, key: str = "") -> Any:
    if isinstance(node, list):
        return [_correct(v) for v in node]
    if not isinstance(node, dict):
        return node
    fixed = {k: _correct(v, k) for k, v in node.items()}
    if key == "coding" and fixed.get("type") == "object":
        fixed = {"type": "array", "items": fixed}
    if key in ("clinicalStatus", "verificationStatus") and fixed.get("type") == "array":
        fixed = fixed["items"]
    if fixed.get("type") == "string" and "enum" in fixed:
        fixed["enum"] = [str(v) for v in fixed["enum"]]
    return fixed


@cache
def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _inline(node: Any, base: Path, seen: tuple[Path, ...] = ()) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target = (base / node["$ref"].split("#", 1)[0]).resolve()
            return {} if target in seen else _inline(_load(target), target.parent, (*seen, target))
        return {k: _inline(v, base, seen) for k, v in node.items() if k not in ("example", "examples")}
    if isinstance(node, list):
        return [_inline(v, base, seen) for v in node]
    return node


@cache
def _schema_json(name: str) -> str:
    path = (SCHEMAS / name).resolve()
    return json.dumps(_correct(_inline(_load(path), path.parent, (path,))))


def validator(name: str) -> Any:
    import jsonschema

    return jsonschema.Draft7Validator(json.loads(_schema_json(name)))


def assert_valid(instance: Any, name: str) -> None:
    errors = sorted(validator(name).iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


# --- the corrected schemas are sound and the specification's own examples pass them --------------------------


def test_the_vendored_specification_is_present() -> None:
    vendored = SPEC_DIR.parent
    assert (SPEC_DIR / "summary-care-record.yaml").is_file(), f"SCR specification missing from {vendored}"
    assert SCHEMAS.is_dir() and EXAMPLES.is_dir()
    assert (vendored / "LICENSE").is_file() and (vendored / "SOURCE.md").is_file()


@pytest.mark.parametrize(("example", "schema"), [
    ("DocumentReferenceBundle.json", "DocumentReferenceBundle.yaml"), ("GetScrBundle.json", "GetScrBundle.yaml"),
    ("UploadScrBundle.json", "UploadBundle.yaml"), ("SetPermission.json", "Parameters.yaml"),
    ("AuditEvent.json", "AuditEvent.yaml")])
def test_spec_examples_validate_against_the_corrected_schemas(example: str, schema: str) -> None:
    import jsonschema

    jsonschema.Draft7Validator.check_schema(json.loads(_schema_json(schema)))
    assert_valid(json.loads((EXAMPLES / example).read_text()), schema)


def test_the_corrected_schemas_still_reject_what_the_spec_rejects() -> None:
    bad_ref = {"resourceType": "Bundle", "id": "x", "type": "searchset", "total": 1, "entry": [
        {"fullUrl": "u", "search": {"mode": "match"}, "resource": {"resourceType": "DocumentReference", "id": "d"}}]}
    assert list(validator("DocumentReferenceBundle.yaml").iter_errors({"resourceType": "Bundle"}))
    assert list(validator("DocumentReference.yaml").iter_errors(bad_ref["entry"][0]))
    assert list(validator("AuditEvent.yaml").iter_errors({**json.loads((EXAMPLES / "AuditEvent.json").read_text()),
                                                          "type": {"system": "s", "code": "3", "display": "d"}}))
    assert list(validator("OperationOutcome.yaml").iter_errors({"resourceType": "OperationOutcome", "issue": []}))


# --- our responses ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(shared_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScrWorld]:
    with scr_world(shared_store, tmp_path_factory.mktemp("pki")) as w:
        yield w


def test_document_reference_conforms(world: ScrWorld) -> None:
    body = world.index("scr-gp", FULL).json()
    assert_valid(body, "DocumentReferenceBundle.yaml")
    assert body["total"] == 1
    assert_valid(body["entry"][0], "DocumentReference.yaml")
    assert body["entry"][0]["resource"]["securityLabel"][0]["coding"][0]["code"] in ("Yes", "Ask")
    assert_valid(body["entry"][1], "PatientDocumentRefEntry.yaml")
    empty = world.index("scr-gp", NO_RECORD).json()
    assert_valid(empty, "DocumentReferenceBundle.yaml")
    assert (empty["total"], empty["entry"]) == (0, [])


def test_scr_bundle_conforms(world: ScrWorld) -> None:
    assert world.permission("scr-gp", FULL).status_code == 201
    response = world.read("scr-gp", FULL)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert_valid(body, "GetScrBundle.yaml")
    kinds = [e["resource"]["resourceType"] for e in body["entry"]]
    assert kinds.count("Composition") == 1 and "Patient" in kinds and body["total"] == len(body["entry"])
    composition = next(e for e in body["entry"] if e["resource"]["resourceType"] == "Composition")
    assert_valid(composition, "CompositionEntryGet.yaml")
    for entry in body["entry"]:
        schema = {"Patient": "PatientEntry.yaml", "Practitioner": "PractitionerEntry.yaml",
                  "PractitionerRole": "PractitionerRoleEntry.yaml", "Organization": "OrganizationEntry.yaml",
                  "Condition": "ConditionEntry.yaml"}.get(entry["resource"]["resourceType"])
        if schema:
            assert_valid(entry, schema)
    titles = [s["title"] for s in composition["resource"]["section"]]
    assert titles[:5] == ["General Practice Summary", "Allergies and Adverse Reactions",
                          "Acute Medications (For the 12 month period before the summary)",
                          "Current Repeat Medications",
                          "Discontinued Repeat Medications (For the 6 month period before the summary)"]
    stale = world.read("scr-gp", FULL, scr_id=str(uuid.uuid4())).json()
    assert_valid(stale, "GetScrBundle.yaml")
    assert (stale["total"], stale["entry"]) == (0, [])


def test_alert_we_return_conforms_and_our_upload_is_a_spec_upload(world: ScrWorld) -> None:
    response = world.alert("scr-ed", FULL, 1, 4)
    assert response.status_code == 201, response.text
    assert_valid(response.json(), "AuditEvent.yaml")
    queue = world.http.get(f"{world.base}/alerts", headers=world.headers("scr-po")).json()
    for entry in queue["entry"]:
        assert_valid(entry["resource"], "AuditEvent.yaml")
    stored = world.store.scr_record(FULL).latest.bundle  # seeded by the same builder uploads use
    assert_valid(stored, "UploadBundle.yaml")


@pytest.mark.parametrize("case", ["bad-nhs", "unsupported-param", "opted-out", "no-permission", "415", "401"])
def test_errors_conform(world: ScrWorld, case: str) -> None:
    if case == "bad-nhs":
        r = world.http.get(f"{world.base}/DocumentReference", params={"patient": "INVALID NHS NUMBER"},
                           headers=world.headers("scr-gp"))
    elif case == "unsupported-param":
        r = world.http.get(f"{world.base}/DocumentReference", params={
            "patient": f"https://fhir.nhs.uk/Id/nhs-number|{FULL}", "_count": "2"}, headers=world.headers("scr-gp"))
    elif case == "opted-out":
        r = world.read("scr-gp", OPTED_OUT)
    elif case == "no-permission":
        r = world.read("scr-view", FULL)
    elif case == "415":
        r = world.post("scr-gp", "/$setPermission", {}, content_type="text/plain")
    else:
        r = world.http.get(f"{world.base}/DocumentReference", params={"patient": FULL})
    expected = {"bad-nhs": 400, "unsupported-param": 400, "opted-out": 403, "no-permission": 403, "415": 415,
                "401": 401}[case]
    assert r.status_code == expected, r.text
    body = r.json()
    assert_valid(body, "OperationOutcome.yaml")
    issue = body["issue"][0]
    assert issue["details"]["text"] and issue["code"] == {400: "invalid", 403: "forbidden", 415: "not-supported",
                                                          401: "forbidden"}[expected]
