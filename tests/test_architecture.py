"""The project's layering, enforced by import-linter (contracts live in pyproject.toml)."""

import subprocess
import sys
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


def test_no_import_cycles_in_the_service_layer():
    """No module of app.service imports (directly or through others) a module that imports it back."""
    import grimp

    graph = grimp.build_graph("app")
    modules = {m for m in graph.modules if m == "app.service" or m.startswith("app.service.")}
    edges = {m: {i for i in graph.find_modules_directly_imported_by(m) if i in modules} for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(m: str) -> None:  # Tarjan's strongly connected components
        index[m] = low[m] = len(index)
        stack.append(m)
        on_stack.add(m)
        for n in edges[m]:
            if n not in index:
                visit(n)
                low[m] = min(low[m], low[n])
            elif n in on_stack:
                low[m] = min(low[m], index[n])
        if low[m] == index[m]:
            component = []
            while True:
                n = stack.pop()
                on_stack.discard(n)
                component.append(n)
                if n == m:
                    break
            if len(component) > 1 or m in edges[m]:
                cycles.append(sorted(component))

    for m in sorted(modules):
        if m not in index:
            visit(m)
    assert cycles == []
