"""What probes find, as frozen dataclasses. Checks read these and never touch the system themselves."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class OsInfo:
    platform: str  # "windows" | "macos" | "linux" | anything else sys.platform says
    name: str  # as the system names itself ("Debian GNU/Linux 12 (bookworm)", "Microsoft Windows 11 Pro")
    version: str  # the matching key: Windows build number, macOS product version, Linux VERSION_ID
    distro: str | None = None  # Linux os-release ID
    edition: str | None = None  # Windows edition from the caption ("Pro", "Enterprise", …)
    display_version: str | None = None  # Windows DisplayVersion ("24H2"), macOS build
    source: str = ""


@dataclass(frozen=True)
class Reader:
    name: str
    card_present: bool
    atr: bytes = b""


@dataclass(frozen=True)
class PcscFacts:
    running: bool
    readers: tuple[Reader, ...] = ()
    detail: str = ""  # why not running, or the service state the OS reports
    source: str = ""


@dataclass(frozen=True)
class DriverFacts:
    """Reader drivers installed (file names or device/driver names), whether or not a reader uses them."""

    drivers: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class CardCertificate:
    reader: str
    der: bytes | None  # None when the card holds no PIV Authentication certificate
    label: str | None = None


@dataclass(frozen=True)
class RootStore:
    """Certificates (DER) the operating system trusts, from ``source``; ``error`` when it could not be read."""

    certificates: tuple[bytes, ...]
    source: str
    error: str = ""


@dataclass(frozen=True)
class AppTrust:
    """The anchors (and intermediates) this application trusts for card certificates, by mode."""

    anchors: tuple[bytes, ...]
    intermediates: tuple[bytes, ...]
    crls: tuple[bytes, ...]
    source: str
    error: str = ""
    crl_paths: tuple[str, ...] = ()  # the file each of ``crls`` was read from, in the same order


@dataclass(frozen=True)
class ServiceFacts:
    url: str
    reachable: bool
    status_code: int | None = None
    latency_ms: float | None = None
    server_date: datetime | None = None
    local_time: datetime | None = None  # this clock when the answer arrived (for drift)
    body: str = ""
    error: str = ""


@dataclass(frozen=True)
class TlsAttempt:
    version: str  # "TLSv1" … "TLSv1.3"
    accepted: bool
    cipher: str | None = None
    detail: str = ""  # why it failed; "not tested" when this machine's TLS library cannot offer the version
    tested: bool = True


@dataclass(frozen=True)
class TlsFacts:
    host: str
    port: int
    attempts: tuple[TlsAttempt, ...]
    error: str = ""  # the service could not be reached at all


@dataclass(frozen=True)
class ClockFacts:
    synchronised: bool | None  # None: this system cannot tell
    source: str
    detail: str = ""


@dataclass(frozen=True)
class ScreenFacts:
    width: int
    height: int
    source: str


@dataclass(frozen=True)
class RuntimeFacts:
    client_version: str
    python_version: str
    qt_version: str | None


@dataclass(frozen=True)
class RemovalPolicy:
    """What the OS itself does when a smartcard is removed (Windows 'scremoveoption'), when it can be read."""

    value: str | None
    source: str


@dataclass(frozen=True)
class ListeningSocket:
    address: str  # as listened on: "0.0.0.0", "::", "127.0.0.1", "::1", a specific interface's address
    port: int
    # connections waiting for the program to accept() them, where the system shows it (Linux); None elsewhere
    queued: int | None = field(default=None, compare=False)

    @property
    def loopback_only(self) -> bool:
        """Reachable from this machine only (127.0.0.0/8, ::1, or IPv4-mapped loopback)."""
        try:
            ip = ipaddress.ip_address(self.address)
        except ValueError:
            return False
        mapped = getattr(ip, "ipv4_mapped", None)
        return ip.is_loopback or bool(mapped and mapped.is_loopback)


@dataclass(frozen=True)
class ListeningFacts:
    """TCP sockets in the LISTEN state on this machine; ``error`` when this system cannot tell (no probe, unreadable).
    Host firewall rules are not seen here: whether one guards a socket listening beyond loopback is tried by
    connecting (:class:`ReachFacts`)."""

    sockets: tuple[ListeningSocket, ...]
    source: str
    error: str = ""


@dataclass(frozen=True)
class ProcessFacts:
    """The command lines (argv) of the running processes named ``name``; ``error`` when this system cannot tell."""

    name: str
    commands: tuple[tuple[str, ...], ...]
    source: str
    error: str = ""


@dataclass(frozen=True)
class LocalAddress:
    """An address of this machine other than loopback; ``scope_id`` is the interface index an IPv6 link-local
    address needs (0 otherwise)."""

    address: str
    scope_id: int = 0
    interface: str = ""

    def __str__(self) -> str:
        return f"{self.address}%{self.interface or self.scope_id}" if self.scope_id else self.address


@dataclass(frozen=True)
class LocalAddresses:
    """This machine's addresses other than loopback; ``error`` when this system cannot list them."""

    addresses: tuple[LocalAddress, ...]
    source: str
    error: str = ""


CONNECTED, REFUSED, TIMEOUT, FAILED = "connected", "refused", "timeout", "error"


@dataclass(frozen=True)
class ConnectAttempt:
    """One TCP connect to ``address``:``port`` from a socket bound to ``address``: the SYN goes through loopback
    but carries that address as its source, as a packet from the network would, so a host firewall that admits
    only loopback sources drops it (``timeout``). ``result``: connected, refused, timeout or error."""

    address: str
    port: int
    result: str
    detail: str = ""


@dataclass(frozen=True)
class ReachFacts:
    """Whether TCP ``ports`` answer on this machine's addresses other than loopback: one attempt per address and
    port."""

    ports: tuple[int, ...]
    addresses: tuple[str, ...]
    attempts: tuple[ConnectAttempt, ...]
    source: str  # where the addresses came from
    timeout: float
    error: str = ""  # the addresses could not be listed: nothing was tried
