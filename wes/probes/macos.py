"""macOS probes: sw_vers, system_profiler, the security tool and systemsetup."""

from __future__ import annotations

import ipaddress
import re

from wes.probes.commands import CommandFailed
from wes.probes.facts import (
    ClockFacts,
    DriverFacts,
    ListeningFacts,
    ListeningSocket,
    LocalAddress,
    LocalAddresses,
    OsInfo,
    RootStore,
    ScreenFacts,
)
from wes.probes.system import SystemProbes
from wes.probes.trust import pem_certificates

SW_VERS = ("sw_vers",)
SMARTCARDS = ("system_profiler", "SPSmartCardsDataType")
DISPLAYS = ("system_profiler", "SPDisplaysDataType")
KEYCHAINS = ("/System/Library/Keychains/SystemRootCertificates.keychain", "/Library/Keychains/System.keychain")
NETWORK_TIME = ("systemsetup", "-getusingnetworktime")
NETSTAT = ("netstat", "-an", "-p", "tcp")
IFCONFIG = ("ifconfig",)


def parse_sw_vers(text: str) -> OsInfo:
    values = dict(re.findall(r"^(\w+):\s*(.+?)\s*$", text, re.M))
    version = values.get("ProductVersion", "")
    return OsInfo("macos", f"{values.get('ProductName', 'macOS')} {version}".strip(), version,
                  display_version=values.get("BuildVersion"), source="sw_vers")


def parse_smartcard_drivers(text: str) -> tuple[str, ...]:
    """The numbered entries under 'Reader Drivers:' and 'SmartCard Drivers:' in system_profiler's report."""
    out, inside = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.endswith(":") and not stripped.startswith("#"):
            inside = bool(re.match(r"^(Reader|SmartCard|Smart Card) Drivers:$", stripped))
        elif inside and stripped.startswith("#"):
            out.append(re.sub(r"^#\d+:\s*", "", stripped))
    return tuple(out)


def parse_resolution(text: str) -> tuple[int, int] | None:
    sizes = [(int(w), int(h)) for w, h in re.findall(r"Resolution:\s*(\d+) x (\d+)", text)]
    return max(sizes, key=lambda s: s[0] * s[1]) if sizes else None


def parse_netstat(text: str) -> tuple[ListeningSocket, ...]:
    """LISTEN sockets in ``netstat -an -p tcp``: local address ``ADDRESS.PORT``, ``*`` for any (tcp4: 0.0.0.0,
    tcp6 and tcp46: ::)."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or not fields[0].startswith("tcp") or fields[5] != "LISTEN":
            continue
        address, _, port = fields[3].rpartition(".")
        if not port.isdigit():
            continue
        if address == "*":
            address = "0.0.0.0" if fields[0] == "tcp4" else "::"  # noqa: S104 (what was found, not a bind)
        found.append(ListeningSocket(address.split("%")[0], int(port)))
    return tuple(found)


def parse_ifconfig(text: str) -> tuple[LocalAddress, ...]:
    """This machine's addresses but loopback from ``ifconfig``: ``inet`` and ``inet6`` lines of interfaces not
    flagged LOOPBACK; a link-local IPv6 address (``fe80::…%en0 … scopeid 0x6``) keeps its interface index."""
    found = []
    loopback = False
    for line in text.splitlines():
        if line and not line[0].isspace():
            loopback = "LOOPBACK" in line.split(">", 1)[0]
            continue
        fields = line.split()
        if loopback or len(fields) < 2 or fields[0] not in ("inet", "inet6"):
            continue
        address, _, interface = fields[1].partition("%")
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            continue
        if ip.is_loopback:
            continue
        scope = 0
        if "scopeid" in fields and interface:
            scope = int(fields[fields.index("scopeid") + 1], 16)
        found.append(LocalAddress(address, scope, interface if scope else ""))
    return tuple(found)


def parse_network_time(text: str) -> ClockFacts:
    match = re.search(r"Network Time:\s*(On|Off)", text, re.I)
    synced = None if not match else match.group(1).lower() == "on"
    return ClockFacts(synced, "systemsetup -getusingnetworktime", text.strip()[:120])


class MacProbes(SystemProbes):
    platform = "macos"

    def os_info(self) -> OsInfo:
        return parse_sw_vers(self._cmd(*SW_VERS))

    def drivers(self) -> DriverFacts:
        return DriverFacts(parse_smartcard_drivers(self._cmd(*SMARTCARDS)), "system_profiler SPSmartCardsDataType")

    def system_roots(self) -> RootStore:
        certs: list[bytes] = []
        for keychain in KEYCHAINS:
            certs += pem_certificates(self._cmd("security", "find-certificate", "-a", "-p", keychain).encode())
        return RootStore(tuple(certs), "security find-certificate: " + ", ".join(KEYCHAINS))

    def clock(self) -> ClockFacts:
        try:
            return parse_network_time(self._cmd(*NETWORK_TIME))
        except CommandFailed as exc:  # needs administrator rights on recent macOS
            return ClockFacts(None, "systemsetup -getusingnetworktime", str(exc))

    def screen(self) -> ScreenFacts | None:
        size = parse_resolution(self._cmd(*DISPLAYS))
        return ScreenFacts(size[0], size[1], "system_profiler SPDisplaysDataType") if size else None

    def listening(self) -> ListeningFacts:
        return ListeningFacts(parse_netstat(self._cmd(*NETSTAT)), "netstat -an -p tcp")

    def local_addresses(self) -> LocalAddresses:
        return LocalAddresses(parse_ifconfig(self._cmd(*IFCONFIG)), "ifconfig")
