"""The runner: concurrency, time-outs, crashes, progress, compliance, waivers, modes."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from wes import Report, Severity, Status, run_checks
from wes.checks import ORDER
from wes.errors import SpecError, WaiverError
from wes.probes.facts import PcscFacts, Reader
from wes.report.html import render_html
from wes.report.text import render_text

from .conftest import NOW, FakeProbes, run_one, settings_for, spec_with


def test_full_run_reports_every_check_in_order(probes, tmp_path):
    report = run_one(list(ORDER), probes, tmp_path)
    assert isinstance(report, Report)
    assert [r.id for r in report.results] == list(ORDER)
    assert all(r.title and r.remediation and r.link.startswith("https://") for r in report.results)


def test_probes_are_shared_between_checks(probes, tmp_path):
    run_one(list(ORDER), probes, tmp_path)
    assert probes.calls.count("pcsc") == 1  # five smartcard checks, one question to pcscd
    assert probes.calls.count("service") == 1  # net.spine and time.sync


def test_a_crashing_check_is_an_error_for_itself_only(probes, tmp_path):
    probes.os = RuntimeError("boom")
    report = run_one(list(ORDER), probes, tmp_path)
    crashed = report.result("os.supported")
    assert crashed.status is Status.ERROR and "RuntimeError: boom" in crashed.evidence
    assert report.result("pcsc.service").status is Status.PASS
    assert not report.compliant and crashed in report.failures


def test_an_error_in_an_advisory_check_does_not_block_compliance(probes, tmp_path):
    probes.screen_facts = OSError("display server went away")
    probes.pcsc_facts = PcscFacts(True, (Reader("ACS ACR39U 00 00", False),))  # no card: card.cert n/a
    report = run_one(list(ORDER), probes, tmp_path)
    assert report.result("screen").status is Status.ERROR
    assert report.result("screen").severity is Severity.ADVISORY
    assert report.compliant, [r.id for r in report.failures]


class Hanging(FakeProbes):
    release = threading.Event()

    def clock(self):
        self.release.wait(30)
        return super().clock()


def test_a_hanging_probe_times_out_as_an_error_and_the_run_still_returns(tmp_path):
    probes = Hanging()
    seen = []
    try:
        report = run_one(list(ORDER), probes, tmp_path, timeout=0.5, on_progress=seen.append)
    finally:
        Hanging.release.set()
    for thread in threading.enumerate():
        if thread.name == "wes-time.sync":
            thread.join(5)
    assert len(seen) == len(ORDER)  # the late finisher did not report after run_checks returned
    hung = report.result("time.sync")
    assert hung.status is Status.ERROR and "did not finish within 0.5 s" in hung.evidence
    assert sorted(r.id for r in seen) == sorted(ORDER)  # progress for every check, the hung one included
    assert report.result("os.supported").status is Status.PASS


def test_progress_comes_from_worker_threads_once_per_check(probes, tmp_path):
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    def progress(result):
        with lock:
            seen.append((result.id, threading.current_thread().name))
        raise ValueError("a broken listener must not break the run")

    report = run_one(list(ORDER), probes, tmp_path, on_progress=progress)
    assert sorted(i for i, _ in seen) == sorted(ORDER)
    assert all(name == f"wes-{cid}" for cid, name in seen)
    assert len(report.results) == len(ORDER)


def test_production_settings_force_production_mode(probes, tmp_path):
    probes.driver_facts = dataclasses.replace(probes.driver_facts, drivers=("libifdvpcd.so",))
    settings = settings_for(tmp_path, "production")
    report = run_checks(mode="training", settings=settings, probes=probes, checks=["pcsc.virtual"], now=NOW)
    assert report.mode == "production" and report.result("pcsc.virtual").status is Status.FAIL


def test_bad_arguments(probes, tmp_path):
    with pytest.raises(ValueError, match="mode"):
        run_checks(mode="test", settings=settings_for(tmp_path), probes=probes)
    with pytest.raises(ValueError, match=r"no\.such"):
        run_checks(settings=settings_for(tmp_path), probes=probes, checks=["no.such"])


def test_spec_and_checker_must_agree_on_check_ids(probes, tmp_path):
    spec = spec_with()
    missing = dataclasses.replace(spec, checks={k: v for k, v in spec.checks.items() if k != "screen"})
    with pytest.raises(SpecError, match=r'checks\."screen"'):
        run_checks(settings=settings_for(tmp_path), probes=probes, spec=missing)


# --- waivers --------------------------------------------------------------------------------------------------------

def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_a_waiver_turns_a_fail_into_waived_visibly(probes, tmp_path):
    probes.pcsc_facts = PcscFacts(False, (), detail="not running")
    waivers = write(tmp_path / "w.toml", '[[waiver]]\ncheck = "pcsc.service"\nreason = "Reader-less kiosk"\n'
                    'who = "A. Patel, IT"\nuntil = 2026-12-31\n')
    report = run_one(list(ORDER), probes, tmp_path, waivers_path=waivers)
    waived = report.result("pcsc.service")
    assert waived.status is Status.WAIVED and waived.waiver.who == "A. Patel, IT"
    assert any("until 2026-12-31 by A. Patel, IT: Reader-less kiosk" in n for n in waived.notes)
    assert report.compliant
    assert "WAIVED" in render_text(report) and "Reader-less kiosk" in render_html(report)
    assert report.to_json()["results"][1]["waiver"] == {"check": "pcsc.service", "reason": "Reader-less kiosk",
                                                        "who": "A. Patel, IT", "until": "2026-12-31"}
    assert "1 in force" in report.notes[0]


def test_an_expired_waiver_no_longer_applies_and_says_so(probes, tmp_path):
    probes.pcsc_facts = PcscFacts(False, (), detail="not running")
    waivers = write(tmp_path / "w.toml", '[[waiver]]\ncheck = "pcsc.service"\nreason = "Kiosk"\nwho = "IT"\n'
                    'until = 2026-11-21\n')
    result = run_one("pcsc.service", probes, tmp_path, waivers_path=waivers)
    assert result.status is Status.FAIL and any("expired on 2026-11-21" in n for n in result.notes)
    assert run_one("pcsc.service", probes, tmp_path, waivers_path=waivers,
                   now=NOW.replace(day=21)).status is Status.WAIVED  # the last day still counts


def test_waivers_never_hide_warnings_or_errors(probes, tmp_path):
    probes.clock_facts = RuntimeError("w32tm hung")
    waivers = write(tmp_path / "w.toml", '[[waiver]]\ncheck = "time.sync"\nreason = "r"\nwho = "w"\n'
                    'until = 2030-01-01\n')
    assert run_one("time.sync", probes, tmp_path, waivers_path=waivers).status is Status.ERROR


@pytest.mark.parametrize(("text", "field"), [
    ('[[waiver]]\ncheck = "pcsc.service"\nreason = "r"\nwho = "w"\n', "waiver[0].until"),
    ('[[waiver]]\ncheck = "pcsc.servise"\nreason = "r"\nwho = "w"\nuntil = 2027-01-01\n', "waiver[0].check"),
    ('[[waiver]]\ncheck = "tls"\nreason = ""\nwho = "w"\nuntil = 2027-01-01\n', "waiver[0].reason"),
    ('[[waiver]]\ncheck = "tls"\nreason = "r"\nwho = "w"\nuntil = "soon"\n', "waiver[0].until"),
    ('[[waivers]]\ncheck = "tls"\n', "waivers"),
    ("[[waiver]\n", "(file)"),
])
def test_invalid_waivers_name_the_file_and_field(probes, tmp_path, text, field):
    waivers = write(tmp_path / "bad.toml", text)
    with pytest.raises(WaiverError) as err:
        run_one("tls", probes, tmp_path, waivers_path=waivers)
    assert err.value.file == str(waivers) and err.value.field == field
    assert str(waivers) in str(err.value)
