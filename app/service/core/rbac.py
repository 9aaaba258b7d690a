"""Role-based access: the role table (``resources/rbac.json``) and the one decision function. Deny by default."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from app.errors import ConfigError

ACTIVITY = re.compile(r"^B\d{4}$")
ROLE = re.compile(r"^R\d{4}$")
ROLE_CODE = re.compile(r"^S\d{4,5}:G\d{4,5}:(R\d{4})$")


@dataclass(frozen=True)
class RoleTable:
    activities: Mapping[str, str]  # code -> name
    roles: Mapping[str, tuple[str, tuple[str, ...]]]  # R-code -> (name, default activities)
    operations: Mapping[str, frozenset[str]]  # operation -> activities that allow it

    def allowed(self, operation: str, activities: frozenset[str] | set[str] | tuple[str, ...]) -> bool:
        """True only if ``operation`` is listed and the caller holds one of its activities."""
        needed = self.operations.get(operation)
        return bool(needed) and not needed.isdisjoint(activities)

    def role_name(self, role_code: str) -> str:
        match = ROLE_CODE.match(role_code)
        entry = self.roles.get(match.group(1)) if match else None
        return entry[0] if entry else role_code

    def default_activities(self, role_code: str) -> tuple[str, ...]:
        match = ROLE_CODE.match(role_code)
        if not match or match.group(1) not in self.roles:
            raise ValueError(f"unknown role code {role_code!r}; expected S…:G…:R…, R-code one of "
                             f"{', '.join(sorted(self.roles))}")
        return self.roles[match.group(1)][1]


def parse_role_table(doc: object, source: str) -> RoleTable:
    def fail(problem: str) -> ConfigError:
        return ConfigError(source, problem)

    if not isinstance(doc, dict):
        raise fail("the role table must be a JSON object")
    activities, roles, operations = doc.get("activities"), doc.get("roles"), doc.get("operations")
    if not isinstance(activities, dict) or not all(ACTIVITY.match(k) and isinstance(v, str)
                                                   for k, v in activities.items()):
        raise fail("activities must map activity codes like B0264 to names")
    if not isinstance(roles, dict):
        raise fail("roles must be an object")
    parsed_roles: dict[str, tuple[str, tuple[str, ...]]] = {}
    for code, entry in roles.items():
        if not ROLE.match(code) or not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise fail(f"roles.{code} must be an R-code with a name")
        acts = entry.get("activities", [])
        unknown = [a for a in acts if a not in activities] if isinstance(acts, list) else ["(not a list)"]
        if unknown:
            raise fail(f"roles.{code}.activities names unknown activities {unknown}")
        parsed_roles[code] = (entry["name"], tuple(acts))
    if not isinstance(operations, dict):
        raise fail("operations must be an object")
    parsed_ops: dict[str, frozenset[str]] = {}
    for op, acts in operations.items():
        if not isinstance(acts, list) or not acts or any(a not in activities for a in acts):
            raise fail(f"operations.{op} must list one or more known activities")
        parsed_ops[op] = frozenset(acts)
    return RoleTable(MappingProxyType(dict(activities)), MappingProxyType(parsed_roles), MappingProxyType(parsed_ops))


def load_role_table(path: Path) -> RoleTable:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(str(path), "the role table is missing") from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), f"the role table cannot be read ({exc})") from exc
    return parse_role_table(doc, str(path))
