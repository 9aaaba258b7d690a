"""The reachability probe on this real Linux machine: a socket listening on 0.0.0.0 answers a connection from each
of the machine's own addresses (reachable); with scripts/vpcd-guard.nft loaded for a scratch port, in a table of
the test's own, every such connection is dropped (guarded) while loopback still connects. The nft test needs root
with CAP_NET_ADMIN: without it, it skips and says why; under CI, nft itself must be installed (scripts/setup.sh
installs it with the virtual reader)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from wes import Status, run_checks
from wes.probes.linux import LinuxProbes
from wes.spec import load_spec

from .conftest import NOW, settings_for
from .platform_fakes import FakePcscSystem, Recorded
from .test_probes_linux import fake_root

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux probes (/proc, nft)")
GUARD = Path(__file__).resolve().parents[2] / "scripts" / "vpcd-guard.nft"


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP socket on 0.0.0.0 (as vpcd listens) and one on :: (IPv6 only), on the same free port."""
    with socket.socket() as v4:
        v4.bind(("0.0.0.0", 0))
        v4.listen()
        port = v4.getsockname()[1]
        v6 = None
        if socket.has_ipv6 and Path("/proc/net/if_inet6").exists():
            v6 = socket.socket(socket.AF_INET6)
            v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                v6.bind(("::", port))
                v6.listen()
            except OSError:
                v6.close()
                v6 = None
        try:
            yield port
        finally:
            if v6:
                v6.close()


def _probes(tmp_path: Path) -> LinuxProbes:
    """The real Linux probes over a root with the vpcd driver installed and this machine's real /proc."""
    root = fake_root(tmp_path, "os-release-debian-12", vpcd=True)
    (root / "proc").symlink_to("/proc")
    return LinuxProbes(settings_for(tmp_path), root=root, runner=Recorded("linux", {}), pcsc_system=FakePcscSystem())


def _pcsc_virtual(tmp_path: Path, probes: LinuxProbes, port: int):
    spec = load_spec()
    spec = dataclasses.replace(spec, virtual_readers=dataclasses.replace(spec.virtual_readers, tcp_ports=(port,)))
    return run_checks(settings=settings_for(tmp_path), probes=probes, platform="linux", now=NOW, spec=spec,
                      checks=["pcsc.virtual"]).result("pcsc.virtual")


def test_a_socket_on_all_interfaces_is_reachable_from_every_address(tmp_path, listener):
    probes = _probes(tmp_path)
    result = _pcsc_virtual(tmp_path, probes, listener)  # first: the connections it makes stay queued (not accepted)
    facts = probes.reachability((listener,))
    assert not facts.error, facts.error
    if not facts.addresses:
        pytest.skip("this machine has no address but loopback: nothing to connect from")
    assert {a.result for a in facts.attempts} == {"connected"}, facts.attempts
    assert result.status is Status.FAIL and "connected to" in result.evidence, result.evidence


def _nft(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nft", *args], input=stdin, capture_output=True, text=True, timeout=30)


@pytest.fixture
def guard(listener) -> Iterator[int]:
    """scripts/vpcd-guard.nft as shipped, its table renamed and its ports replaced by the listener's scratch port;
    the table is deleted afterwards."""
    if shutil.which("nft") is None:
        if os.environ.get("CI"):
            pytest.fail("nft is not installed: scripts/setup.sh installs nftables with the virtual reader")
        pytest.skip("nft is not installed (Debian: apt-get install nftables)")
    table = f"spinedesk_test_{uuid.uuid4().hex[:8]}"
    rules = GUARD.read_text(encoding="utf-8")
    assert "define vpcd_ports = { 35963, 35964 }" in rules and "table inet spinedesk_vpcd_guard {" in rules
    rules = rules.replace("define vpcd_ports = { 35963, 35964 }", f"define vpcd_ports = {{ {listener} }}")
    loaded = _nft("-f", "-", stdin=rules.replace("spinedesk_vpcd_guard", table))
    if loaded.returncode != 0:
        # a container without CAP_NET_ADMIN, or not root: the guard cannot be tried here (say why, even under CI)
        pytest.skip(f"nft may not load rules here (root with CAP_NET_ADMIN needed): {loaded.stderr.strip()}")
    try:
        yield listener
    finally:
        _nft("delete", "table", "inet", table)


def test_the_shipped_guard_drops_connections_from_every_address_but_loopback(tmp_path, guard):
    probes = _probes(tmp_path)
    facts = probes.reachability((guard,))
    if not facts.addresses:
        pytest.skip("this machine has no address but loopback: nothing to connect from")
    assert {a.result for a in facts.attempts} == {"timeout"}, facts.attempts
    result = _pcsc_virtual(tmp_path, probes, guard)
    assert result.status is Status.PASS and "guarded" in result.evidence, result.evidence
    assert all(a in result.evidence for a in facts.addresses)
    with socket.create_connection(("127.0.0.1", guard), timeout=5):
        pass  # loopback still gets through
