"""Environment variables are read in one place: ``app.config`` (``read_environment``)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READER = ROOT / "app" / "config.py"
NAME = re.compile(r"SPINEDESK_[A-Z0-9_]+")
# reads of the environment outside app/config.py that are not Spine Desk's settings: the display and Qt's platform
OTHER_VARIABLES = {"DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"}
# whole-environment uses outside app/config.py, each for a reason
ALLOWED = {
    ("app/service/server.py", "os.environ[ENV] = config.to_env()"),  # written for the worker processes
    ("app/cli/wiring.py", "env = os.environ if env is None else env"),  # has_display: DISPLAY, WAYLAND_DISPLAY
}


def _modules():
    return [p for p in [*ROOT.glob("app/**/*.py"), *ROOT.glob("wes/**/*.py")] if p != READER]


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb")) or (
        isinstance(node, ast.Name) and node.id in ("environ", "getenv"))


def test_no_module_but_config_names_a_spinedesk_variable_in_code():
    """A SPINEDESK_ name as a string of its own (not prose in a docstring) is an environment read or write."""
    found = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME.fullmatch(node.value):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value}")
    assert found == []


def test_no_module_but_config_reads_the_environment_for_a_spinedesk_variable():
    found = []
    for path in _modules():
        source = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            if not _is_environ(node):
                continue
            line = source.splitlines()[node.lineno - 1]
            named = set(re.findall(r"[\"']([A-Z_][A-Z0-9_]*)[\"']", line))
            where = str(path.relative_to(ROOT))
            if (where, line.strip()) in ALLOWED:
                continue
            if "SPINEDESK_" in line or not named or not named <= OTHER_VARIABLES:
                found.append(f"{where}:{node.lineno}: {line.strip()}")
    assert found == []


def test_the_reader_documents_every_variable_it_reads():
    from app.config import read_environment

    source = READER.read_text(encoding="utf-8")
    body = source[source.index("def read_environment"):]
    doc = read_environment.__doc__ or ""
    used = set(NAME.findall(body.replace(doc, ""))) | ({"SPINEDESK_SERVICE_CONFIG"} if "SERVICE_CONFIG_ENV" in body
                                                         else set())
    assert used and used <= set(NAME.findall(doc))
