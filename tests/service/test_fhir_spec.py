"""NHS's PDS OpenAPI specification as JSON Schemas for the other tests, and checks that it is there and sound.

The specification is multi-file YAML, vendored unmodified under ``tests/specs/pds/`` (see its ``SOURCE.md``); it
is part of the repository, so these tests never skip. Its files are read with PyYAML (``yaml.safe_load``);
``schema("Patient.yaml")`` returns a schema with every relative ``$ref`` inlined (examples left out), ready for
``jsonschema``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SPEC_DIR = Path(__file__).resolve().parents[1] / "specs" / "pds" / "specification"
SCHEMAS = SPEC_DIR / "components" / "schemas"


@cache
def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _inline(node: Any, base: Path, seen: tuple[Path, ...] = ()) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target = (base / node["$ref"].split("#", 1)[0]).resolve()
            if target in seen:
                return {}
            return _inline(_load(target), target.parent, (*seen, target))
        return {k: _inline(v, base, seen) for k, v in node.items() if k not in ("example", "examples")}
    if isinstance(node, list):
        return [_inline(v, base, seen) for v in node]
    return node


@cache
def _schema_json(name: str) -> str:
    path = (SCHEMAS / name).resolve()
    return json.dumps(_inline(_load(path), path.parent, (path,)))


def schema(name: str) -> dict[str, Any]:
    """A specification schema (``"Patient.yaml"``, ``"OperationOutcome.yaml"``, ...) with $refs inlined."""
    return json.loads(_schema_json(name))


def validator(name: str) -> Any:
    import jsonschema

    return jsonschema.Draft7Validator(schema(name), format_checker=jsonschema.FormatChecker())


def assert_valid(instance: Any, name: str) -> None:
    errors = sorted(validator(name).iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


# --- the loader and the vendored specification -----------------------------------------------------------------


def test_the_vendored_specification_is_present() -> None:
    vendored = SPEC_DIR.parent
    assert (SPEC_DIR / "personal-demographics.yaml").is_file(), f"PDS specification missing from {vendored}"
    assert SCHEMAS.is_dir() and (SPEC_DIR / "components" / "examples").is_dir()
    assert (vendored / "LICENSE").is_file() and (vendored / "SOURCE.md").is_file()


def test_spec_schemas_load_and_are_valid_json_schemas() -> None:
    import jsonschema

    for name in ("Patient.yaml", "PatientSearch.yaml", "OperationOutcome.yaml", "JsonPatch.yaml"):
        jsonschema.Draft7Validator.check_schema(schema(name))
    patient = schema("Patient.yaml")
    assert patient["required"] == ["id"] and patient["additionalProperties"] is False
    assert patient["properties"]["id"]["pattern"] == "^\\d{10}$"
    assert schema("OperationOutcome.yaml")["properties"]["issue"]["items"]["properties"]["code"]["enum"][14] == \
        "multiple-matches"


def test_spec_patch_examples_parse() -> None:
    folder = SPEC_DIR / "components" / "examples" / "requests" / "PatientPatch"
    bodies = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    assert bodies["update-gender"] == {"patches": [{"op": "replace", "path": "/gender", "value": "male"}]}
    assert all(isinstance(b["patches"], list) for b in bodies.values())
