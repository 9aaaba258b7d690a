"""A throwaway Debian 12 (bookworm, minbase) chroot for installing the .deb, built from a cached debootstrap.

The base system is debootstrapped once and kept as a tarball in ``CACHE`` (``/var/cache/spinedesk-tests`` unless
``SPINEDESK_TEST_CACHE`` says otherwise), with the .debs apt downloaded into it, so a rerun neither debootstraps
nor downloads again; a fresh machine pays about 40 s for debootstrap plus the downloads. Each test module gets its
own copy, torn down with every mount undone and every process still running inside it stopped (by pid: only
processes whose root is this chroot, which the tests themselves started).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

CACHE = Path(os.environ.get("SPINEDESK_TEST_CACHE", "/var/cache/spinedesk-tests"))
SUITE = "bookworm"
MIRROR = os.environ.get("SPINEDESK_DEBIAN_MIRROR", "http://deb.debian.org/debian")
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
       "DEBIAN_FRONTEND": "noninteractive", "XDG_RUNTIME_DIR": "/tmp/xdg-runtime"}


def base_tarball(log: list[str]) -> Path:
    """The cached minbase bookworm tarball, debootstrapping it first if no earlier run left one."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"{SUITE}-minbase.tar"
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists():
            return tarball
        target = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=CACHE))
        try:
            started = time.monotonic()
            subprocess.run(["debootstrap", "--variant=minbase", SUITE, str(target), MIRROR], check=True,
                           capture_output=True, timeout=1800)
            log.append(f"debootstrap --variant=minbase {SUITE}: {time.monotonic() - started:.0f} s")
            partial = tarball.with_suffix(".tar.partial")
            subprocess.run(["tar", "-C", str(target), "--one-file-system", "-cf", str(partial), "."], check=True,
                           timeout=600)
            partial.rename(tarball)
        finally:
            _remove_tree(target)
    return tarball


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        points = [line.split()[1].replace("\\040", " ") for line in mounts]
    return sorted((p for p in points if (p + "/").startswith(prefix)), key=len, reverse=True)


def _remove_tree(path: Path) -> None:
    for point in _mounts_under(path):
        subprocess.run(["umount", "-l", point], check=False)
    if _mounts_under(path):  # never rm -rf through a mount point into the host
        raise RuntimeError(f"{path} still has mounts: {_mounts_under(path)}")
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


class Chroot:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __truediv__(self, rel: str) -> Path:
        return self.path / rel.lstrip("/")

    def command(self, argv: Sequence[str]) -> list[str]:
        return ["chroot", str(self.path), *argv]

    def run(self, argv: Sequence[str], *, timeout: float = 600, check: bool = True, env: dict[str, str] | None = None,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.command(argv), capture_output=True, text=True, timeout=timeout,
                                env={**ENV, **(env or {})}, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    def popen(self, argv: Sequence[str], env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen[str]:
        return subprocess.Popen(self.command(argv), env={**ENV, **(env or {})}, text=True, **kwargs)

    def processes(self) -> list[int]:
        """Pids of processes whose root directory is this chroot (started by these tests)."""
        found = []
        root = str(self.path.resolve())
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.readlink(entry / "root") == root:
                        found.append(int(entry.name))
        return found

    def stop_processes(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self.processes()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 5
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.1)

    def bind(self, host_dir: str, rel: str) -> None:
        target = self / rel
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "--bind", host_dir, str(target)], check=True)

    def unbind(self, rel: str) -> None:
        subprocess.run(["umount", "-l", str(self / rel)], check=False)


@contextlib.contextmanager
def fresh_chroot(log: list[str]) -> Iterator[Chroot]:
    """A new chroot from the cached tarball: /proc mounted, DNS, no daemons started by package scripts."""
    tarball = base_tarball(log)
    path = Path(tempfile.mkdtemp(prefix="spinedesk-chroot-"))
    os.chmod(path, 0o755)
    chroot = Chroot(path)
    try:
        subprocess.run(["tar", "-C", str(path), "-xf", str(tarball)], check=True, timeout=600)
        subprocess.run(["mount", "-t", "proc", "proc", str(chroot / "proc")], check=True)
        shutil.copy("/etc/resolv.conf", chroot / "etc/resolv.conf")
        policy = chroot / "usr/sbin/policy-rc.d"  # package scripts must not start pcscd inside the chroot
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        (chroot / "tmp/xdg-runtime").mkdir(mode=0o700, exist_ok=True)
        archives = CACHE / "apt-archives"
        archives.mkdir(parents=True, exist_ok=True)
        for deb in archives.glob("*.deb"):
            shutil.copy(deb, chroot / "var/cache/apt/archives" / deb.name)
        yield chroot
    finally:
        chroot.stop_processes()
        _remove_tree(path)


def keep_downloads(chroot: Chroot) -> int:
    """Copy the .debs apt fetched into the cache for the next run; returns how many were new."""
    archives = CACHE / "apt-archives"
    new = 0
    for deb in (chroot / "var/cache/apt/archives").glob("*.deb"):
        if not (archives / deb.name).exists():
            shutil.copy(deb, archives / deb.name)
            new += 1
    return new
