"""pcsc.virtual in training: vpcd reachable from the network is a fail (anyone there can present a card and read
the PIN typed for it) unless its ports listen on loopback only, or a waiver declares the machine isolated.
pcsc.apdu_logging: pcscd started with --apdu logs every APDU, PIN VERIFY included, in clear."""

from __future__ import annotations

import shutil

import pytest

from wes import Status, run_checks
from wes.errors import WaiverError
from wes.probes import linux
from wes.probes.facts import DriverFacts, ListeningFacts, ListeningSocket, ProcessFacts
from wes.probes.linux import LinuxProbes

from .conftest import FIXTURES, NOW, fixture_text, run_one, settings_for
from .platform_fakes import FakePcscSystem, Recorded
from .test_probes_linux import fake_root

VPCD = DriverFacts(("/etc/reader.conf.d/vpcd: /usr/lib/pcsc/drivers/serial/libifdvpcd.so",), "fake")
ANY = ListeningFacts((ListeningSocket("0.0.0.0", 35963), ListeningSocket("0.0.0.0", 35964),
                      ListeningSocket("127.0.0.1", 5432)), "fake")
ANY6 = ListeningFacts((ListeningSocket("127.0.0.1", 35963), ListeningSocket("::", 35964)), "fake")
ONE_INTERFACE = ListeningFacts((ListeningSocket("192.168.1.20", 35963),), "fake")
LOOPBACK = ListeningFacts((ListeningSocket("127.0.0.1", 35963), ListeningSocket("::1", 35964),
                           ListeningSocket("::ffff:127.0.0.1", 35964), ListeningSocket("0.0.0.0", 22)), "fake")
UNKNOWN = ListeningFacts((), "", error="no listening-socket probe for windows")
WAIVER = ('[[waiver]]\ncheck = "pcsc.virtual"\nreason = "Training room on its own isolated network"\n'
          'who = "A. Patel, IT"\nuntil = 2026-12-31\n')


def test_parse_proc_net_tcp_finds_listeners_only():
    v4 = linux.parse_proc_net_tcp(fixture_text("linux", "proc-net-tcp-vpcd-all-interfaces.txt"))
    assert ListeningSocket("0.0.0.0", 35963) in v4 and ListeningSocket("0.0.0.0", 35964) in v4
    assert ListeningSocket("127.0.0.1", 2024) not in v4 and ListeningSocket("0.0.0.0", 2024) in v4
    assert all(s.port != 35963 or s.address == "0.0.0.0" for s in v4)  # the connected socket is not a listener
    v6 = linux.parse_proc_net_tcp(fixture_text("linux", "proc-net-tcp6-vpcd-any.txt"))
    assert set(v6) == {ListeningSocket("::", 35963), ListeningSocket("::1", 35964)}
    assert [s.loopback_only for s in v6] == [False, True] or [s.loopback_only for s in v6] == [True, False]
    assert ListeningSocket("::ffff:127.0.0.1", 1).loopback_only and not ListeningSocket("::", 1).loopback_only


@pytest.mark.parametrize("listening", [ANY, ANY6, ONE_INTERFACE, UNKNOWN], ids=["any", "any6", "iface", "unknown"])
def test_training_vpcd_reachable_from_the_network_fails(probes, tmp_path, listening):
    probes.driver_facts, probes.listening_facts = VPCD, listening
    result = run_one("pcsc.virtual", probes, tmp_path)
    assert result.status is Status.FAIL, result.evidence
    assert ":3596" in result.evidence or "could not tell" in result.evidence
    assert "wes-waivers.toml" in result.remediation


def test_training_vpcd_on_loopback_only_or_not_listening_is_a_warning(probes, tmp_path):
    probes.driver_facts = VPCD
    for listening in (LOOPBACK, ListeningFacts((), "fake")):
        probes.listening_facts = listening
        result = run_one("pcsc.virtual", probes, tmp_path)
        assert result.status is Status.WARN, result.evidence
        assert "loopback only" in result.evidence or "nothing is listening" in result.evidence


def test_a_waiver_declares_the_training_machine_isolated(probes, tmp_path):
    probes.driver_facts, probes.listening_facts = VPCD, ANY
    waivers = tmp_path / "wes-waivers.toml"
    waivers.write_text(WAIVER, encoding="utf-8")
    result = run_one("pcsc.virtual", probes, tmp_path, waivers_path=waivers)
    assert result.status is Status.WAIVED and result.waiver.who == "A. Patel, IT"
    assert "0.0.0.0:35963" in result.evidence
    expired = run_one("pcsc.virtual", probes, tmp_path, waivers_path=waivers, now=NOW.replace(year=2027))
    assert expired.status is Status.FAIL


def test_production_is_unchanged_a_fail_wherever_vpcd_listens(probes, tmp_path):
    probes.driver_facts = VPCD
    for listening in (LOOPBACK, ANY):
        probes.listening_facts = listening
        assert run_one("pcsc.virtual", probes, tmp_path, mode="production").status is Status.FAIL


def test_no_virtual_reader_never_asks_for_sockets(probes, tmp_path):
    probes.listening_facts = RuntimeError("must not be asked")
    assert run_one("pcsc.virtual", probes, tmp_path).status is Status.PASS


def _root_with_proc(tmp_path, tcp: str, tcp6: str | None = None):
    root = fake_root(tmp_path, "os-release-debian-12", vpcd=True)
    (root / "proc" / "net").mkdir(parents=True)
    shutil.copy(FIXTURES / "linux" / tcp, root / "proc" / "net" / "tcp")
    if tcp6:
        shutil.copy(FIXTURES / "linux" / tcp6, root / "proc" / "net" / "tcp6")
    return root


@pytest.mark.parametrize(("tcp", "tcp6", "status"), [
    ("proc-net-tcp-vpcd-all-interfaces.txt", None, Status.FAIL),
    ("proc-net-tcp-vpcd-loopback.txt", None, Status.WARN),
    ("proc-net-tcp-vpcd-loopback.txt", "proc-net-tcp6-vpcd-any.txt", Status.FAIL),
])
def test_linux_probe_reads_proc_net_tcp(tmp_path, tcp, tcp6, status):
    probes = LinuxProbes(settings_for(tmp_path), root=_root_with_proc(tmp_path, tcp, tcp6),
                         runner=Recorded("linux", {}), pcsc_system=FakePcscSystem())
    report = run_checks(settings=settings_for(tmp_path), probes=probes, platform="linux", now=NOW,
                        checks=["pcsc.virtual"])
    assert report.result("pcsc.virtual").status is status, report.result("pcsc.virtual").evidence


# --- pcsc.apdu_logging ----------------------------------------------------------------------------------------------

def _pcscd(*argvs: tuple[str, ...]) -> ProcessFacts:
    return ProcessFacts("pcscd", tuple(argvs), "fake")


@pytest.mark.parametrize("argv", [
    ("/usr/sbin/pcscd", "--apdu"), ("pcscd", "-a"), ("/usr/sbin/pcscd", "-fa"), ("pcscd", "--foreground", "--apdu"),
    ("pcscd", "-f", "-d", "-a"), ("pcscd", "-adf"), ("pcscd", "--apd"), ("pcscd", "-c", "/etc/reader.conf", "-a"),
])
def test_pcscd_logging_apdus_fails(probes, tmp_path, argv):
    probes.pcscd_facts = _pcscd(("/usr/sbin/pcscd", "--foreground", "--auto-exit"), argv)
    for mode in ("training", "production"):
        result = run_one("pcsc.apdu_logging", probes, tmp_path, mode=mode)
        assert result.status is Status.FAIL, (argv, result.evidence)
        assert " ".join(argv) in result.evidence and "PIN" in result.evidence
        assert "--apdu" in result.remediation


@pytest.mark.parametrize("argv", [
    ("/usr/sbin/pcscd", "--foreground", "--auto-exit"), ("pcscd",), ("pcscd", "-f", "-d"), ("pcscd", "-fd"),
    ("pcscd", "-c", "-a"), ("pcscd", "-ca"), ("pcscd", "--config=-a"), ("pcscd", "-x", "--info"),
    ("pcscd", "-t", "4", "-r", "8", "-s", "2", "-e"),
])
def test_pcscd_without_apdu_logging_passes(probes, tmp_path, argv):
    probes.pcscd_facts = _pcscd(argv)
    result = run_one("pcsc.apdu_logging", probes, tmp_path)
    assert result.status is Status.PASS, (argv, result.evidence)
    assert " ".join(argv) in result.evidence


def test_pcscd_not_running_or_unknown(probes, tmp_path):
    probes.pcscd_facts = _pcscd()
    assert run_one("pcsc.apdu_logging", probes, tmp_path).status is Status.NOT_APPLICABLE
    probes.pcscd_facts = ProcessFacts("pcscd", (), "", error="/proc is not mounted")
    result = run_one("pcsc.apdu_logging", probes, tmp_path)
    assert result.status is Status.WARN and "/proc is not mounted" in result.evidence
    assert run_one("pcsc.apdu_logging", probes, tmp_path, platform="windows").status is Status.NOT_APPLICABLE


def test_linux_probe_reads_proc_cmdline(tmp_path):
    root = fake_root(tmp_path, "os-release-debian-12", vpcd=False)
    for pid, raw in (("1", b"/sbin/init\0splash\0"), ("77", b"/usr/sbin/pcscd\0-fa\0"), ("78", b""),
                     ("79", b"/usr/bin/python3\0/usr/sbin/pcscd\0"), ("80", b"pcscd\0--foreground\0")):
        (root / "proc" / pid).mkdir(parents=True)
        (root / "proc" / pid / "cmdline").write_bytes(raw)
    (root / "proc" / "self").mkdir()
    probes = LinuxProbes(settings_for(tmp_path), root=root, runner=Recorded("linux", {}),
                         pcsc_system=FakePcscSystem())
    facts = probes.processes("pcscd")
    assert facts.commands == (("/usr/sbin/pcscd", "-fa"), ("pcscd", "--foreground"))
    report = run_checks(settings=settings_for(tmp_path), probes=probes, platform="linux", now=NOW,
                        checks=["pcsc.apdu_logging"])
    assert report.result("pcsc.apdu_logging").status is Status.FAIL


def test_an_isolation_waiver_can_be_limited_to_training(probes, tmp_path):
    """The training room's waiver for vpcd must not also excuse a virtual reader if the machine is switched to
    production: ``modes = ["training"]`` limits a waiver to that mode (without it a waiver applies in both)."""
    probes.driver_facts, probes.listening_facts = VPCD, ANY
    waivers = tmp_path / "wes-waivers.toml"
    waivers.write_text(WAIVER + 'modes = ["training"]\n', encoding="utf-8")
    training = run_one("pcsc.virtual", probes, tmp_path, waivers_path=waivers)
    assert training.status is Status.WAIVED and training.waiver.modes == ("training",)
    assert training.to_json()["waiver"]["modes"] == ["training"]
    production = run_one("pcsc.virtual", probes, tmp_path, mode="production", waivers_path=waivers)
    assert production.status is Status.FAIL and production.waiver is None
    waivers.write_text(WAIVER + 'modes = ["staging"]\n', encoding="utf-8")
    with pytest.raises(WaiverError, match="modes"):
        run_one("pcsc.virtual", probes, tmp_path, waivers_path=waivers)


# --- Windows and macOS: netstat, replayed ----------------------------------------------------------------------------

def test_windows_netstat(tmp_path):
    from wes.probes import windows as win

    listening = win.parse_netstat(fixture_text("windows", "netstat-vpcd-any.txt"))
    assert {ListeningSocket("0.0.0.0", 35963), ListeningSocket("::", 135), ListeningSocket("::1", 49670),
            ListeningSocket("192.168.1.20", 139)} <= set(listening)
    assert all(s.port not in (50714, 5353) for s in listening)  # connections and UDP are not listeners
    assert ListeningSocket("127.0.0.1", 35963) not in listening
    for fixture, status in (("netstat-vpcd-any.txt", Status.FAIL), ("netstat-vpcd-loopback.txt", Status.WARN)):
        runner = Recorded("windows", {win.DRIVERS_QUERY: "drivers-virtual.json", win.NETSTAT: fixture,
                                      win.SCARD_SERVICE: "sc-scardsvr-running.txt"})
        probes = win.WindowsProbes(settings_for(tmp_path), runner=runner, pcsc_system=FakePcscSystem())
        result = run_checks(settings=settings_for(tmp_path), probes=probes, platform="windows", now=NOW,
                            checks=["pcsc.virtual"]).result("pcsc.virtual")
        assert result.status is status, result.evidence
        assert "netstat" in result.evidence


def test_macos_netstat(tmp_path):
    from wes.probes import macos

    listening = macos.parse_netstat(fixture_text("macos", "netstat-vpcd-any.txt"))
    assert {ListeningSocket("::", 35963), ListeningSocket("0.0.0.0", 7000), ListeningSocket("::1", 631),
            ListeningSocket("127.0.0.1", 631)} <= set(listening)
    assert all(s.port != 50714 for s in listening) and ListeningSocket("127.0.0.1", 35963) not in listening
    for fixture, status in (("netstat-vpcd-any.txt", Status.FAIL), ("netstat-vpcd-loopback.txt", Status.WARN)):
        runner = Recorded("macos", {macos.SMARTCARDS: "smartcards-vpcd.txt", macos.NETSTAT: fixture})
        probes = macos.MacProbes(settings_for(tmp_path), runner=runner, pcsc_system=FakePcscSystem())
        result = run_checks(settings=settings_for(tmp_path), probes=probes, platform="macos", now=NOW,
                            checks=["pcsc.virtual"]).result("pcsc.virtual")
        assert result.status is status, result.evidence
