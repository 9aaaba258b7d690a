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
