"""``spinedesk wes check``: formats, --out, --silent, exit codes (0 compliant, 1 not, 2 usage, 3 could not run)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest

from app.__main__ import main
from app.cli import wes as commands
from tests.integration.conftest import spinedesk
from wes import Report, Severity, Status
from wes.errors import SpecError
from wes.model import CheckResult


def make_report(*statuses: Status) -> Report:
    results = [CheckResult(f"c.x{i}", "T", s, Severity.REQUIRED, "found", "fix", "https://x") for i, s in
               enumerate(statuses)]
    return Report(results, "training", "2026.1", "t", "0.1.0", "host", "linux", datetime.now(UTC), 1.0)


def run(report_or_error, **kw):
    out = io.StringIO()

    def runner():
        if isinstance(report_or_error, Exception):
            raise report_or_error
        return report_or_error

    kw.setdefault("fmt", "text")
    code = commands.check(runner, out=kw.pop("out", None), silent=kw.pop("silent", False), stdout=out, **kw)
    return code, out.getvalue()


def test_exit_codes():
    assert run(make_report(Status.PASS, Status.WARN))[0] == commands.EXIT_COMPLIANT == 0
    assert run(make_report(Status.PASS, Status.FAIL))[0] == commands.EXIT_NOT_COMPLIANT == 1
    assert run(SpecError("wes/spec/2026.1.toml", "tls", "is required but missing"))[0] == \
        commands.EXIT_COULD_NOT_RUN == 3


def test_formats_and_silent(tmp_path):
    code, out = run(make_report(Status.PASS), fmt="json")
    assert code == 0 and json.loads(out)["compliant"] is True
    assert run(make_report(Status.FAIL), fmt="text", silent=True) == (1, "")
    code, out = run(make_report(Status.FAIL), fmt="html", out=tmp_path / "r.html")
    assert code == 1 and "NOT compliant (c.x0)" in out and "<!DOCTYPE html>" in (tmp_path / "r.html").read_text()
    code, out = run(make_report(Status.PASS), fmt="json", out=tmp_path / "r.json", silent=True)
    assert (code, out) == (0, "") and json.loads((tmp_path / "r.json").read_text())["compliant"]


def test_an_unwritable_report_could_not_run(tmp_path):
    assert run(make_report(Status.PASS), fmt="text", out=tmp_path / "missing" / "r.txt")[0] == 3


def test_usage_errors(capsys):
    assert main(["wes", "check", "--format", "pdf"]) == 2
    assert "--format pdf needs --out" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["wes", "check", "--format", "docx"])
    assert exit_.value.code == 2


def test_real_command_pdf_and_html(tmp_path):
    done = spinedesk("wes", "check", "--format", "pdf", "--out", str(tmp_path / "r.pdf"))
    assert done.returncode in (0, 1), done.stderr
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF-")
    assert "pdf report written to" in done.stdout


def test_real_command_could_not_run(tmp_path):
    done = spinedesk("wes", "check", "--spec", "1999.1")
    assert done.returncode == 3 and "no WES specification '1999.1'" in done.stderr
    bad = tmp_path / "w.toml"
    bad.write_text('[[waiver]]\ncheck = "nope"\nreason = "r"\nwho = "w"\nuntil = 2030-01-01\n')
    done = spinedesk("wes", "check", "--waivers", str(bad))
    assert done.returncode == 3 and "waiver[0].check" in done.stderr
    done = spinedesk("wes", "check", "--waivers", str(tmp_path / "absent.toml"))
    assert done.returncode == 3 and "cannot be read" in done.stderr


def test_a_production_machine_cannot_be_checked_as_training(tmp_path):
    site = tmp_path / "spinedesk.toml"
    anchor = tmp_path / "root.pem"
    anchor.write_text("")
    site.write_text(f'[service]\nurl = "https://127.0.0.1:9"\n[trust]\nanchors = ["{anchor}"]\n')
    done = spinedesk("wes", "check", "--mode", "training", env={"SPINEDESK_SITE_CONFIG": str(site)})
    assert done.returncode == 2 and "production workstation" in done.stderr
    done = spinedesk("wes", "check", "--format", "json", env={"SPINEDESK_SITE_CONFIG": str(site)})
    assert done.returncode == 1
    doc = json.loads(done.stdout)
    assert doc["mode"] == "production" and "net.spine" in doc["failures"]
    broken = tmp_path / "broken.toml"
    broken.write_text("[service\n")
    done = spinedesk("wes", "check", env={"SPINEDESK_SITE_CONFIG": str(broken)})
    assert done.returncode == 3 and "not valid" in done.stderr
