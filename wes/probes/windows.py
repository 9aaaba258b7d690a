"""Windows probes: WMI/CIM through PowerShell, the registry through reg.exe, sc.exe and w32tm.

Each parser takes a command's text output; the tests replay recorded outputs through them.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from dataclasses import replace
from typing import Any

from wes.probes.commands import CommandFailed, powershell
from wes.probes.facts import (
    ClockFacts,
    DriverFacts,
    ListeningFacts,
    ListeningSocket,
    LocalAddress,
    LocalAddresses,
    OsInfo,
    PcscFacts,
    RemovalPolicy,
    RootStore,
    ScreenFacts,
)
from wes.probes.system import SystemProbes

OS_QUERY = powershell("Get-CimInstance Win32_OperatingSystem | Select-Object Caption,Version,BuildNumber "
                      "| ConvertTo-Json")
DISPLAY_VERSION = ("reg.exe", "query", r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion", "/v", "DisplayVersion")
SCARD_SERVICE = ("sc.exe", "query", "SCardSvr")
DRIVERS_QUERY = powershell("Get-CimInstance Win32_PnPSignedDriver -Filter \"DeviceClass='SMARTCARDREADER'\" "
                           "| Select-Object DeviceName,DriverProviderName,InfName,DriverVersion | ConvertTo-Json")
ROOTS_QUERY = powershell(r"Get-ChildItem Cert:\LocalMachine\Root, Cert:\LocalMachine\CA "
                         "| ForEach-Object { [Convert]::ToBase64String($_.RawData) }")
W32TM = ("w32tm.exe", "/query", "/status")
SCREEN_QUERY = powershell("Get-CimInstance Win32_VideoController | Select-Object Name,CurrentHorizontalResolution,"
                          "CurrentVerticalResolution | ConvertTo-Json")
REMOVAL = ("reg.exe", "query", r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon", "/v", "ScRemoveOption")
REMOVAL_MEANING = {"0": "no action", "1": "lock workstation", "2": "force logoff",
                   "3": "disconnect if a Remote Desktop session"}
NETSTAT = ("netstat.exe", "-an")
ADDRESSES_QUERY = powershell("Get-NetIPAddress -AddressState Preferred | Select-Object IPAddress,InterfaceIndex,"
                             "InterfaceAlias | ConvertTo-Json -Compress")
EDITIONS = ("Enterprise", "Education", "Pro", "Home", "IoT", "SE")


def _json_list(text: str) -> list[dict[str, Any]]:
    """ConvertTo-Json gives an object for one item and an array for several; nothing for none."""
    text = text.strip()
    if not text:
        return []
    doc = json.loads(text)
    return doc if isinstance(doc, list) else [doc]


def reg_value(text: str, name: str) -> str | None:
    match = re.search(rf"^\s*{re.escape(name)}\s+REG_\w+\s+(.*?)\s*$", text, re.M | re.I)
    if not match:
        return None
    value = match.group(1)
    return str(int(value, 16)) if value.lower().startswith("0x") else value


def parse_os(cim_json: str, reg_text: str | None) -> OsInfo:
    doc = _json_list(cim_json)[0]
    caption = str(doc.get("Caption", "")).strip()
    edition = next((e for e in EDITIONS if re.search(rf"\b{e}\b", caption)), None)
    display = reg_value(reg_text, "DisplayVersion") if reg_text else None
    return OsInfo("windows", caption, str(doc.get("BuildNumber", "")), edition=edition, display_version=display,
                  source="Win32_OperatingSystem (CIM), HKLM\\...\\CurrentVersion DisplayVersion")


def parse_sc_state(text: str) -> str | None:
    match = re.search(r"STATE\s*:\s*\d+\s+(\w+)", text)
    return match.group(1) if match else None


def parse_drivers(text: str) -> tuple[str, ...]:
    out = []
    for d in _json_list(text):
        extra = ", ".join(str(d[k]) for k in ("DriverProviderName", "InfName", "DriverVersion") if d.get(k))
        out.append(f"{d.get('DeviceName') or '?'} ({extra})" if extra else str(d.get("DeviceName") or "?"))
    return tuple(out)


def parse_base64_lines(text: str) -> tuple[bytes, ...]:
    out = []
    for line in text.split():
        try:
            out.append(base64.b64decode(line, validate=True))
        except (binascii.Error, ValueError):
            continue
    return tuple(out)


def parse_w32tm(text: str) -> ClockFacts:
    leap = re.search(r"Leap Indicator:\s*(\d)", text)
    source = re.search(r"^Source:\s*(.+?)\s*$", text, re.M)
    last = re.search(r"^Last Successful Sync Time:\s*(.+?)\s*$", text, re.M)
    src = source.group(1) if source else "unknown"
    free_running = src.lower() in ("local cmos clock", "free-running system clock")
    synced = None if leap is None else (leap.group(1) != "3" and not free_running)
    detail = f"Source {src}; Leap Indicator {leap.group(1) if leap else '?'}" + (
        f"; last successful sync {last.group(1)}" if last else "")
    return ClockFacts(synced, "w32tm /query /status", detail)


def parse_netstat(text: str) -> tuple[ListeningSocket, ...]:
    """TCP listeners in ``netstat -an``: a TCP line whose foreign address is 0.0.0.0:0 or [::]:0 (the state column
    is translated on non-English Windows, the addresses are not)."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[0].upper() != "TCP" or fields[2] not in ("0.0.0.0:0", "[::]:0"):
            continue
        address, _, port = fields[1].rpartition(":")
        if port.isdigit():
            found.append(ListeningSocket(address.strip("[]").split("%")[0], int(port)))
    return tuple(found)


def parse_addresses(text: str) -> tuple[LocalAddress, ...]:
    """This machine's addresses but loopback from Get-NetIPAddress (a link-local IPv6 address comes as
    ``fe80::…%INDEX``: its interface index is its scope id)."""
    found = []
    for d in _json_list(text):
        address = str(d.get("IPAddress") or "").split("%")[0]
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            continue
        if ip.is_loopback:
            continue
        link = isinstance(ip, ipaddress.IPv6Address) and ip.is_link_local
        found.append(LocalAddress(address, int(d.get("InterfaceIndex") or 0) if link else 0,
                                  str(d.get("InterfaceAlias") or "") if link else ""))
    return tuple(found)


def parse_screen(text: str) -> tuple[int, int] | None:
    best = None
    for d in _json_list(text):
        w, h = d.get("CurrentHorizontalResolution"), d.get("CurrentVerticalResolution")
        if isinstance(w, int) and isinstance(h, int) and (best is None or w * h > best[0] * best[1]):
            best = (w, h)
    return best


class WindowsProbes(SystemProbes):
    platform = "windows"

    def os_info(self) -> OsInfo:
        try:
            reg = self._cmd(*DISPLAY_VERSION)
        except CommandFailed:
            reg = None  # Windows 10 before 20H2 has no DisplayVersion
        return parse_os(self._cmd(*OS_QUERY), reg)

    def pcsc(self) -> PcscFacts:
        facts = super().pcsc()
        try:
            state = parse_sc_state(self._cmd(*SCARD_SERVICE)) or "unknown"
        except CommandFailed as exc:
            state = f"unknown ({exc})"
        detail = f"Smart Card service (SCardSvr) {state}" + (f"; {facts.detail}" if facts.detail else "")
        return replace(facts, detail=detail, source=f"{facts.source}; sc.exe query SCardSvr")

    def drivers(self) -> DriverFacts:
        return DriverFacts(parse_drivers(self._cmd(*DRIVERS_QUERY)), "Win32_PnPSignedDriver (SMARTCARDREADER)")

    def system_roots(self) -> RootStore:
        return RootStore(parse_base64_lines(self._cmd(*ROOTS_QUERY)), r"Cert:\LocalMachine\Root and \CA")

    def clock(self) -> ClockFacts:
        return parse_w32tm(self._cmd(*W32TM))

    def screen(self) -> ScreenFacts | None:
        size = parse_screen(self._cmd(*SCREEN_QUERY))
        return ScreenFacts(size[0], size[1], "Win32_VideoController") if size else None

    def removal_policy(self) -> RemovalPolicy:
        try:
            value = reg_value(self._cmd(*REMOVAL), "ScRemoveOption") or "0"
        except CommandFailed:
            value = "0"  # reg.exe exits 1 when the value is not set: Windows then takes no action
        return RemovalPolicy(f"{value} ({REMOVAL_MEANING.get(value, 'unknown')})",
                             "HKLM\\...\\Winlogon ScRemoveOption (Interactive logon: Smart card removal behavior)")

    def listening(self) -> ListeningFacts:
        return ListeningFacts(parse_netstat(self._cmd(*NETSTAT)), "netstat.exe -an")

    def local_addresses(self) -> LocalAddresses:
        return LocalAddresses(parse_addresses(self._cmd(*ADDRESSES_QUERY)), "Get-NetIPAddress")
