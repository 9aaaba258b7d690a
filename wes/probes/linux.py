"""Linux probes: /etc/os-release, pcsc-lite driver folders, the CA bundle, timedatectl / the kernel's NTP state,
xrandr, listening TCP sockets (/proc/net/tcp, tcp6), this machine's addresses (/proc/net/fib_trie, if_inet6) and
processes' command lines (/proc/PID/cmdline)."""

from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import os
import re
import shlex
from pathlib import Path
from typing import Any

from wes.probes.commands import CommandFailed
from wes.probes.facts import (
    ClockFacts,
    DriverFacts,
    ListeningFacts,
    ListeningSocket,
    LocalAddress,
    LocalAddresses,
    OsInfo,
    ProcessFacts,
    RootStore,
    ScreenFacts,
)
from wes.probes.system import SystemProbes
from wes.probes.trust import pem_certificates

CA_BUNDLES = ("etc/ssl/certs/ca-certificates.crt", "etc/pki/tls/certs/ca-bundle.crt", "etc/ssl/ca-bundle.pem")
DRIVER_DIRS = ("usr/lib/pcsc/drivers", "usr/lib64/pcsc/drivers", "usr/local/lib/pcsc/drivers")
READER_CONF = "etc/reader.conf.d"
PROC_NET_TCP = ("proc/net/tcp", "proc/net/tcp6")
_TCP_LISTEN = "0A"
FIB_TRIE = "proc/net/fib_trie"
IF_INET6 = "proc/net/if_inet6"
_IFA_F_UNUSABLE = 0x40 | 0x08  # IFA_F_TENTATIVE, IFA_F_DADFAILED: not usable as a source address
_IPV6_LINK_SCOPE = 0x20
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


def _proc_address(hex_addr: str) -> str:
    """/proc/net/tcp's address: IPv4 as one little-endian 32-bit word, IPv6 as four of them."""
    raw = bytes.fromhex(hex_addr)
    swapped = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(swapped))


def parse_proc_net_tcp(text: str) -> tuple[ListeningSocket, ...]:
    """The LISTEN sockets in a /proc/net/tcp or /proc/net/tcp6 table, with their accept queues."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != _TCP_LISTEN:
            continue
        addr, _, port = fields[1].partition(":")
        queued = fields[4].partition(":")[2]  # a listener's rx_queue: connections waiting to be accepted
        found.append(ListeningSocket(_proc_address(addr), int(port, 16), int(queued, 16)))
    return tuple(found)


def parse_fib_trie(text: str) -> tuple[LocalAddress, ...]:
    """This machine's IPv4 addresses other than loopback: the leaves of /proc/net/fib_trie marked ``/32 host
    LOCAL`` (each appears in the Main and the Local table; kept once, in order)."""
    found: dict[str, None] = {}
    leaf = None
    for line in text.splitlines():
        word = line.strip()
        if word.startswith(("|--", "+--")):
            leaf = word[3:].split()[0] if word.startswith("|--") else None
        elif leaf and word.startswith("/32 host LOCAL") and not ipaddress.ip_address(leaf).is_loopback:
            found[leaf] = None
    return tuple(LocalAddress(a) for a in found)


def parse_if_inet6(text: str) -> tuple[LocalAddress, ...]:
    """This machine's IPv6 addresses other than loopback from /proc/net/if_inet6 (address, interface index,
    prefix length, scope, flags, interface name); link-local ones carry their interface index as scope id."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or len(fields[0]) != 32:
            continue
        ip = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
        if ip.is_loopback or int(fields[4], 16) & _IFA_F_UNUSABLE:
            continue
        scope = int(fields[1], 16) if int(fields[3], 16) == _IPV6_LINK_SCOPE else 0
        found.append(LocalAddress(str(ip), scope, fields[5] if scope else ""))
    return tuple(found)


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

    def listening(self) -> ListeningFacts:
        sockets: list[ListeningSocket] = []
        read = []
        for rel in PROC_NET_TCP:
            path = self.root / rel
            if path.exists():
                sockets += parse_proc_net_tcp(path.read_text(encoding="ascii", errors="replace"))
                read.append(f"/{rel}")
        if not read:
            return ListeningFacts((), "", error="neither /proc/net/tcp nor /proc/net/tcp6 is readable")
        return ListeningFacts(tuple(sockets), ", ".join(read))

    def local_addresses(self) -> LocalAddresses:
        trie, inet6 = self.root / FIB_TRIE, self.root / IF_INET6
        if not trie.exists():
            return LocalAddresses((), "", error=f"/{FIB_TRIE} is not readable")
        found = parse_fib_trie(trie.read_text(encoding="ascii", errors="replace"))
        source = f"/{FIB_TRIE}"
        if inet6.exists():  # absent when IPv6 is disabled
            found += parse_if_inet6(inet6.read_text(encoding="ascii", errors="replace"))
            source += f", /{IF_INET6}"
        return LocalAddresses(found, source)

    def processes(self, name: str) -> ProcessFacts:
        """Every process whose executable's base name is ``name``, from /proc/PID/cmdline (NUL-separated argv)."""
        proc = self.root / "proc"
        if not proc.is_dir():
            return ProcessFacts(name, (), "", error="/proc is not mounted")
        commands = []
        for entry in sorted(proc.iterdir(), key=lambda p: p.name):
            if not entry.name.isdigit():
                continue
            try:
                raw = (entry / "cmdline").read_bytes()
            except OSError:  # the process ended meanwhile, or is not ours to read
                continue
            argv = tuple(a.decode("utf-8", "replace") for a in raw.rstrip(b"\0").split(b"\0")) if raw else ()
            if argv and argv[0].rsplit("/", 1)[-1] == name:
                commands.append(argv)
        return ProcessFacts(name, tuple(commands), "/proc/*/cmdline")
