"""Linux probes: os-release, pcsc-lite driver folders, the CA bundle, clock sync (timedatectl or the kernel), and
xrandr, on a fake root folder and on this machine."""

from __future__ import annotations

import shutil
from pathlib import Path

from wes import Status, run_checks
from wes.probes import linux
from wes.probes.commands import CommandFailed
from wes.probes.linux import LinuxProbes

from .conftest import FIXTURES, NOW, fixture_text, settings_for
from .platform_fakes import FakePcscSystem, Recorded


def fake_root(tmp_path: Path, os_release: str, vpcd: bool) -> Path:
    root = tmp_path / "root"
    (root / "etc" / "reader.conf.d").mkdir(parents=True)
    shutil.copy(FIXTURES / "linux" / os_release, root / "etc" / "os-release")
    drivers = root / "usr" / "lib" / "pcsc" / "drivers"
    (drivers / "ifd-ccid.bundle" / "Contents" / "Linux").mkdir(parents=True)
    (drivers / "ifd-ccid.bundle" / "Contents" / "Linux" / "libccid.so").write_bytes(b"")
    if vpcd:
        (drivers / "serial").mkdir()
        (drivers / "serial" / "libifdvpcd.so.0.8").write_bytes(b"")
        (drivers / "serial" / "libifdvpcd.so").symlink_to("libifdvpcd.so.0.8")
        (root / "etc" / "reader.conf.d" / "vpcd").write_text(
            'FRIENDLYNAME "Virtual PCD"\nDEVICENAME /dev/null:0x8C7B\nLIBPATH /usr/lib/pcsc/drivers/serial/'
            "libifdvpcd.so\nCHANNELID 0x8C7B\n")
    (root / "etc" / "ssl" / "certs").mkdir(parents=True)
    shutil.copy(FIXTURES / "macos" / "roots.pem", root / "etc" / "ssl" / "certs" / "ca-certificates.crt")
    return root


def test_parsers():
    values = linux.parse_os_release(fixture_text("linux", "os-release-ubuntu-2404"))
    assert (values["ID"], values["VERSION_ID"], values["PRETTY_NAME"]) == ("ubuntu", "24.04", "Ubuntu 24.04.3 LTS")
    assert linux.parse_xrandr(fixture_text("linux", "xrandr.txt")) == (1920, 1080)
    assert linux.parse_xrandr("no screens") is None


def test_fake_roots(tmp_path):
    root = fake_root(tmp_path, "os-release-ubuntu-2404", vpcd=True)
    probes = LinuxProbes(settings_for(tmp_path), root=root, runner=Recorded("linux", {}),
                         pcsc_system=FakePcscSystem())
    info = probes.os_info()
    assert (info.distro, info.version) == ("ubuntu", "24.04")
    drivers = probes.drivers().drivers
    assert "/etc/reader.conf.d/vpcd: /usr/lib/pcsc/drivers/serial/libifdvpcd.so" in drivers
    assert "/usr/lib/pcsc/drivers/ifd-ccid.bundle" in drivers
    assert len(probes.system_roots().certificates) == 2
    report = run_checks(settings=settings_for(tmp_path), probes=probes, platform="linux", now=NOW,
                        checks=["os.supported", "pcsc.virtual"])
    assert report.result("os.supported").status is Status.PASS
    virtual = report.result("pcsc.virtual")  # training, and no /proc/net/tcp to show vpcd is unreachable: a fail
    assert virtual.status is Status.FAIL and "could not tell" in virtual.evidence
    centos = LinuxProbes(settings_for(tmp_path), root=fake_root(tmp_path / "c", "os-release-centos-7", vpcd=False),
                         pcsc_system=FakePcscSystem())
    report = run_checks(settings=settings_for(tmp_path, "production"), probes=centos, platform="linux", now=NOW,
                        checks=["os.supported", "pcsc.virtual"])
    assert report.result("os.supported").status is Status.FAIL
    assert report.result("pcsc.virtual").status is Status.PASS


def test_clock_from_timedatectl_or_the_kernel(tmp_path):
    command = ("timedatectl", "show", "-p", "NTPSynchronized", "--value")
    runner = Recorded("linux", {command: "timedatectl-yes.txt"})
    synced = LinuxProbes(settings_for(tmp_path), runner=runner).clock()
    assert synced.synchronised is True and "timedatectl" in synced.source
    no_systemd = Recorded("linux", {command: CommandFailed("timedatectl exited 1: Failed to connect to bus")})
    kernel = LinuxProbes(settings_for(tmp_path), runner=no_systemd).clock()
    assert kernel.source.startswith("adjtimex") and kernel.synchronised in (True, False)  # real kernel state
    assert "Failed to connect to bus" in kernel.detail


def test_this_machine(tmp_path):
    """The real probes on this Debian machine (no fakes): they must answer, whatever the answers are."""
    probes = LinuxProbes(settings_for(tmp_path))
    assert probes.os_info().distro
    assert probes.system_roots().certificates
    assert any("pcsc" in d for d in probes.drivers().drivers)
