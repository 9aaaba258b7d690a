"""pcsc.virtual in training: vpcd reachable from the network is a fail (anyone there can present a card and read
the PIN typed for it) unless its ports listen on loopback only, a host firewall drops what comes from elsewhere
(tried by connecting from each of the machine's addresses), the machine has no address but loopback, or a waiver
declares the machine isolated.
pcsc.apdu_logging: pcscd started with --apdu logs every APDU, PIN VERIFY included, in clear."""

from __future__ import annotations

import shutil

import pytest

from wes import Status, run_checks
from wes.errors import WaiverError
from wes.probes import linux
from wes.probes.facts import (
    ConnectAttempt,
    DriverFacts,
    ListeningFacts,
    ListeningSocket,
    LocalAddress,
    ProcessFacts,
    ReachFacts,
)
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
    assert {s.queued for s in v4 + v6} == {0}
    assert ListeningSocket("::ffff:127.0.0.1", 1).loopback_only and not ListeningSocket("::", 1).loopback_only


@pytest.mark.parametrize("listening", [ANY, ANY6, ONE_INTERFACE, UNKNOWN], ids=["any", "any6", "iface", "unknown"])
def test_training_vpcd_reachable_from_the_network_fails(probes, tmp_path, listening):
    probes.driver_facts, probes.listening_facts = VPCD, listening
    result = run_one("pcsc.virtual", probes, tmp_path)
    assert result.status is Status.FAIL, result.evidence
    assert ":3596" in result.evidence or "could not tell" in result.evidence
    assert "wes-waivers.toml" in result.remediation


def test_training_vpcd_on_loopback_only_or_not_listening_passes_without_connecting(probes, tmp_path):
    probes.driver_facts = VPCD
    probes.reach_facts = AssertionError("nothing listens beyond loopback: no need to connect")
    for listening in (LOOPBACK, ListeningFacts((), "fake")):
        probes.listening_facts = listening
        result = run_one("pcsc.virtual", probes, tmp_path)
        assert result.status is Status.PASS, result.evidence
        assert "loopback only" in result.evidence or "nothing is listening" in result.evidence
        assert "reachability" not in probes.calls


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
    ("proc-net-tcp-vpcd-loopback.txt", None, Status.PASS),
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
    for fixture, status in (("netstat-vpcd-any.txt", Status.FAIL), ("netstat-vpcd-loopback.txt", Status.PASS)):
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
    for fixture, status in (("netstat-vpcd-any.txt", Status.FAIL), ("netstat-vpcd-loopback.txt", Status.PASS)):
        runner = Recorded("macos", {macos.SMARTCARDS: "smartcards-vpcd.txt", macos.NETSTAT: fixture})
        probes = macos.MacProbes(settings_for(tmp_path), runner=runner, pcsc_system=FakePcscSystem())
        result = run_checks(settings=settings_for(tmp_path), probes=probes, platform="macos", now=NOW,
                            checks=["pcsc.virtual"]).result("pcsc.virtual")
        assert result.status is status, result.evidence


# --- the host firewall guard, tried by connecting (fake probe results) -----------------------------------------------

ADDRESSES = ("192.0.2.20", "fe80::1%eth0")


def _reach(results: dict[str, str], addresses: tuple[str, ...] = ADDRESSES, error: str = "") -> ReachFacts:
    """Every port tried from every address with the result given per address."""
    attempts = tuple(ConnectAttempt(a, p, results[a], "no answer within 0.3 s" if results[a] == "timeout" else "")
                     for a in addresses for p in (35963, 35964)) if not error else ()
    return ReachFacts((35963, 35964), addresses, attempts, "/proc/net/fib_trie, /proc/net/if_inet6", 0.3, error=error)


# vpcd on 0.0.0.0 as /proc/net/tcp shows it: nothing waiting in its accept queue, or one connection waiting (vpcd
# listens with a backlog of 0 and accepts no other while it serves a card): then any further one goes unanswered
ROOM = ListeningFacts((ListeningSocket("0.0.0.0", 35963, 0), ListeningSocket("0.0.0.0", 35964, 0)), "fake")
FULL = ListeningFacts((ListeningSocket("0.0.0.0", 35963, 1), ListeningSocket("0.0.0.0", 35964, 0)), "fake")


def test_training_vpcd_that_answers_a_connection_from_an_address_fails(probes, tmp_path):
    probes.driver_facts, probes.listening_facts = VPCD, ANY
    probes.reach_facts = _reach({"192.0.2.20": "timeout", "fe80::1%eth0": "connected"})
    result = run_one("pcsc.virtual", probes, tmp_path)
    assert result.status is Status.FAIL, result.evidence
    assert "connected to [fe80::1%eth0]:35963, [fe80::1%eth0]:35964" in result.evidence
    assert "scripts/setup.sh" in result.remediation and "wes-waivers.toml" in result.remediation


def test_training_vpcd_guarded_by_the_host_firewall_passes_naming_what_was_tried(probes, tmp_path):
    probes.driver_facts, probes.listening_facts = VPCD, ROOM
    probes.reach_facts = _reach({"192.0.2.20": "timeout", "fe80::1%eth0": "timeout"})
    result = run_one("pcsc.virtual", probes, tmp_path)
    assert result.status is Status.PASS, result.evidence
    assert "guarded" in result.evidence and "0.0.0.0:35963" in result.evidence
    assert "tried 192.0.2.20, fe80::1%eth0" in result.evidence and "dropped" in result.evidence
    assert "192.0.2.20:35964" in result.evidence and "nothing waiting in the accept queue" in result.evidence
    probes.reach_facts = _reach({"192.0.2.20": "refused", "fe80::1%eth0": "timeout"})  # vpcd on IPv4 only
    assert run_one("pcsc.virtual", probes, tmp_path).status is Status.PASS
    probes.listening_facts = UNKNOWN  # sockets not listed: refused everywhere still proves nothing gets through
    probes.reach_facts = _reach({"192.0.2.20": "refused", "fe80::1%eth0": "refused"})
    result = run_one("pcsc.virtual", probes, tmp_path)
    assert result.status is Status.PASS and "could not list listening sockets" in result.evidence


def test_a_machine_with_no_address_but_loopback_is_isolated(probes, tmp_path):
    probes.driver_facts, probes.listening_facts = VPCD, ROOM
    probes.reach_facts = _reach({}, addresses=())
    result = run_one("pcsc.virtual", probes, tmp_path)
    assert result.status is Status.PASS, result.evidence
    assert "no address other than loopback" in result.evidence and "isolated" in result.evidence


@pytest.mark.parametrize(("listening", "reach", "why"), [
    (ROOM, _reach({}, error="/proc/net/fib_trie is not readable"), "fib_trie is not readable"),
    (ROOM, _reach({"192.0.2.20": "error", "fe80::1%eth0": "timeout"}), "could not try 192.0.2.20:35963"),
    (ROOM, RuntimeError("socket() failed"), "socket() failed"),
    # a connection already waiting in vpcd's accept queue (it serves a card): any other would go unanswered, so
    # nothing is tried (the probe must not be asked) and nothing is proven
    (FULL, AssertionError("must not connect"), "already waiting to be accepted on 0.0.0.0:35963"),
    # unanswered where the queue cannot be seen (netstat, or the sockets not listed): proves nothing either
    (ANY, _reach({"192.0.2.20": "timeout", "fe80::1%eth0": "timeout"}), "does not show whether connections"),
    (UNKNOWN, _reach({"192.0.2.20": "timeout", "fe80::1%eth0": "timeout"}), "does not show whether"),
], ids=["no-addresses", "bind-failed", "probe-raised", "queue-full", "queue-unknown", "not-listed"])
def test_training_fails_closed_when_the_attempts_prove_nothing(probes, tmp_path, listening, reach, why):
    probes.driver_facts, probes.listening_facts, probes.reach_facts = VPCD, listening, reach
    result = run_one("pcsc.virtual", probes, tmp_path)
    assert result.status is Status.FAIL, result.evidence
    assert "could not tell" in result.evidence and why in result.evidence


def test_production_fails_even_when_guarded_or_isolated(probes, tmp_path):
    probes.driver_facts, probes.listening_facts = VPCD, ROOM
    for reach in (_reach({"192.0.2.20": "timeout", "fe80::1%eth0": "timeout"}), _reach({}, addresses=())):
        probes.reach_facts = reach
        assert run_one("pcsc.virtual", probes, tmp_path, mode="production").status is Status.FAIL


# --- this machine's addresses, per platform --------------------------------------------------------------------------

def test_linux_addresses_from_proc():
    assert linux.parse_fib_trie(fixture_text("linux", "proc-net-fib_trie.txt")) == (LocalAddress("192.0.2.2"),)
    assert linux.parse_if_inet6(fixture_text("linux", "proc-net-if_inet6.txt")) == (
        LocalAddress("fd00::2"), LocalAddress("fe80::fc:ff:fe00:1", 4, "eth0"))
    tentative = "fd000000000000000000000000000009 04 40 00 c0     eth0\n"  # IFA_F_TENTATIVE: not usable yet
    assert linux.parse_if_inet6(tentative) == ()


def test_windows_and_macos_addresses_replayed():
    from wes.probes import macos, windows

    assert windows.parse_addresses(fixture_text("windows", "netipaddress.json")) == (
        LocalAddress("fe80::5d2a:8c1e:4b7f:9a3c", 12, "Ethernet"), LocalAddress("192.168.1.20"))
    assert macos.parse_ifconfig(fixture_text("macos", "ifconfig.txt")) == (
        LocalAddress("fe80::1c2b:3d4e:5f60:7182", 6, "en0"), LocalAddress("192.168.1.20"),
        LocalAddress("fd12:3456:789a::20"))
    assert str(LocalAddress("fe80::1", 6, "en0")) == "fe80::1%en0"
