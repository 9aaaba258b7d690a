"""Fixtures for the installer tests: the .deb (built once per run) and a Debian 12 chroot with it installed.

Tests marked ``installer`` need root, debootstrap, binutils, dpkg-deb, desktop-file-utils and Debian's mirror. In CI
(``CI`` set) a missing prerequisite fails them; elsewhere it skips them. Deselect locally with ``-m "not installer"``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.installer import chroot as chroots

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "build" / "installer" / "dist" / "spinedesk"
IN_CI = bool(os.environ.get("CI"))
TOOLS = ("debootstrap", "dpkg-deb", "readelf", "desktop-file-validate", "chroot", "mount")


def require_installer_prerequisites() -> None:
    problems = [f"{tool} is not installed" for tool in TOOLS if shutil.which(tool) is None]
    if os.geteuid() != 0:
        problems.append("not running as root (debootstrap, chroot and mount need it)")
    if problems:
        message = "installer tests cannot run: " + "; ".join(problems)
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def timings() -> dict[str, float]:
    """Seconds spent per step, printed at the end of the session (the README quotes them)."""
    spent: dict[str, float] = {}
    yield spent
    if spent:
        print("\ninstaller test timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in spent.items()), file=sys.stderr)


@pytest.fixture(scope="session")
def deb_package(tmp_path_factory, timings) -> Path:
    """Build the PyInstaller folder and the .deb with installer/build_deb.sh (once per test session)."""
    require_installer_prerequisites()
    if os.environ.get("SPINEDESK_DEB"):  # reuse a package built earlier (local reruns; CI always builds)
        return Path(os.environ["SPINEDESK_DEB"])
    out = Path(os.environ.get("SPINEDESK_DEB_OUT") or tmp_path_factory.mktemp("deb"))
    started = time.monotonic()
    result = subprocess.run(["bash", str(ROOT / "installer" / "build_deb.sh"), "--out", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=3000,
                            env={**os.environ, "SPINEDESK_PYTHON": sys.executable})
    timings["build .deb"] = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    deb = Path(result.stdout.strip().splitlines()[-1])
    assert deb.is_file(), result.stdout
    print(result.stdout.strip().splitlines()[-2], file=sys.stderr)
    return deb


@pytest.fixture(scope="module")
def installed(deb_package, timings):
    """A fresh bookworm chroot with the package installed by apt (Depends only, no Recommends)."""
    log: list[str] = []
    started = time.monotonic()
    with chroots.fresh_chroot(log) as root:
        timings["chroot ready"] = time.monotonic() - started
        shutil.copy(deb_package, root / "tmp" / deb_package.name)
        os.chmod(root / "tmp" / deb_package.name, 0o644)
        started = time.monotonic()
        root.run(["apt-get", "update", "-qq"], timeout=900)
        result = root.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", f"/tmp/{deb_package.name}"],
                          timeout=1800)
        timings["apt-get install"] = time.monotonic() - started
        chroots.keep_downloads(root)
        root.install_log = result.stdout  # type: ignore[attr-defined]
        root.deb = deb_package  # type: ignore[attr-defined]
        yield root
