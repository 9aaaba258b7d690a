"""Linux probes: /etc/os-release, pcsc-lite driver folders, the CA bundle, timedatectl / the kernel's NTP state,
and xrandr."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import shlex
from pathlib import Path
from typing import Any

from wes.probes.commands import CommandFailed
from wes.probes.facts import ClockFacts, DriverFacts, OsInfo, RootStore, ScreenFacts
from wes.probes.system import SystemProbes
from wes.probes.trust import pem_certificates

CA_BUNDLES = ("etc/ssl/certs/ca-certificates.crt", "etc/pki/tls/certs/ca-bundle.crt", "etc/ssl/ca-bundle.pem")
DRIVER_DIRS = ("usr/lib/pcsc/drivers", "usr/lib64/pcsc/drivers", "usr/local/lib/pcsc/drivers")
READER_CONF = "etc/reader.conf.d"
_STA_UNSYNC = 0x0040
_TIME_ERROR = 5


def parse_os_release(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            parts = shlex.split(raw)
        except ValueError:
            parts = [raw.strip("\"'")]
        values[key.strip()] = parts[0] if parts else ""
    return values


def parse_xrandr(text: str) -> tuple[int, int] | None:
    match = re.search(r"current (\d+) x (\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def kernel_ntp_synchronised() -> tuple[bool | None, str]:
    """The kernel's view (adjtimex): an NTP daemon that disciplines the clock clears STA_UNSYNC."""
    name = ctypes.util.find_library("c")
    if not name:
        return None, "libc not found"
    libc = ctypes.CDLL(name, use_errno=True)
    buf = ctypes.create_string_buffer(512)  # struct timex (208 bytes on 64-bit Linux), zeroed: modes = 0, read only
    state = libc.adjtimex(buf)
    if state < 0:
        return None, f"adjtimex failed (errno {ctypes.get_errno()})"
    status = int.from_bytes(buf.raw[40:44], "little", signed=True) if ctypes.sizeof(ctypes.c_long) == 8 else \
        int.from_bytes(buf.raw[20:24], "little", signed=True)
    synced = state != _TIME_ERROR and not status & _STA_UNSYNC
    return synced, f"kernel clock state {state}{' (TIME_ERROR)' if state == _TIME_ERROR else ''}, " \
                   f"status 0x{status:04x}{' (STA_UNSYNC)' if status & _STA_UNSYNC else ''}"


class LinuxProbes(SystemProbes):
    platform = "linux"

    def __init__(self, *args: Any, root: Path = Path("/"), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.root = root

    def os_info(self) -> OsInfo:
        for rel in ("etc/os-release", "usr/lib/os-release"):
            path = self.root / rel
            if path.exists():
                values = parse_os_release(path.read_text(encoding="utf-8", errors="replace"))
                return OsInfo("linux", values.get("PRETTY_NAME") or values.get("NAME", "Linux"),
                              values.get("VERSION_ID", ""), distro=values.get("ID", "").lower() or None,
                              display_version=values.get("VERSION_CODENAME"), source=f"/{rel}")
        raise FileNotFoundError("neither /etc/os-release nor /usr/lib/os-release exists")

    def drivers(self) -> DriverFacts:
        found: list[str] = []
        conf = self.root / READER_CONF
        if conf.is_dir():
            for entry in sorted(conf.iterdir()):
                for line in entry.read_text(encoding="utf-8", errors="replace").splitlines():
                    if line.strip().upper().startswith("LIBPATH"):
                        found.append(f"/{READER_CONF}/{entry.name}: {line.split(None, 1)[-1].strip()}")
        for rel in DRIVER_DIRS:
            base = self.root / rel
            if not base.is_dir():
                continue
            for dirpath, dirnames, filenames in os.walk(base):
                here = Path(dirpath)
                for d in sorted(dirnames):
                    if d.endswith(".bundle"):
                        found.append("/" + str((here / d).relative_to(self.root)))
                dirnames[:] = [d for d in dirnames if not d.endswith(".bundle")]
                found += ["/" + str((here / f).relative_to(self.root)) for f in sorted(filenames)
                          if ".so" in f and not (here / f).is_symlink()]
        return DriverFacts(tuple(found), f"/{READER_CONF}, " + ", ".join(f"/{d}" for d in DRIVER_DIRS))

    def system_roots(self) -> RootStore:
        for rel in CA_BUNDLES:
            path = self.root / rel
            if path.exists():
                return RootStore(pem_certificates(path.read_bytes()), f"/{rel}")
        return RootStore((), "", error="no system CA bundle found (" + ", ".join(f"/{r}" for r in CA_BUNDLES) + ")")

    def clock(self) -> ClockFacts:
        try:
            value = self._cmd("timedatectl", "show", "-p", "NTPSynchronized", "--value").strip().lower()
            if value in ("yes", "no"):
                return ClockFacts(value == "yes", "timedatectl NTPSynchronized", f"NTPSynchronized={value}")
            why = f"timedatectl said {value!r}"
        except CommandFailed as exc:
            why = str(exc)
        synced, detail = kernel_ntp_synchronised()
        return ClockFacts(synced, "adjtimex (kernel NTP state)", f"{detail}; timedatectl unavailable: {why}")

    def screen(self) -> ScreenFacts | None:
        if not os.environ.get("DISPLAY"):
            return None
        try:
            size = parse_xrandr(self._cmd("xrandr", "--current"))
        except CommandFailed:
            return None
        return ScreenFacts(size[0], size[1], "xrandr --current") if size else None
