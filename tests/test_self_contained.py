"""Every file of the repository stands on its own: a user's clone has nothing beside it.

No tracked file may point at the developers' planning folder beside the checkout, at one machine's absolute paths,
at notes that live outside the repository, or at an issue tracker's numbers. NHS's vendored specifications
(``tests/specs``) are upstream text and are left exactly as published.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = re.compile(
    r"\.\./shared\b"                                  # the planning folder beside the checkout
    r"|(?<![\w.-])/work/"                             # one development machine's paths
    r"|/tmp/fwbench\b"                                # a scratch folder of one benchmark run
    r"|\bshared/(?:notes|specs|design)\b"
    r"|\bdesign\.md\b"
    r"|\bnotes/(?:pcsc|nhs-apis|wes|clinical-ui|packaging|style)(?:\.md)?\b"
    # an issue tracker's numbers (a reader of the clone cannot follow them; say what the problem was instead)
    r"|\b(?:issue|ticket|bug)\s*(?:no\.?\s*)?#?\d+\b"
    r"|\bissues/\d+|\bpull/\d+|\bGH-\d+\b",
    re.IGNORECASE,
)


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError) as e:  # not a git checkout (an unpacked source tree)
        pytest.skip(f"not a git checkout: {e}")
    return [ROOT / p for p in out.decode().split("\0") if p and not p.startswith("tests/specs/")]


def test_no_file_points_outside_the_repository() -> None:
    found = []
    this = Path(__file__).resolve()
    for path in tracked_files():
        if path == this or not path.is_file():
            continue
        try:
            text = path.read_text("utf-8")
        except UnicodeDecodeError:
            continue  # binary (icons, images)
        found += [f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}" for n, line in enumerate(text.splitlines(), 1)
                  if OUTSIDE.search(line)]
    assert not found, "files that point outside the repository (copy what is needed in, with its source):\n" + \
        "\n".join(found)


@pytest.mark.parametrize("line", [
    # written in two parts so that this file does not itself point outside the repository
    "see ../" "shared/design.md", "python /wo" "rk/main/app.py", "cd /wo" "rk/wt-small",
    "/tmp/fwbench/.venv/bin/python",
    "as measured in notes/pcsc.md", "notes/pcsc", "fixed in issue 12", "Issue #7", "see issue no. 3",
    "https://github.com/o/r/issues/12", "https://github.com/o/r/pull/3", "(GH-42)", "ticket 9", "bug #10",
])
def test_the_patterns_catch_pointers_outside(line: str) -> None:
    assert OUTSIDE.search(line), line


@pytest.mark.parametrize("line", [
    "sqlite:///tmp/x.db", "the network/work/ folder", "ICI (individual credential issue) 1", "issued 12 cards",
    "colour #1b1f23", "an issue with the reader",
])
def test_the_patterns_leave_ordinary_text_alone(line: str) -> None:
    assert not OUTSIDE.search(line), line
