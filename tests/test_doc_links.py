"""Every relative link in README.md and docs/**/*.md points at a file (or folder) of the repository.

A link with a ``#fragment`` into a Markdown file must also name one of its headings (GitHub's heading anchors).
Links to public web pages (http, https) are left alone; any other scheme, and any path that leaves the
repository, is an error. Links inside code blocks and code spans are not links and are not checked.

Code spans are checked too: every repository path written in backticks (``app/…``, ``wes/…``, ``tests/…``,
``resources/…``, ``scripts/…``, ``installer/…``, ``benchmarks/…``, ``docs/…``, ``.ci/…``, ``.github/…``, also
inside a command) names a file or folder that exists, and every test named as ``tests/….py::name`` (or ``::name``
after such a file in the same paragraph or table row) is defined in that file. A path with a wildcard or
placeholder (``tests/test_*.py``, ``wes/spec/<version>.toml``) is a pattern, not a path, and is left alone.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
WEB = ("http://", "https://")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """The file's lines outside fenced code blocks, with code spans blanked out."""
    lines, fenced = [], False
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((n, CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if m:
            base = slug(m.group(1))
            name, n = base, 0
            while name in found:  # repeated headings get -1, -2 …
                n += 1
                name = f"{base}-{n}"
            found.add(name)
    return found


def problems(path: Path, root: Path = ROOT) -> list[str]:
    out = []
    where = path.relative_to(root)
    for n, line in prose_lines(path):
        for target in LINK.findall(line):
            if target.startswith(WEB):
                continue
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):
                out.append(f"{where}:{n}: {target}: not a public web page or a file of the repository")
                continue
            file_part, _, fragment = target.partition("#")
            dest = path if not file_part else (path.parent / unquote(file_part)).resolve()
            if file_part.startswith("/") or not dest.is_relative_to(root):
                out.append(f"{where}:{n}: {target}: leaves the repository")
            elif not dest.exists():
                out.append(f"{where}:{n}: {target}: no such file")
            elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
                out.append(f"{where}:{n}: {target}: no heading #{fragment} in {dest.relative_to(root)}")
    return out


REPO_DIRS = ("app", "wes", "tests", "resources", "scripts", "installer", "benchmarks", "docs", ".ci", ".github")
REPO_PATH = re.compile(r"(?<![\w./~$-])((?:" + "|".join(map(re.escape, REPO_DIRS)) + r")/[\w./-]*)"
                       r"(?![\w./*<{-])((?:::[A-Za-z_]\w*)*)"  # a path (not a pattern), then any ::names
                       r"|(?<![\w:])((?:::[A-Za-z_]\w*)+)")  # or ::names alone, after a test file named before
SPAN_TEXT = re.compile(r"(`+)((?:(?!\1).)+?)\1")


def _defines(source: Path, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?(?:def|class)\s+{re.escape(name)}\b", source.read_text(encoding="utf-8"),
                     re.M) is not None


def code_span_problems(path: Path, root: Path = ROOT) -> list[str]:
    """Repository paths in the file's code spans that do not exist, and tests they name that are not defined."""
    out = []
    where = path.relative_to(root)
    last_test_file: str | None = None  # within one paragraph or table row
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("|"):
            last_test_file = None
        for span in SPAN_TEXT.finditer(line):
            for file_part, names, bare_names in REPO_PATH.findall(span.group(2)):
                if bare_names:  # "::test_x" continues the last test file of the line
                    if last_test_file is None:
                        continue  # an IPv6 address or the like, not a test
                    file_part, names = last_test_file, bare_names
                else:
                    file_part = file_part.rstrip(".")
                    if not (root / file_part).exists():
                        out.append(f"{where}:{n}: {file_part}: no such file or folder")
                        continue
                    if file_part.endswith(".py") and file_part.startswith("tests/"):
                        last_test_file = file_part
                for name in filter(None, names.split("::")):
                    if not _defines(root / file_part, name):
                        out.append(f"{where}:{n}: {file_part}::{name}: no such test")
    return out


def test_the_markdown_files_are_found() -> None:
    assert (ROOT / "README.md").is_file()
    assert len(markdown_files()) > 1


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path: Path) -> None:
    found = problems(path)
    assert not found, "links that point nowhere:\n" + "\n".join(found)


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_path_and_test_named_exists(path: Path) -> None:
    found = code_span_problems(path)
    assert not found, "paths or tests named in code spans that do not exist:\n" + "\n".join(found)


def test_the_code_span_checker_catches_dangling_paths_and_tests(tmp_path: Path) -> None:
    """The path checker itself, on a small repository: missing files and tests are reported, the rest is not."""
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "app").mkdir()
    (root / "app" / "x.py").write_text("", encoding="utf-8")
    (root / "tests").mkdir()
    (root / "tests" / "test_x.py").write_text("def test_there():\n    pass\n\n\nclass TestGroup:\n"
                                             "    def test_inside(self):\n        pass\n", encoding="utf-8")
    doc = root / "docs" / "a.md"
    doc.write_text(
        "`app/x.py` `app/` `app/gone.py` `tests/test_*.py` `wes/spec/<version>.toml` `::1` `my_app/x.py`\n"
        "`tests/test_x.py::test_there`, `::test_missing`, `tests/test_x.py::TestGroup::test_inside`\n"
        "`.venv/bin/python -m pytest tests/nowhere -q` `docs/a.md` `tests/test_x.py::test_absent`\n",
        encoding="utf-8")
    found = code_span_problems(doc, root)
    assert [f.split(": ", 1)[1] for f in found] == [
        "app/gone.py: no such file or folder",
        "tests/test_x.py::test_missing: no such test",
        "tests/nowhere: no such file or folder",
        "tests/test_x.py::test_absent: no such test",
    ]


def test_the_checker_catches_broken_links(tmp_path: Path) -> None:
    """The checker itself, on a small repository: each kind of bad link is reported, good ones are not."""
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.md").write_text("# Title\n\n## The specification (`wes/spec/<version>.toml`)\n\n## Title\n",
                                        encoding="utf-8")
    (root / "README.md").write_text(
        "[ok](docs/a.md) [dir](docs/) [again](docs/a.md#title-1)\n"
        "[anchor](docs/a.md#the-specification-wesspecversiontoml)\n"
        "[web](https://example.org/x) ![img](docs/a.md) `[span](docs/skipped.md)`\n"
        "```\n[fenced](docs/fenced.md)\n```\n"
        "[missing](docs/none.md) [bad anchor](docs/a.md#nowhere) [out](../outside.md)\n"
        "[abs](/etc/passwd) [scheme](file:///etc/passwd) [self](#nothing-here)\n", encoding="utf-8")
    found = problems(root / "README.md", root)
    assert [f.split(": ", 1)[1] for f in found] == [
        "docs/none.md: no such file",
        "docs/a.md#nowhere: no heading #nowhere in docs/a.md",
        "../outside.md: leaves the repository",
        "/etc/passwd: leaves the repository",
        "file:///etc/passwd: not a public web page or a file of the repository",
        "#nothing-here: no heading #nothing-here in README.md",
    ]
