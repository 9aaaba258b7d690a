from pathlib import Path

import pytest

from app.errors import ConfigError
from app.service.core.rbac import load_role_table, parse_role_table

TABLE = Path(__file__).parents[2] / "resources" / "rbac.json"


@pytest.fixture(scope="module")
def table():
    return load_role_table(TABLE)


def test_shipped_table_loads_and_covers_every_role(table):
    assert table.role_name("S8000:G8000:R8001") == "Nurse Access Role"
    assert "B0264" in table.default_activities("S8000:G8000:R8000")
    assert table.default_activities("S8002:G8003:R8014") == ("B0015", "B0016")


@pytest.mark.parametrize(("operation", "activities", "allowed"), [
    ("pds.read", {"B0264"}, True),
    ("pds.patch", {"B0264"}, False),
    ("pds.patch", {"B0825"}, True),
    ("audit.query", {"B0016"}, True),
    ("audit.query", {"B0264", "B0825"}, False),
    ("pds.read", set(), False),
    ("no.such.operation", {"B0264", "B0825", "B0015"}, False),  # deny by default
])
def test_decisions(table, operation, activities, allowed):
    assert table.allowed(operation, activities) is allowed


def test_unknown_role_code(table):
    with pytest.raises(ValueError, match="unknown role code"):
        table.default_activities("S8000:G8000:R9999")
    assert table.role_name("junk") == "junk"


@pytest.mark.parametrize(("doc", "problem"), [
    ([], "JSON object"),
    ({"activities": {"X1": "bad"}, "roles": {}, "operations": {}}, "activity codes"),
    ({"activities": {"B0001": "a"}, "roles": {"R1": {}}, "operations": {}}, "R-code"),
    ({"activities": {"B0001": "a"}, "roles": {"R8000": {"name": "n", "activities": ["B0002"]}}, "operations": {}},
     "unknown activities"),
    ({"activities": {"B0001": "a"}, "roles": {}, "operations": {"pds.read": []}}, "one or more"),
])
def test_bad_tables_name_the_problem(doc, problem):
    with pytest.raises(ConfigError) as err:
        parse_role_table(doc, "rbac.json")
    assert problem in err.value.problem
