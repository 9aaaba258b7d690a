"""NHS's PDS OpenAPI specification as JSON Schemas for the other tests, and checks of that loader.

The specification is multi-file YAML, vendored unmodified under ``tests/specs/pds/`` (see its ``SOURCE.md``); it
is part of the repository, so these tests never skip. The project has no YAML library, so ``load_yaml`` reads the
block-style subset the specification's schema files use (mappings, sequences, quoted and plain scalars,
``|``/``>`` blocks, ``[a, b]`` lists, comments). ``schema("Patient.yaml")`` returns
a schema with every relative ``$ref`` inlined, ready for ``jsonschema``.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

SPEC_DIR = Path(__file__).resolve().parents[1] / "specs" / "pds" / "specification"
SCHEMAS = SPEC_DIR / "components" / "schemas"


_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")


def _strip_comment(text: str) -> str:
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"" and (i == 0 or text[i - 1] in " :[,-"):
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
    return text.rstrip()


def _scalar(text: str) -> Any:
    text = text.strip()
    if not text:
        return None
    if text.startswith('"'):
        return json.loads(text.replace("\\/", "/"))
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    if text.startswith("["):
        return [_scalar(item) for item in _split_flow(text[1:-1])]
    if text in ("true", "True"):
        return True
    if text in ("false", "False"):
        return False
    if text in ("null", "~"):
        return None
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def _split_flow(text: str) -> list[str]:
    items, current, quote = [], "", None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == ",":
            items.append(current)
            current = ""
            continue
        current += ch
    if current.strip():
        items.append(current)
    return [item.strip() for item in items]


class _Reader:
    def __init__(self, text: str) -> None:
        self.raw = text.splitlines()
        self.i = 0

    def _next_content(self, start: int) -> int:
        i = start
        while i < len(self.raw) and not _strip_comment(self.raw[i]).strip():
            i += 1
        return i

    @staticmethod
    def _indent(line: str) -> int:
        return len(line) - len(line.lstrip(" "))

    def block(self, indent: int) -> Any:
        self.i = self._next_content(self.i)
        if self.i >= len(self.raw):
            return None
        line = _strip_comment(self.raw[self.i])
        if line.strip().startswith("- ") or line.strip() == "-":
            return self._sequence(self._indent(line))
        return self._mapping(self._indent(line))

    def _text_block(self, parent_indent: int, style: str) -> str:
        lines: list[str] = []
        block_indent = None
        while self.i < len(self.raw):
            line = self.raw[self.i]
            if line.strip() and self._indent(line) <= parent_indent:
                break
            if line.strip() and block_indent is None:
                block_indent = self._indent(line)
            lines.append(line[block_indent or 0:] if line.strip() else "")
            self.i += 1
        while lines and not lines[-1]:
            lines.pop()
        text = "\n".join(lines) if style.startswith("|") else " ".join(lines)
        return text if style.endswith("-") else text + "\n"

    def _value(self, rest: str, indent: int) -> Any:
        rest = _strip_comment(rest).strip()
        if rest in ("|", "|-", ">", ">-", "|+", ">+"):
            return self._text_block(indent, rest.rstrip("+"))
        if rest:
            return _scalar(rest) if rest.startswith(("'", '"', "[")) else _scalar(self._plain(rest, indent))
        nxt = self._next_content(self.i)
        if nxt < len(self.raw):
            line = self.raw[nxt]
            deeper = self._indent(line) > indent
            same_level_list = self._indent(line) == indent and line.strip().startswith("-")
            if deeper and not re.match(r"\s*(- |-$|[^\s:][^:]*:(\s|$))", line):
                return _scalar(self._plain("", indent))  # a plain scalar starting on the next line
            if deeper or same_level_list:
                self.i = nxt
                return self.block(self._indent(line))
        return None

    def _plain(self, text: str, indent: int) -> str:
        """A plain scalar with its more-indented continuation lines, folded (a blank line becomes a newline)."""
        parts, pending_breaks = [text] if text else [], 0
        while self.i < len(self.raw):
            line = self.raw[self.i]
            if not line.strip():
                pending_breaks += 1
            elif self._indent(line) > indent:
                piece = _strip_comment(line).strip()
                if parts:
                    parts.append("\n" * pending_breaks if pending_breaks else " ")
                parts.append(piece)
                pending_breaks = 0
            else:
                break
            self.i += 1
        return "".join(parts)

    def _mapping(self, indent: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while True:
            self.i = self._next_content(self.i)
            if self.i >= len(self.raw):
                return result
            line = _strip_comment(self.raw[self.i])
            if self._indent(line) != indent or line.strip().startswith("- "):
                return result
            key, _, rest = line.strip().partition(":")
            self.i += 1
            result[_scalar(key) if key[:1] in "'\"" else key] = self._value(rest, indent)

    def _sequence(self, indent: int) -> list[Any]:
        items: list[Any] = []
        while True:
            self.i = self._next_content(self.i)
            if self.i >= len(self.raw):
                return items
            line = _strip_comment(self.raw[self.i])
            stripped = line.strip()
            if self._indent(line) != indent or not (stripped.startswith("- ") or stripped == "-"):
                return items
            body = stripped[1:].strip()
            if not body:
                self.i += 1
                items.append(self.block(indent + 1))
            elif re.match(r"""^("[^"]*"|'[^']*'|[^'"\[\s][^:]*):(\s|$)""", body) and not body.startswith("["):
                # "- key: value": a mapping whose first key sits on the dash line
                self.raw[self.i] = " " * (indent + 2) + body
                items.append(self._mapping(indent + 2))
            else:
                self.i += 1
                items.append(self._value(body, indent))


def load_yaml(text: str) -> Any:
    return _Reader(text).block(0)


@cache
def _load(path: Path) -> Any:
    return load_yaml(path.read_text(encoding="utf-8"))


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


# --- tests of the loader itself -------------------------------------------------------------------------------


def test_yaml_subset() -> None:
    text = """
# comment
a: 1
b: 'x: y'   # trailing
c: "q\\"d"
d: [one, 'two', 3]
e: |
  line one
  line two
f:
  - p: 1
    q: [x]
  - plain
g:
- 2.5
- true
h: >-
  folded
  text
"""
    assert load_yaml(text) == {"a": 1, "b": "x: y", "c": 'q"d', "d": ["one", "two", 3],
                               "e": "line one\nline two\n", "f": [{"p": 1, "q": ["x"]}, "plain"],
                               "g": [2.5, True], "h": "folded text"}


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
