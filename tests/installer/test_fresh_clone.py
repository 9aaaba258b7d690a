"""The README's quick start on a truly fresh Debian 12: ``scripts/setup.sh install`` in a clone of this repository
inside a bare bookworm (debootstrap minbase, the cached tarball of ``tests/installer/chroot.py``) that has nothing
but ``git`` and ``ca-certificates`` added, run as root with Debian's own Python (``/usr/bin/python3``, 3.11.2).

Only committed files are tested: the host repository is bind-mounted read-only into the chroot and ``git clone``d
from there, so uncommitted changes in the work tree are not seen (commit first). The script installs its Debian
packages from the mirror ``SPINEDESK_DEBIAN_MIRROR`` names (as ``chroot.py``) and the Python dependencies from PyPI
(nothing cached: PySide6 is downloaded and pyscard compiled, a few minutes). CAs the host trusts beyond Debian's
own (a site CA inspecting TLS, say) are added to the chroot's trust store, as the site's machines would have them.

The script runs twice in one PID namespace of its own, so the second run finds the pcscd the first one started (as
on a real machine) while ``pgrep``/``pkill`` in the chroot never see the host's processes, and everything the runs
started is stopped when the namespace ends. The chroot shares the host's network (pip needs PyPI), so dpkg is told
not to install vsmartcard-vpcd's reader configuration: the chroot's pcscd must not take the host's TCP 35963/35964.

Needs root, debootstrap, chroot, mount and unshare; in CI (``CI`` set) a missing one fails the test, elsewhere it
skips. Deselect locally with ``-m "not fresh"``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.installer import chroot as chroots
from tests.installer.conftest import IN_CI, ROOT

pytestmark = [pytest.mark.fresh, pytest.mark.installer, pytest.mark.slow]

HOST_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)
TOOLS = ("debootstrap", "chroot", "mount", "umount", "unshare", "git")
CLONE = "/root/spinedesk"
ORIGIN = "mnt/spinedesk-origin"
# setuptools' editable-install notices and the like: a fresh install prints none of them
NOISE = re.compile(r"editable|setup\.py|BuildBackendWarning|SetuptoolsDeprecationWarning|!!|\*{20}", re.IGNORECASE)
PROBLEMS = re.compile(r"error|fail|warning|traceback|not found|no such file|did not|cannot|could not", re.IGNORECASE)

# Runs inside the chroot, in a new PID namespace with its own /proc: setup.sh twice, each run's output, exit status
# and duration kept under /root for the test to read.
TWICE = r"""
cd {clone}
for run in first second; do
  started=$(date +%s%N)
  bash scripts/setup.sh install >/root/$run.log 2>&1 && echo 0 >/root/$run.rc || echo $? >/root/$run.rc
  echo $(( ($(date +%s%N) - started) / 1000000 )) >/root/$run.ms
  cat .venv/.spinedesk-installed >/root/$run.stamp 2>/dev/null || true
done
"""


def require_prerequisites() -> None:
    problems = [f"{tool} is not installed" for tool in TOOLS if shutil.which(tool) is None]
    if os.geteuid() != 0:
        problems.append("not running as root (debootstrap, chroot, mount and unshare need it)")
    if not (ROOT / ".git").is_dir():
        problems.append(f"{ROOT} is not a git repository with a .git directory (nothing committed to clone)")
    if problems:
        message = "the fresh-clone test cannot run: " + "; ".join(problems)
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def _pems(bundle: str) -> set[str]:
    return {"".join(block.split()) for block in PEM.findall(bundle)}


def _trust_the_hosts_local_cas(root: chroots.Chroot) -> None:
    """Add to the chroot's trust store the CAs the host trusts beyond Debian's ca-certificates (a site's own CA,
    such as one that inspects TLS on the way to PyPI), as such a site's machines would have it. None: no change."""
    if not HOST_BUNDLE.is_file():
        return
    host = PEM.findall(HOST_BUNDLE.read_text(encoding="ascii", errors="replace"))
    debian = _pems((root / "etc/ssl/certs/ca-certificates.crt").read_text(encoding="ascii", errors="replace"))
    extra = [block for block in host if "".join(block.split()) not in debian]
    for number, block in enumerate(extra):
        (root / f"usr/local/share/ca-certificates/site-{number}.crt").write_text(block + "\n", encoding="ascii")
    if extra:
        root.run(["update-ca-certificates"])


def _read(root: chroots.Chroot, rel: str) -> str:
    path = root / rel
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def test_setup_sh_install_works_on_a_fresh_clone_in_bare_debian_12(timings):
    require_prerequisites()
    log: list[str] = []
    started = time.monotonic()
    with chroots.fresh_chroot(log) as root:
        (root / "etc/apt/sources.list").write_text(f"deb {chroots.MIRROR} {chroots.SUITE} main\n")
        (root / "etc/dpkg/dpkg.cfg.d/spinedesk-tests").write_text("path-exclude=/etc/reader.conf.d/vpcd\n")
        root.run(["apt-get", "update", "-qq"], timeout=900)
        root.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "git", "ca-certificates"], timeout=1800)
        assert root.run(["sh", "-c", "command -v python3 || echo none"]).stdout.strip() == "none"  # truly bare
        _trust_the_hosts_local_cas(root)
        root.bind(str(ROOT), ORIGIN)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(root / ORIGIN)], check=True)
            root.run(["git", "config", "--global", "--add", "safe.directory", "*"])
            root.run(["git", "clone", "--quiet", "--no-hardlinks", f"/{ORIGIN}", CLONE], timeout=600)
        finally:
            root.unbind(ORIGIN)
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        assert root.run(["git", "-C", CLONE, "rev-parse", "HEAD"]).stdout.strip() == head
        timings["fresh: chroot, git, clone"] = time.monotonic() - started

        started = time.monotonic()
        twice = subprocess.run(["unshare", "--pid", "--fork", f"--mount-proc={root / 'proc'}",
                                *root.command(["bash", "-c", TWICE.format(clone=CLONE)])],
                               capture_output=True, text=True, timeout=3600, env=chroots.ENV)
        timings["fresh: setup.sh install twice"] = time.monotonic() - started
        chroots.keep_downloads(root)
        assert twice.returncode == 0, twice.stdout + twice.stderr
        first, second = _read(root, "root/first.log"), _read(root, "root/second.log")
        first_ms, second_ms = _read(root, "root/first.ms").strip(), _read(root, "root/second.ms").strip()
        print(f"\nfresh clone: first setup.sh install {int(first_ms or 0) / 1000:.0f} s, "
              f"second {int(second_ms or 0) / 1000:.1f} s\n--- first run's output ---\n{first}"
              f"--- second run's output ---\n{second}", file=sys.stderr)

        assert _read(root, "root/first.rc").strip() == "0", first
        assert "==> installing Debian packages" in first and "==> creating the virtual environment" in first, first
        assert not NOISE.search(first), first
        assert not PROBLEMS.search(first), first

        # the second run finds everything in place: no apt, no pip, pcscd left running, nothing to report
        assert _read(root, "root/second.rc").strip() == "0", second
        assert "==> installing" not in second and "==> creating" not in second, second
        assert "==> starting pcscd" not in second, second
        assert not PROBLEMS.search(second), second
        assert _read(root, "root/second.stamp") == _read(root, "root/first.stamp") != ""

        venv = f"{CLONE}/.venv"
        python = root.run([f"{venv}/bin/python", "-c",
                           "import sys; print(sys.version.split()[0], sys._base_executable)"]).stdout.split()
        assert python[0] == "3.11.2" and python[1].startswith("/usr/bin/python3"), python  # Debian 12's own
        imports = root.run([f"{venv}/bin/python", "-c",
                            "import app, PySide6, smartcard, cryptography\n"
                            "from PySide6 import QtWidgets\n"  # the Qt runtime libraries are all there
                            "from smartcard import scard\n"  # pyscard's compiled extension, linked to libpcsclite
                            "print(app.__file__)"], check=False, env={"QT_QPA_PLATFORM": "offscreen"})
        assert imports.returncode == 0, imports.stdout + imports.stderr
        assert imports.stdout.strip() == f"{CLONE}/app/__init__.py"
        usage = root.run([f"{venv}/bin/spinedesk", "--help"], check=False)
        assert usage.returncode == 0, usage.stdout + usage.stderr
        assert "usage: spinedesk" in usage.stdout
