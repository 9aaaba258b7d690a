"""Reports: text, JSON (against its documented schema), self-contained HTML, and the PDF printed from it by Qt,
read back as text with pdftotext (poppler-utils)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest

from wes import Status
from wes.checks import ORDER
from wes.probes.facts import PcscFacts, Reader
from wes.report.html import render_html
from wes.report.text import render_text
from wes.spec import SPEC_DIR

from .conftest import TRAINING_ATR, run_one

REPORT_SCHEMA = json.loads((SPEC_DIR.parent / "report" / "schema.json").read_text(encoding="utf-8"))


@pytest.fixture
def report(probes, tmp_path):
    probes.pcsc_facts = PcscFacts(True, (Reader("Virtual PCD 00 00", True, TRAINING_ATR),))
    probes.driver_facts = probes.driver_facts.__class__(("libifdvpcd.so",), "fake")
    probes.card = RuntimeError("card read failed <script>alert(1)</script>")
    probes.screen_facts = None  # headless: not applicable
    return run_one(list(ORDER), probes, tmp_path)


def test_text_report(report):
    text = render_text(report)
    assert text.startswith("WES check: NOT COMPLIANT (1 blocking: card.cert)")
    assert "Host     test-host" in text and "Spec     2026.1" in text
    for r in report.results:
        assert r.id in text
    assert "WARN   pki.roots" in text and "ERROR  card.cert" in text and "Fix: " in text
    assert "Summary:" in text and "Compliant means" in text


def test_json_report_follows_its_schema(report):
    doc = report.to_json()
    jsonschema.Draft202012Validator(REPORT_SCHEMA, format_checker=jsonschema.FormatChecker()).validate(doc)
    assert json.loads(json.dumps(doc)) == doc
    assert doc["hostname"] == "test-host" and doc["spec_version"] == "2026.1" and doc["checker_version"]
    assert doc["failures"] == ["card.cert"] and doc["counts"]["error"] == 1
    assert [r["id"] for r in doc["results"]] == list(ORDER)


def test_html_report_is_self_contained_and_escaped(report):
    html = render_html(report)
    assert html.startswith("<!DOCTYPE html>") and "NOT COMPLIANT" in html
    assert "<script" not in html and "&lt;script&gt;" in html
    assert not re.search(r"""(src|href)=["'](?!https://)""", html)  # links only to remediation pages
    assert "<link" not in html and "@import" not in html and "@media print" in html
    for r in report.results:
        assert r.id in html


def _pdftotext() -> str:
    tool = shutil.which("pdftotext")
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail("pdftotext (poppler-utils) must be installed in CI: scripts/setup.sh installs it")
        pytest.skip("pdftotext is not installed (apt-get install poppler-utils)")
    return tool


def test_pdf_report_renders_and_reads_back(report, tmp_path):
    from app.ui.pdf import html_to_pdf

    tool = _pdftotext()
    out = tmp_path / "wes.pdf"
    html_to_pdf(render_html(report), out, title="WES compliance report — test-host")
    assert out.read_bytes().startswith(b"%PDF-")
    text = subprocess.run([tool, "-layout", str(out), "-"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    assert "Spine Desk — WES compliance report" in flat
    assert "NOT COMPLIANT" in flat and "test-host" in flat
    for r in report.results:
        assert r.id in flat, r.id
    info = subprocess.run([shutil.which("pdfinfo") or "pdfinfo", str(out)], capture_output=True, text=True).stdout
    assert "WES compliance report" in info and "Pages:" in info


def test_png_of_the_first_page(report, tmp_path):
    from PySide6.QtGui import QImage

    from app.ui.pdf import html_to_png

    out = tmp_path / "page1.png"
    html_to_png(render_html(report), out)
    image = QImage(str(out))
    assert not image.isNull() and image.width() > 800 and image.height() > image.width()
    colours = {image.pixelColor(x, y).name() for x in range(0, image.width(), 7) for y in range(0, 400, 7)}
    assert len(colours) > 5  # text and coloured badges drawn, not a blank page


def test_waived_and_statuses_are_labelled(report):
    assert {r.status for r in report.results} >= {Status.PASS, Status.WARN, Status.ERROR, Status.NOT_APPLICABLE}


def test_committed_screenshot_exists():
    assert Path(__file__).resolve().parents[2].joinpath("docs", "screenshots", "wes-report.png").exists()
