"""Probes: the only code in ``wes`` that touches the operating system. Checks ask a :class:`Probes` object.

:func:`default_probes` picks the real probes for this platform; tests hand :func:`wes.run_checks` fakes that
implement the same protocol, or the real platform classes driven by recorded command outputs.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from app.config import Settings
from wes.probes.facts import (
    AppTrust,
    CardCertificate,
    ClockFacts,
    DriverFacts,
    ListeningFacts,
    LocalAddresses,
    OsInfo,
    PcscFacts,
    ProcessFacts,
    ReachFacts,
    RemovalPolicy,
    RootStore,
    RuntimeFacts,
    ScreenFacts,
    ServiceFacts,
    TlsFacts,
)

T = TypeVar("T")


class Probes(Protocol):
    def os_info(self) -> OsInfo: ...
    def pcsc(self) -> PcscFacts: ...
    def drivers(self) -> DriverFacts: ...
    def card_certificate(self, reader: str) -> CardCertificate: ...
    def system_roots(self) -> RootStore: ...
    def app_trust(self) -> AppTrust: ...
    def service(self, url: str) -> ServiceFacts: ...
    def tls(self, url: str) -> TlsFacts: ...
    def clock(self) -> ClockFacts: ...
    def screen(self) -> ScreenFacts | None: ...
    def removal_policy(self) -> RemovalPolicy: ...
    def runtime(self) -> RuntimeFacts: ...
    def listening(self) -> ListeningFacts: ...
    def processes(self, name: str) -> ProcessFacts: ...
    def local_addresses(self) -> LocalAddresses: ...
    def reachability(self, ports: tuple[int, ...]) -> ReachFacts: ...


def platform_name(value: str | None = None) -> str:
    value = value or sys.platform
    if value.startswith("win"):
        return "windows"
    if value == "darwin":
        return "macos"
    if value.startswith("linux"):
        return "linux"
    return value


def default_probes(settings: Settings, *, network_timeout: float = 2.0, platform: str | None = None) -> Probes:
    name = platform_name(platform)
    if name == "windows":
        from wes.probes.windows import WindowsProbes

        return WindowsProbes(settings, network_timeout=network_timeout)
    if name == "macos":
        from wes.probes.macos import MacProbes

        return MacProbes(settings, network_timeout=network_timeout)
    if name == "linux":
        from wes.probes.linux import LinuxProbes

        return LinuxProbes(settings, network_timeout=network_timeout)
    from wes.probes.system import SystemProbes

    probes = SystemProbes(settings, network_timeout=network_timeout)
    probes.platform = name
    return probes


class _Once:
    """A value computed by the first caller; concurrent callers wait for it (an exception is shared too)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None


class CachedProbes:
    """Wraps probes so checks running in parallel share one answer per probe (and per argument): pcscd is asked
    once for five smartcard checks, the service once for net.spine and time.sync."""

    def __init__(self, inner: Probes, overrides: dict[str, Any] | None = None) -> None:
        self._inner = inner
        self._overrides = dict(overrides or {})  # probe name -> the answer to give instead (e.g. the client's screen)
        self._cells: dict[tuple[str, tuple[Any, ...]], _Once] = {}
        self._lock = threading.Lock()

    def _get(self, name: str, *args: Any) -> Any:
        if name in self._overrides:
            return self._overrides[name]
        with self._lock:
            cell = self._cells.setdefault((name, args), _Once())
        with cell.lock:
            if not cell.done:
                try:
                    cell.value = getattr(self._inner, name)(*args)
                except Exception as exc:  # remembered: every check that needs it reports the same error
                    cell.error = exc
                cell.done = True
        if cell.error is not None:
            raise cell.error
        return cell.value

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or not callable(getattr(self._inner, name, None)):
            raise AttributeError(name)
        return lambda *args: self._get(name, *args)
