"""A small JSON Schema validator for the keywords the WES spec and waivers schemas use, and :func:`read_toml`, which
reads either TOML file for it.

The runtime must not depend on a validation library; the tests check the same documents with the full
``jsonschema`` package, so this subset and the real thing agree. Supported keywords: ``type``, ``properties``,
``required``, ``additionalProperties``, ``propertyNames``, ``items``, ``enum``, ``const``, ``pattern``,
``minimum``, ``maximum``, ``minLength``, ``minItems``, ``uniqueItems``, ``format: date``, local ``$ref``
(``#/$defs/…``). Unknown keywords in a schema are a programming error and raise ``ValueError``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,), "null": (type(None),),
    "integer": (int,), "number": (int, float),
}
_ANNOTATIONS = {"$schema", "$id", "$comment", "title", "description", "$defs", "default", "examples"}
_KNOWN = _ANNOTATIONS | {"type", "properties", "required", "additionalProperties", "propertyNames", "items", "enum",
                         "const", "pattern", "minimum", "maximum", "minLength", "minItems", "uniqueItems", "format",
                         "$ref"}


def field_name(path: tuple[str | int, ...]) -> str:
    """``("os", 3, "version")`` → ``os[3].version``; keys with dots are quoted: ``checks."card.cert"``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            shown = f'"{part}"' if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part) else part
            out += f".{shown}" if out else shown
    return out or "(top level)"


def read_toml(path: Path, fail: Callable[[str], Exception]) -> tuple[dict[str, Any], Any]:
    """The TOML file's document, and the same as JSON would hold it (dates become ISO strings) for :func:`errors`.
    A file that cannot be read or is not TOML raises ``fail(problem)``."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise fail(f"cannot be read ({exc.strerror or exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise fail(f"is not valid TOML ({exc})") from exc
    return doc, jsonable(doc)


def jsonable(value: Any) -> Any:
    """TOML values as JSON would hold them (dates become ISO strings), for schema validation."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def errors(instance: Any, schema: dict[str, Any]) -> list[tuple[str, str]]:
    """Every problem as ``(field, problem)``, in document order; empty when the instance is valid."""
    found: list[tuple[str, str]] = []
    _check(instance, schema, schema, (), found)
    return found


def _is_type(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES[name])


def _check(value: Any, schema: dict[str, Any], root: dict[str, Any], path: tuple[str | int, ...],
           found: list[tuple[str, str]]) -> None:
    unknown = set(schema) - _KNOWN
    if unknown:
        raise ValueError(f"schema keyword(s) not supported here: {sorted(unknown)}")
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/$defs/"):
            raise ValueError(f"only local #/$defs references are supported, not {ref}")
        _check(value, root["$defs"][ref.removeprefix("#/$defs/")], root, path, found)
    where = field_name(path)
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is_type(value, k) for k in kinds):
            found.append((where, f"must be {' or '.join(kinds)}, not {type(value).__name__} {value!r}"[:200]))
            return
    if "const" in schema and value != schema["const"]:
        found.append((where, f"must be {schema['const']!r}"))
    if "enum" in schema and value not in schema["enum"]:
        found.append((where, f"must be one of {', '.join(map(repr, schema['enum']))}, not {value!r}"))
    if isinstance(value, str):
        _check_string(value, schema, where, found)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            found.append((where, f"must be at least {schema['minimum']}, not {value}"))
        if "maximum" in schema and value > schema["maximum"]:
            found.append((where, f"must be at most {schema['maximum']}, not {value}"))
    if isinstance(value, list):
        _check_array(value, schema, root, path, found)
    if isinstance(value, dict):
        _check_object(value, schema, root, path, found)


def _check_string(value: str, schema: dict[str, Any], where: str, found: list[tuple[str, str]]) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        found.append((where, "must not be empty" if schema["minLength"] == 1 else
                      f"must be at least {schema['minLength']} characters"))
    if "pattern" in schema and not re.search(schema["pattern"], value):
        found.append((where, f"{value!r} does not have the expected form ({schema['pattern']})"))
    if schema.get("format") == "date":
        try:
            date.fromisoformat(value)
        except ValueError:
            found.append((where, f"{value!r} is not a date (YYYY-MM-DD)"))


def _check_array(value: list[Any], schema: dict[str, Any], root: dict[str, Any], path: tuple[str | int, ...],
                 found: list[tuple[str, str]]) -> None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        found.append((field_name(path), f"needs at least {schema['minItems']} item(s)"))
    if schema.get("uniqueItems") and len({repr(v) for v in value}) != len(value):
        found.append((field_name(path), "has duplicate items"))
    if "items" in schema:
        for i, item in enumerate(value):
            _check(item, schema["items"], root, (*path, i), found)


def _check_object(value: dict[str, Any], schema: dict[str, Any], root: dict[str, Any], path: tuple[str | int, ...],
                  found: list[tuple[str, str]]) -> None:
    props = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            found.append((field_name((*path, name)), "is required but missing"))
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if "propertyNames" in schema:
            _check(key, schema["propertyNames"], root, (*path, key), found)
        if key in props:
            _check(item, props[key], root, (*path, key), found)
        elif extra is False:
            found.append((field_name((*path, key)), f"is not a known field (expected one of {', '.join(props)})"))
        elif isinstance(extra, dict):
            _check(item, extra, root, (*path, key), found)
