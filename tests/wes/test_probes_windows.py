"""Windows probes replayed from recorded outputs of reg.exe, PowerShell (CIM), sc.exe and w32tm."""

from __future__ import annotations

import dataclasses
import hashlib

from app.card.pcsc import ReaderState
from wes import Status, run_checks
from wes.checks import ORDER
from wes.probes import windows as win
from wes.probes.commands import CommandFailed
from wes.probes.windows import WindowsProbes
from wes.report.text import render_text

from .conftest import NOW, OTHER_ATR, fixture_text, settings_for, spec_with
from .platform_fakes import FakePcscSystem, Recorded


def recorded(**overrides) -> Recorded:
    outputs = {win.OS_QUERY: "os-win11-24h2-enterprise.json", win.DISPLAY_VERSION: "displayversion-24h2.txt",
               win.SCARD_SERVICE: "sc-scardsvr-running.txt", win.DRIVERS_QUERY: "drivers-ccid.json",
               win.ROOTS_QUERY: "roots.txt", win.W32TM: "w32tm-synced.txt", win.SCREEN_QUERY: "screen.json",
               win.REMOVAL: "scremoveoption-lock.txt"}
    for key, value in overrides.items():
        outputs[getattr(win, key)] = value
    return Recorded("windows", outputs)


def probes(tmp_path, mode="training", runner=None, pcsc=None) -> WindowsProbes:
    pcsc = pcsc or FakePcscSystem([ReaderState("Alcor Micro USB Smart Card Reader 0", True, OTHER_ATR)])
    return WindowsProbes(settings_for(tmp_path, mode), runner=runner or recorded(), pcsc_system=pcsc)


def test_parsers():
    info = win.parse_os(fixture_text("windows", "os-win11-24h2-enterprise.json"),
                        fixture_text("windows", "displayversion-24h2.txt"))
    assert (info.version, info.edition, info.display_version) == ("26100", "Enterprise", "24H2")
    assert win.parse_sc_state(fixture_text("windows", "sc-scardsvr-stopped.txt")) == "STOPPED"
    assert win.parse_drivers(fixture_text("windows", "drivers-virtual.json"))[1].startswith("Virtual Smart Card")
    assert len(win.parse_base64_lines(fixture_text("windows", "roots.txt"))) == 2
    assert win.parse_w32tm(fixture_text("windows", "w32tm-synced.txt")).synchronised is True
    unsynced = win.parse_w32tm(fixture_text("windows", "w32tm-unsynced.txt"))
    assert unsynced.synchronised is False and "Local CMOS Clock" in unsynced.detail
    assert win.parse_screen(fixture_text("windows", "screen.json")) == (1920, 1080)
    assert win.reg_value(fixture_text("windows", "scremoveoption-lock.txt"), "ScRemoveOption") == "1"
    assert win.reg_value("    ScRemoveOption    REG_DWORD    0x2\r\n", "ScRemoveOption") == "2"


def test_a_healthy_windows_11_workstation(tmp_path):
    report = run_checks(settings=settings_for(tmp_path), probes=probes(tmp_path), platform="windows", now=NOW,
                        checks=["os.supported", "pcsc.service", "pcsc.reader", "pcsc.virtual", "time.sync", "screen",
                                "removal.mode"])
    got = {r.id: r for r in report.results}
    assert {k: v.status for k, v in got.items()} == {k: Status.PASS for k in got}, render_text(report)
    assert "Windows 11 Enterprise (24H2)" in got["os.supported"].evidence
    assert "(SCardSvr) RUNNING" in got["pcsc.service"].evidence
    assert any("Usbccid" in n for n in got["pcsc.reader"].notes)
    assert "w32tm" in got["time.sync"].evidence and "time.windows.com" in got["time.sync"].evidence
    assert "1920 x 1080" in got["screen"].evidence
    assert any("1 (lock workstation)" in n for n in got["removal.mode"].notes)


def test_windows_failures(tmp_path):
    runner = recorded(OS_QUERY="os-win10-22h2-pro.json", DISPLAY_VERSION="displayversion-22h2.txt",
                      SCARD_SERVICE="sc-scardsvr-stopped.txt", DRIVERS_QUERY="drivers-virtual.json",
                      W32TM="w32tm-unsynced.txt", REMOVAL=CommandFailed("reg.exe exited 1"))
    report = run_checks(settings=settings_for(tmp_path, "production"), probes=probes(
        tmp_path, "production", runner, FakePcscSystem(down=True)), platform="windows", now=NOW, checks=list(ORDER))
    status = {r.id: r.status for r in report.results}
    assert status["os.supported"] is Status.FAIL  # Windows 10 support ended 2025-10-14
    assert status["pcsc.service"] is Status.FAIL and "(SCardSvr) STOPPED" in report.result("pcsc.service").evidence
    assert status["pcsc.virtual"] is Status.FAIL and "Virtual Smart Card Reader" in report.result(
        "pcsc.virtual").evidence
    assert status["time.sync"] is Status.WARN
    removal = report.result("removal.mode")
    assert removal.status is Status.WARN and "ScRemoveOption 0" in removal.evidence
    assert not report.compliant


def test_windows_root_store_by_sha256(tmp_path):
    from wes.probes.trust import sha256_hex

    ders = win.parse_base64_lines(fixture_text("windows", "roots.txt"))
    spec = spec_with()
    prints = {"nhs-root-g2": sha256_hex(ders[0]), "nhs-authentication-g2": sha256_hex(ders[1]),
              "nhs-g1": hashlib.sha256(b"not installed").hexdigest()}
    spec = dataclasses.replace(spec, anchors=tuple(dataclasses.replace(a, sha256=prints.get(a.id, a.sha256))
                                                   for a in spec.anchors))
    report = run_checks(settings=settings_for(tmp_path, "production"), probes=probes(tmp_path, "production"),
                        platform="windows", now=NOW, spec=spec, checks=["pki.roots"])
    result = report.result("pki.roots")
    assert result.status is Status.PASS and r"Cert:\LocalMachine\Root" in result.evidence
