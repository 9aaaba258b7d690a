"""The WES spec as data: the shipped file and schema, and clear errors that name the file and the field."""

from __future__ import annotations

import json
import shutil
import tomllib

import jsonschema
import pytest

from wes import schema
from wes.errors import SpecError
from wes.spec import (
    PLACEHOLDER,
    SCHEMA_FILE,
    SPEC_DIR,
    CardFamily,
    available_versions,
    load_schema,
    load_spec,
)

SHIPPED = SPEC_DIR / "2026.1.toml"


def shipped_doc() -> dict:
    return schema.jsonable(tomllib.loads(SHIPPED.read_text(encoding="utf-8")))


def test_schemas_are_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(load_schema())
    jsonschema.Draft202012Validator.check_schema(json.loads((SPEC_DIR / "waivers.schema.json").read_text()))
    jsonschema.Draft202012Validator.check_schema(json.loads((SPEC_DIR.parent / "report" / "schema.json").read_text()))


def test_shipped_spec_loads_and_validates_with_the_full_validator_too():
    spec = load_spec()
    assert spec.version == "2026.1" and available_versions() == ["2026.1"]
    jsonschema.Draft202012Validator(load_schema(), format_checker=jsonschema.FormatChecker()).validate(shipped_doc())
    assert spec.thresholds.certificate_renewal_days == 90
    assert {"TLSv1", "TLSv1.1"} <= set(spec.tls.refused)


def test_no_fingerprint_is_invented():
    """NHS G2 fingerprints are placeholders for IT until filled in; the training root's is computed at run time."""
    spec = load_spec()
    nhs = [a for a in spec.anchors if a.id.startswith("nhs-")]
    assert nhs and all(a.sha256 == PLACEHOLDER and a.fingerprint is None for a in nhs)
    training = [a for a in spec.anchors if "training" in a.modes]
    assert [a.from_training_ca for a in training] == [True]


def test_card_family_atr_patterns():
    family = CardFamily("x", "3B 8C .. 80")
    assert family.matches(bytes.fromhex("3B8C0180")) and family.matches(bytes.fromhex("3B8CFF80"))
    assert not family.matches(bytes.fromhex("3B8C01")) and not family.matches(bytes.fromhex("3B8D0180"))


def _edited(tmp_path, change) -> SpecError:
    doc = tomllib.loads(SHIPPED.read_text(encoding="utf-8"))
    change(doc)
    # write back as TOML via a minimal emitter: the spec only holds tables, arrays of tables, scalars and lists
    (tmp_path / "2026.1.toml").write_text(_toml(doc), encoding="utf-8")
    with pytest.raises(SpecError) as err:
        load_spec("2026.1", directory=tmp_path)
    return err.value


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return json.dumps(v)


def _toml(doc: dict, prefix: str = "") -> str:
    lines, tables = [], []
    for k, v in doc.items():
        key = k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)
        if isinstance(v, dict):
            tables.append((key, v))
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for item in v:
                tables.append(("[" + key + "]", item))
        else:
            lines.append(f"{key} = {_toml_value(v)}")
    out = "\n".join(lines) + "\n"
    for key, table in tables:
        name = f"[{prefix}{key}]" if not key.startswith("[") else f"[[{prefix}{key[1:-1]}]]"
        sub_prefix = f"{prefix}{key}." if not key.startswith("[") else ""
        out += f"\n{name}\n" + _toml(table, sub_prefix)
    return out


def test_the_emitter_round_trips(tmp_path):
    (tmp_path / "2026.1.toml").write_text(_toml(tomllib.loads(SHIPPED.read_text())), encoding="utf-8")
    assert load_spec("2026.1", directory=tmp_path).checks == load_spec().checks


@pytest.mark.parametrize(("change", "field", "words"), [
    (lambda d: d.pop("tls"), "tls", "required"),
    (lambda d: d["thresholds"].update(certificate_renewal_days="ninety"), "thresholds.certificate_renewal_days",
     "must be integer"),
    (lambda d: d["os"][3].update(end_of_support="2026-13-01"), "os[3].end_of_support", "not a date"),
    (lambda d: d["os"][0].update(edition="Pro"), "os[0].edition", "not a known field"),
    (lambda d: d["checks"]["card.cert"].update(severity="fatal"), 'checks."card.cert".severity', "one of"),
    (lambda d: d["anchors"][0].update(sha256="AB:CD"), "anchors[0].sha256", "expected form"),
    (lambda d: d["card_families"][0].update(atr="3B 8"), "card_families[0].atr", "expected form"),
    (lambda d: d["tls"].update(accepted=[]), "tls.accepted", "at least 1"),
    (lambda d: d.update(spec_version="2026.2"), "spec_version", "named 2026.1.toml"),
])
def test_errors_name_the_file_and_the_field(tmp_path, change, field, words):
    error = _edited(tmp_path, change)
    assert error.file == str(tmp_path / "2026.1.toml") and error.field == field, str(error)
    assert words in error.problem and str(tmp_path / "2026.1.toml") in str(error)


def test_invalid_toml_and_missing_versions(tmp_path):
    (tmp_path / "2026.1.toml").write_text("spec_version = ", encoding="utf-8")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(directory=tmp_path)
    with pytest.raises(SpecError, match=r"installed: 2026\.1"):
        load_spec("2025.9", directory=tmp_path)
    with pytest.raises(SpecError, match="no WES specification file"):
        load_spec(directory=tmp_path / "empty")


def test_newest_version_is_the_default(tmp_path):
    for v in ("2026.1", "2026.2", "2026.10"):
        text = SHIPPED.read_text(encoding="utf-8").replace('spec_version = "2026.1"', f'spec_version = "{v}"')
        (tmp_path / f"{v}.toml").write_text(text, encoding="utf-8")
    assert available_versions(tmp_path) == ["2026.1", "2026.2", "2026.10"]
    assert load_spec(directory=tmp_path).version == "2026.10"


@pytest.mark.parametrize("change", [
    lambda d: d.update(extra=1),
    lambda d: d["timeouts"].update(check_seconds=0),
    lambda d: d["client"].update(card_removal=["lock", "lock"]),
    lambda d: d["client"].update(python=["3"]),
    lambda d: d["anchors"][0].update(modes=[]),
    lambda d: d["anchors"][0].update(role=True),
    lambda d: d["checks"].update({"Bad ID": d["checks"]["tls"]}),
    lambda d: d["os"].append({"platform": "beos", "name": "x", "version": "5"}),
    lambda d: d.update(reviewed="yesterday"),
])
def test_the_small_validator_agrees_with_jsonschema(change):
    doc = shipped_doc()
    change(doc)
    full = jsonschema.Draft202012Validator(load_schema(), format_checker=jsonschema.FormatChecker())
    assert list(full.iter_errors(doc)), "the full validator should reject this too"
    assert schema.errors(doc, load_schema())


def test_a_copied_spec_directory_works(tmp_path):
    shutil.copy(SHIPPED, tmp_path / "2026.1.toml")
    shutil.copy(SCHEMA_FILE, tmp_path / "schema.json")
    assert load_spec(directory=tmp_path).version == "2026.1"
