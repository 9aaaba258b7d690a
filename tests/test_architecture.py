"""The project's structure, checked: layering (import-linter; contracts in pyproject.toml), module size, lint, types."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and " 0 broken" in result.stdout


def test_modules_stay_small():
    big = [f"{p.relative_to(ROOT)} ({n} lines)" for p in [*ROOT.glob("app/**/*.py"), *ROOT.glob("wes/**/*.py")]
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500]
    assert big == []


def test_ruff_is_clean():
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "app", "wes", "tests", "benchmarks"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def _mypy_files() -> list[Path]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    out: list[Path] = []
    for entry in config["files"]:
        path = ROOT / entry
        out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return out


def test_type_checker_passes():
    """mypy over the packages listed in pyproject's [tool.mypy] files (the list only grows)."""
    mypy = Path(sys.executable).with_name("mypy")
    result = subprocess.run([str(mypy), "--no-incremental"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


IGNORE = re.compile(r"#\s*type:\s*ignore(\[[^\]]*\])?(?P<rest>.*)$")


def test_every_type_ignore_says_why():
    """A ``# type: ignore[code]`` in type-checked code names its error code and gives a reason on the same line."""
    bad = []
    for path in _mypy_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = IGNORE.search(line)
            if match and (not match.group(1) or "#" not in match.group("rest")):
                bad.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert bad == [], "give each ignore an error code and '# reason':\n" + "\n".join(bad)


def import_circles(graph) -> list[set[str]]:  # type: ignore[no-untyped-def]
    """The strongly connected components of more than one module in grimp's import graph (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[set[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
            if low[module] == index[module]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == module:
                        break
                if len(component) > 1:
                    circles.append(component)
    return circles


def test_no_import_circles():
    """No module of app or wes imports itself back through others; imports under ``TYPE_CHECKING`` count too."""
    import grimp

    graph = grimp.build_graph("app", "wes", cache_dir=None)
    circles = [sorted(c) for c in import_circles(graph)]
    assert circles == []


def test_the_circle_finder_finds_circles():
    class Graph:
        edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
        modules = set(edges)

        def find_modules_directly_imported_by(self, module):
            return self.edges[module]

    assert import_circles(Graph()) == [{"a", "b", "c"}]
