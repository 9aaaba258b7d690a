"""PATCH /Patient/{id}: JSON Patch (RFC 6902) with the PDS rules, all or nothing, plus resource versioning.

Body: ``{"patches": [...]}`` (a bare array, no/empty ``patches`` -> 400 INVALID_UPDATE). Operations: add,
replace, remove, test. PDS rules on top of RFC 6902:

* ``id``, ``identifier``, ``meta`` and ``resourceType`` are never patched -> 403 FORBIDDEN_UPDATE; a field that
  is not part of a Patient (``/pets``) -> 400 INVALID_UPDATE "Update unsupported for resource - 'pets'";
* new items of a top-level list (name, address, telecom, contact, generalPractitioner, extension) are added at
  ``/<list>/-`` only; PDS allocates their ``id`` (sending one is rejected) and a missing ``period`` starts today;
* removing a list item must be immediately preceded by a ``test`` of that item's ``id``, its ``url``
  (extensions) or the whole item;
* changing an existing list item (whole or in part) must identify it: a whole replacement carries the item's
  own ``id``/``url``; a partial change follows a test/add/replace of ``/<list>/<n>/id`` (or ``url``) with it;
* the result must still be a valid Patient (``patient_rules.check_update``).

Versioning: ``If-Match`` missing or not ``W/"n"`` -> 412 PRECONDITION_FAILED; not the current version -> 409
RESOURCE_VERSION_MISMATCH. Success gives the new resource with ``meta.versionId`` one higher.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from app.service.core.etag import check_version
from app.service.core.outcome import FhirError, invalid_update, invalid_value, quote_value
from app.service.core.patient import RESTRICTED_FIELDS, is_restricted
from app.service.pds.rules import check_update

PATCHABLE = frozenset({"name", "gender", "birthDate", "deceasedDateTime", "multipleBirthInteger", "address",
                       "telecom", "contact", "generalPractitioner", "managingOrganization", "extension"})
FORBIDDEN = frozenset({"id", "identifier", "meta", "resourceType"})
LISTS = frozenset({"name", "address", "telecom", "contact", "generalPractitioner", "extension"})
PERIODIC = frozenset({"name", "address", "telecom", "contact"})  # items whose period defaults to today
CONTENT_TYPES = ("application/json-patch+json", "application/json")
MAX_PATCHES = 100
MAX_VALUE_DEPTH = 16  # a Patient's deepest element (extension in extension in a list) is well inside this
_INDEX = re.compile(r"0|[1-9][0-9]{0,5}")
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Operation:
    op: str
    path: tuple[str, ...]
    text: str  # the path as sent, for diagnostics
    value: Any = None


@dataclass(frozen=True, slots=True)
class PatchResult:
    resource: dict[str, Any]
    version: int


def check_content_type(value: str | None) -> None:
    """PATCH needs ``application/json-patch+json`` (``application/json`` is tolerated, as NHS's own sandbox
    does); anything else -> 400 INVALID_VALUE, the specification's status for a bad header."""
    media = (value or "").split(";", 1)[0].strip().lower()
    if media not in CONTENT_TYPES:
        raise invalid_value("Content-Type", value or "", where="header")


def _pointer(text: object) -> tuple[str, ...]:
    if not isinstance(text, str) or not text.startswith("/") or len(text) > 200:
        raise invalid_update(f"invalid path '{quote_value(text)}'")
    tokens = []
    for token in text[1:].split("/"):
        if re.search(r"~[^01]|~$", token):
            raise invalid_update(f"invalid path '{quote_value(text)}'")
        tokens.append(token.replace("~1", "/").replace("~0", "~"))
    return tuple(tokens)


def parse_patches(body: object) -> list[Operation]:
    """Validate the request body's shape and the path rules that do not depend on the resource."""
    if not isinstance(body, dict) or not isinstance(body.get("patches"), list) or not body["patches"]:
        raise invalid_update("No patches found")
    if set(body) != {"patches"} or len(body["patches"]) > MAX_PATCHES:
        raise invalid_update("the body must be {\"patches\": [...]} with at most 100 patches")
    operations = []
    for item in body["patches"]:
        if not isinstance(item, dict) or item.get("op") not in ("add", "replace", "remove", "test"):
            raise invalid_update(f"unsupported patch operation {quote_value(item)}")
        allowed = {"op", "path"} if item["op"] == "remove" else {"op", "path", "value"}
        if not set(item) <= allowed or (item["op"] != "remove" and "value" not in item):
            raise invalid_update(f"a '{item['op']}' operation takes exactly: {', '.join(sorted(allowed))}")
        path = _pointer(item.get("path"))
        field = path[0]
        if field in FORBIDDEN:
            raise FhirError("FORBIDDEN_UPDATE", f"Invalid update with error - '{field}' cannot be updated")
        if field not in PATCHABLE:
            raise invalid_update(f"Update unsupported for resource - '{quote_value(field, 40)}'")
        _check_value(item.get("value"), item["path"])
        operations.append(Operation(item["op"], path, item["path"], item.get("value")))
    return operations


def _check_value(value: Any, where: str, depth: int = 0) -> None:
    """Refuse what no Patient element can hold and no store can keep: nesting deeper than any FHIR Patient
    element, NUL characters and unpaired surrogates (not Unicode text: not UTF-8, not storable)."""
    if depth > MAX_VALUE_DEPTH:
        raise invalid_update(f"the value for '{quote_value(where, 60)}' nests deeper than any Patient element")
    if isinstance(value, str):
        if "\x00" in value or any("\ud800" <= c <= "\udfff" for c in value):
            raise invalid_update(f"the value for '{quote_value(where, 60)}' contains a NUL character or an unpaired "
                                 "surrogate; send valid Unicode text")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_value(k, where, depth + 1)
            _check_value(v, where, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_value(v, where, depth + 1)


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _child(container: Any, token: str) -> Any:
    if isinstance(container, dict):
        return container.get(token, _MISSING)
    if isinstance(container, list) and _INDEX.fullmatch(token) and int(token) < len(container):
        return container[int(token)]
    return _MISSING


def _resolve(doc: dict[str, Any], op: Operation) -> tuple[Any, str]:
    """The parent container of ``op.path`` and the last token; missing parents -> INVALID_UPDATE."""
    parent: Any = doc
    for token in op.path[:-1]:
        parent = _child(parent, token)
        if parent is _MISSING:
            raise invalid_update(f"path '{quote_value(op.text)}' does not exist")
    return parent, op.path[-1]


def _new_id(seed: str) -> str:
    """A new item id, unique per (patient, version, operation): 8 upper-case hex digits like PDS's own."""
    return hashlib.blake2s(seed.encode(), digest_size=4).hexdigest().upper()


def _identity(item: Any, field: str) -> str | None:
    key = "url" if field == "extension" else "id"
    return item.get(key) if isinstance(item, dict) else None


def _apply(doc: dict[str, Any], op: Operation, previous: Operation | None, identified: set[tuple[str, int]],
           id_seed: str, today: date) -> None:
    field, depth = op.path[0], len(op.path)
    if field in LISTS and depth == 1 and op.op != "test":
        raise invalid_update(f"patch {field} items one at a time ('/{field}/-' to add, '/{field}/<n>' to change)")
    if field in LISTS and field != "extension" and op.op == "remove" and depth > 2:
        raise invalid_update(f"remove whole {field} items only; use replace to change part of one")
    if field in LISTS and depth >= 2 and op.path[1] != "-":
        if not _INDEX.fullmatch(op.path[1]):
            raise invalid_update(f"path '{quote_value(op.text)}' does not exist")
        index = int(op.path[1])
        if op.op == "add" and depth == 2:
            raise invalid_update(f"add new {field} items at '/{field}/-', not at an index")
        item = _child(doc.get(field, []), op.path[1])
        if item is _MISSING:
            raise invalid_update(f"path '{quote_value(op.text)}' does not exist")
        identity = _identity(item, field)
        key = "url" if field == "extension" else "id"
        if depth == 3 and op.path[2] == key and op.op in ("add", "replace", "test"):
            if op.value != identity and op.op != "test":  # a failing test is reported as such, below
                raise invalid_update(f"the {key} of {field} item {index} is '{identity}', not "
                                     f"'{quote_value(op.value)}'; {key}s cannot be changed")
            if op.value == identity:
                identified.add((field, index))
        elif op.op == "remove" and depth == 2:
            tested = previous is not None and previous.op == "test" and previous.path[:2] == op.path[:2] and (
                len(previous.path) == 2 or previous.path[2:] == (key,))
            if not tested:
                raise invalid_update(f"removing '{op.text}' must immediately follow a test of its {key}")
        elif op.op == "replace" and depth == 2:
            if identity is not None and _identity(op.value, field) != identity:
                raise invalid_update(f"replacing {field} item {index} must keep its {key} '{identity}'")
        elif op.op != "test" and identity is not None and (field, index) not in identified:
            raise invalid_update(f"changing {field} item {index} needs its {key} first "
                                 f"(test or replace '/{field}/{index}/{key}')")
    value = copy.deepcopy(op.value)
    if op.op in ("add", "replace") and field in LISTS and depth == 2 and isinstance(value, dict):
        if op.path[1] == "-" and field != "extension":
            if "id" in value:
                raise invalid_update(f"do not send an id when adding {field}: PDS allocates it")
            value = {"id": _new_id(id_seed), **value}
        if field in PERIODIC and "period" not in value:
            value["period"] = {"start": today.isoformat()}
    if op.op == "add" and field in LISTS and depth == 2 and field not in doc:
        doc[field] = []  # adding the first item of a list the patient does not have yet
    parent, token = _resolve(doc, op)
    _mutate(parent, token, op, value)
    if op.op in ("add", "remove") and depth == 2 and field in LISTS:
        identified.difference_update({k for k in identified if k[0] == field})  # indices have moved


def _mutate(parent: Any, last: str, op: Operation, value: Any) -> None:
    current = _child(parent, last)
    if op.op == "test":
        if current is _MISSING or not _json_equal(current, value):
            raise invalid_update(f"test failed at '{quote_value(op.text)}'")
    elif op.op in ("replace", "remove") and current is _MISSING:
        raise invalid_update(f"path '{quote_value(op.text)}' does not exist")
    elif isinstance(parent, dict):
        if op.op == "remove":
            del parent[last]
        else:
            parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and op.op == "add":
            parent.append(value)
        elif not _INDEX.fullmatch(last) or int(last) > len(parent) - (op.op != "add"):
            raise invalid_update(f"path '{quote_value(op.text)}' does not exist")
        elif op.op == "add":
            parent.insert(int(last), value)
        elif op.op == "remove":
            del parent[int(last)]
        else:
            parent[int(last)] = value
    else:
        raise invalid_update(f"path '{quote_value(op.text)}' does not exist")


def apply_patches(resource: dict[str, Any], operations: list[Operation], *, version: int,
                  today: date) -> dict[str, Any]:
    """The patched copy of ``resource`` (the original is never touched) with ``meta.versionId`` = version."""
    doc = copy.deepcopy(resource)
    identified: set[tuple[str, int]] = set()
    id_seed = f"{resource.get('id')}:{version}"
    previous = None
    for number, op in enumerate(operations):
        _apply(doc, op, previous, identified, f"{id_seed}:{number}", today)
        previous = op
    doc.setdefault("meta", {})["versionId"] = str(version)
    return doc


WITHHELD = frozenset(RESTRICTED_FIELDS) | {"extension"}


def _refuse_withheld(operations: list[Operation]) -> None:
    """A restricted patient's withheld details can be neither tested nor changed through this API: one fixed
    answer, whatever the path or value, so no response can confirm a guess or reveal how many items exist."""
    if any(op.path and op.path[0] in WITHHELD for op in operations):
        raise FhirError("FORBIDDEN_UPDATE", "Invalid update with error - the details of a restricted patient are "
                        "withheld and cannot be tested or changed here", status=403)


def update_patient(resource: dict[str, Any], body: object, *, current_version: int, if_match: str | None,
                   today: date | None = None) -> PatchResult:
    """Check the version, apply the patches all-or-nothing, validate the result; returns version + 1."""
    check_version(if_match, current_version)
    operations = parse_patches(body)
    if is_restricted(resource):
        _refuse_withheld(operations)
    today = today or date.today()
    new_version = current_version + 1
    patched = apply_patches(resource, operations, version=new_version, today=today)
    check_update(resource, patched, today=today)
    return PatchResult(patched, new_version)
