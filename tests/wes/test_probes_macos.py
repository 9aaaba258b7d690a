"""macOS probes replayed from recorded outputs of sw_vers, system_profiler, security and systemsetup."""

from __future__ import annotations

from app.card.pcsc import ReaderState
from wes import Status, run_checks
from wes.probes import macos
from wes.probes.commands import CommandFailed
from wes.probes.macos import MacProbes
from wes.report.text import render_text

from .conftest import NOW, TRAINING_ATR, fixture_text, settings_for
from .platform_fakes import FakePcscSystem, Recorded


def recorded(sw="sw_vers-15.txt", cards="smartcards-ccid.txt", clock="networktime-on.txt") -> Recorded:
    outputs = {macos.SW_VERS: sw, macos.SMARTCARDS: cards, macos.DISPLAYS: "displays.txt", macos.NETWORK_TIME: clock}
    for keychain in macos.KEYCHAINS:
        outputs[("security", "find-certificate", "-a", "-p", keychain)] = "roots.pem"
    return Recorded("macos", outputs)


def test_parsers():
    info = macos.parse_sw_vers(fixture_text("macos", "sw_vers-15.txt"))
    assert (info.name, info.version, info.display_version) == ("macOS 15.3.1", "15.3.1", "24D70")
    drivers = macos.parse_smartcard_drivers(fixture_text("macos", "smartcards-vpcd.txt"))
    assert len(drivers) == 3 and any("ifd-vpcd.bundle" in d for d in drivers)
    assert not any("Available" in d for d in drivers)
    assert macos.parse_resolution(fixture_text("macos", "displays.txt")) == (2560, 1664)
    assert macos.parse_network_time(fixture_text("macos", "networktime-on.txt")).synchronised is True


def run(tmp_path, runner, mode="training", pcsc=None):
    pcsc = pcsc or FakePcscSystem([ReaderState("Alcor Micro AU9560", False, b"")])
    probes = MacProbes(settings_for(tmp_path, mode), runner=runner, pcsc_system=pcsc)
    return run_checks(settings=settings_for(tmp_path, mode), probes=probes, platform="macos", now=NOW,
                      checks=["os.supported", "pcsc.service", "pcsc.virtual", "card.present", "time.sync", "screen"])


def test_a_healthy_mac(tmp_path):
    report = run(tmp_path, recorded())
    status = {r.id: r.status for r in report.results}
    assert status == {"os.supported": Status.PASS, "pcsc.service": Status.PASS, "pcsc.virtual": Status.PASS,
                      "card.present": Status.WARN, "time.sync": Status.PASS, "screen": Status.PASS}, render_text(report)
    assert "macOS 15.3.1 (24D70)" in report.result("os.supported").evidence


def test_an_old_mac_with_the_virtual_reader(tmp_path):
    pcsc = FakePcscSystem([ReaderState("Virtual PCD 00 00", True, TRAINING_ATR)])
    report = run(tmp_path, recorded(sw="sw_vers-12.txt", cards="smartcards-vpcd.txt", clock="networktime-noadmin.txt"),
                 mode="production", pcsc=pcsc)
    assert report.result("os.supported").status is Status.FAIL
    virtual = report.result("pcsc.virtual")
    assert virtual.status is Status.FAIL and "ifd-vpcd.bundle" in virtual.evidence and "Virtual PCD" in virtual.evidence
    assert report.result("time.sync").status is Status.WARN  # could not be confirmed without admin rights


def test_root_store_reads_both_keychains(tmp_path):
    runner = recorded()
    store = MacProbes(settings_for(tmp_path), runner=runner).system_roots()
    assert len(store.certificates) == 4 and all(k in store.source for k in macos.KEYCHAINS)


def test_a_missing_command_is_an_error_for_that_check_only(tmp_path):
    runner = recorded()
    runner.outputs[macos.SW_VERS] = CommandFailed("sw_vers is not installed")
    report = run(tmp_path, runner)
    assert report.result("os.supported").status is Status.ERROR
    assert report.result("screen").status is Status.PASS
