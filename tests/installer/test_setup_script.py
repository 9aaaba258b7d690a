"""scripts/setup.sh's messages, with stand-ins for dpkg-query, id, apt-get and Python on PATH (no root, no network,
nothing installed): the line for IT, the virtual reader kept apart as training/test-only, and failures that say
what failed. The real install on a bare Debian 12 is tests/installer/test_fresh_clone.py."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.installer.conftest import ROOT

ALL_INSTALLED = 'echo -n "install ok installed"'


@pytest.fixture
def checkout(tmp_path) -> Path:
    """The script and pyproject.toml in a throwaway tree, plus a bin/ of stand-ins first on PATH."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "bin").mkdir()
    return tmp_path


def stand_in(checkout: Path, name: str, body: str) -> None:
    path = checkout / "bin" / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def setup_sh(checkout: Path, *args: str, uid: int) -> subprocess.CompletedProcess[str]:
    stand_in(checkout, "id", f'[ "$1" = -u ] && echo {uid} || exec /usr/bin/id "$@"')
    for tool in ("apt-get", "pcscd", "pgrep", "pkill", "systemctl", "nft"):  # never the real ones from here
        if not (checkout / "bin" / tool).exists():
            stand_in(checkout, tool, f'echo "{tool} must not run in this test" >&2; exit 99')
    env = {"PATH": f"{checkout / 'bin'}:/usr/bin:/bin", "HOME": str(checkout), "LANG": "C.UTF-8"}
    return subprocess.run(["bash", str(checkout / "scripts" / "setup.sh"), *args], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=60)


def test_not_root_gets_the_line_for_it_with_the_virtual_reader_apart_and_explained(checkout):
    stand_in(checkout, "dpkg-query", 'case "$*" in *procps*|*vsmartcard-vpcd*) exit 1;; esac; ' + ALL_INSTALLED)
    result = setup_sh(checkout, "run", uid=1000)
    assert result.returncode == 3, result.stderr
    lines = result.stderr.splitlines()
    assert "  apt-get update && apt-get install -y procps" in lines, result.stderr
    assert "  apt-get update && apt-get install -y vsmartcard-vpcd" in lines, result.stderr
    text = " ".join(lines)
    assert "training or test machine only" in text and "never a production workstation" in text
    assert "all interfaces (0.0.0.0, TCP 35963 and 35964)" in text


def test_not_root_and_only_the_virtual_reader_missing(checkout):
    stand_in(checkout, "dpkg-query", 'case "$*" in *vsmartcard-vpcd*) exit 1;; esac; ' + ALL_INSTALLED)
    result = setup_sh(checkout, "install", uid=1000)
    assert result.returncode == 3
    assert "apt-get install -y vsmartcard-vpcd" in result.stderr and "0.0.0.0" in result.stderr
    assert "install -y procps" not in result.stderr


def test_every_tool_the_script_runs_is_in_its_package_list():
    script = (ROOT / "scripts" / "setup.sh").read_text()
    base = script.split("base_pkgs=(", 1)[1].split(")", 1)[0].split()
    for package in ("procps", "coreutils", "grep", "dpkg", "pcscd", "python3-venv"):  # pgrep/pkill, seq/sha256sum…
        assert package in base, package


def test_held_apt_lock_is_explained(checkout):
    stand_in(checkout, "dpkg-query", 'case "$*" in *procps*) exit 1;; esac; ' + ALL_INSTALLED)
    stand_in(checkout, "apt-get", 'case "$*" in *update*) exit 0;; esac\n'
             'echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)" >&2\n'
             "exit 100")
    result = setup_sh(checkout, "install", uid=0)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "'apt-get install' failed" in result.stderr and "held by process 4242" in result.stderr
    assert "holds the package lock" in result.stderr and "run this script again" in result.stderr


def test_a_failing_step_says_what_failed_and_what_to_do(checkout):
    stand_in(checkout, "dpkg-query", ALL_INSTALLED)
    # a Python 3.11 whose venv module fails
    stand_in(checkout, "python3.11", '[ "$1" = -c ] && exit 0; echo "venv: boom" >&2; exit 7')
    result = setup_sh(checkout, "install", uid=1000)
    assert result.returncode != 0
    assert "venv: boom" in result.stderr
    assert "setup.sh: failed while creating the virtual environment" in result.stderr, result.stderr
    assert "exit status 7" in result.stderr and "run 'scripts/setup.sh install' again" in result.stderr
    assert not (checkout / ".venv" / ".spinedesk-installed").exists()



def installed_checkout(checkout: Path) -> None:
    """Everything already installed: the Debian packages, Python 3.11 and the venv (its stamp), pcscd running."""
    stand_in(checkout, "dpkg-query", ALL_INSTALLED)
    stand_in(checkout, "python3.11", "exit 0")
    (checkout / ".venv" / "bin").mkdir(parents=True)
    stand_in(checkout, "../.venv/bin/python", "exit 0")
    digest = hashlib.sha256((checkout / "pyproject.toml").read_bytes()).hexdigest()[:16]
    (checkout / ".venv" / ".spinedesk-installed").write_text(f"{digest} .\n")
    stand_in(checkout, "pgrep", 'echo "1 /usr/sbin/pcscd --foreground"')


def test_root_where_nft_may_not_load_rules_says_the_virtual_reader_is_unguarded_and_what_that_means(checkout):
    installed_checkout(checkout)
    stand_in(checkout, "nft", 'echo "Error: Could not process rule: Operation not permitted" >&2; exit 1')
    result = setup_sh(checkout, "install", uid=0)
    assert result.returncode == 0, result.stderr  # the quick start carries on
    text = " ".join(result.stderr.split())
    assert "TCP 35963, 35964) are NOT guarded" in text and "Operation not permitted" in text
    assert "CAP_NET_ADMIN" in text and "pcsc.virtual therefore fails in training" in text
    assert "isolated network with a training-only waiver" in text


def test_not_root_says_it_cannot_guard_the_virtual_reader(checkout):
    installed_checkout(checkout)
    result = setup_sh(checkout, "install", uid=1000)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stderr.split())
    assert "NOT guarded: this script is not running as root" in text and "waiver" in text


@pytest.mark.skipif(Path("/run/systemd/system").is_dir(), reason="would install the pcscd drop-in on this machine")
def test_root_loads_the_shipped_guard_without_systemd(checkout):
    installed_checkout(checkout)
    (checkout / "scripts" / "vpcd-guard.nft").write_text((ROOT / "scripts" / "vpcd-guard.nft").read_text())
    stand_in(checkout, "nft", f'echo "$@" > {checkout / "nft-args"}')
    result = setup_sh(checkout, "install", uid=0)
    assert result.returncode == 0, result.stderr
    assert (checkout / "nft-args").read_text().split() == ["-f", str(checkout / "scripts" / "vpcd-guard.nft")]
    assert "only this machine can connect" in result.stdout and "NOT guarded" not in result.stderr


def test_the_shipped_guard_drops_what_is_not_loopback_on_the_vpcd_ports():
    rules = (ROOT / "scripts" / "vpcd-guard.nft").read_text()
    assert "define vpcd_ports = { 35963, 35964 }" in rules
    assert "tcp dport $vpcd_ports ip saddr != 127.0.0.0/8 drop" in rules
    assert "tcp dport $vpcd_ports ip6 saddr != ::1 drop" in rules
    assert "type filter hook input" in rules
