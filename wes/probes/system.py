"""The probes every platform shares (PC/SC, the card, the service, TLS, the application's own trust), and the
base the Linux, Windows and macOS probes extend with their own OS commands."""

from __future__ import annotations

import platform as _platform
from importlib import metadata
from typing import Any

from app import __version__
from app.config import Mode, Settings
from wes.probes import net
from wes.probes.commands import Runner, run
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


def qt_version() -> str | None:
    """PySide6's version from the installed distribution's metadata (the checker never imports Qt)."""
    for dist in ("PySide6-Essentials", "PySide6"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


class SystemProbes:
    """Real probes. Subclasses add the OS-specific ones; every method may raise, which makes the checks that
    depend on it report ``error`` (the run carries on)."""

    platform = "unknown"

    def __init__(self, settings: Settings, *, network_timeout: float = 2.0, runner: Runner = run,
                 command_timeout: float = 3.0, pcsc_system: Any = None) -> None:
        self.settings = settings
        self.pcsc_system = pcsc_system  # an app.card.pcsc.PcscSystem (default: a new one per probe)
        self.network_timeout = network_timeout
        self.run = runner
        self.command_timeout = command_timeout

    def _cmd(self, *argv: str) -> str:
        return self.run(argv, self.command_timeout)

    # --- shared --------------------------------------------------------------------------------------------
    def pcsc(self) -> PcscFacts:
        from wes.probes.pcsc import pcsc_facts

        return pcsc_facts(self.pcsc_system)

    def card_certificate(self, reader: str) -> CardCertificate:
        from wes.probes.pcsc import read_card_certificate

        return read_card_certificate(reader, self.pcsc_system)

    def app_trust(self) -> AppTrust:
        from wes.probes.trust import app_trust

        return app_trust(self.settings)

    def service(self, url: str) -> ServiceFacts:
        production = self.settings.mode is Mode.PRODUCTION
        cafile = self.settings.service_ca if production else None
        return net.probe_service(url, cafile=cafile, timeout=self.network_timeout)

    def tls(self, url: str) -> TlsFacts:
        return net.probe_tls(url, timeout=self.network_timeout)

    def runtime(self) -> RuntimeFacts:
        return RuntimeFacts(__version__, _platform.python_version(), qt_version())

    def removal_policy(self) -> RemovalPolicy:
        return RemovalPolicy(None, "")

    # --- per platform ---------------------------------------------------------------------------------------
    def os_info(self) -> OsInfo:
        return OsInfo(self.platform, _platform.platform(), _platform.release(), source="platform.platform()")

    def drivers(self) -> DriverFacts:
        return DriverFacts((), "no driver listing on this platform")

    def system_roots(self) -> RootStore:
        return RootStore((), "", error=f"no system trust store reader for {self.platform}")

    def clock(self) -> ClockFacts:
        return ClockFacts(None, "", f"no clock synchronisation probe for {self.platform}")

    def screen(self) -> ScreenFacts | None:
        return None

    def listening(self) -> ListeningFacts:
        return ListeningFacts((), "", error=f"no listening-socket probe for {self.platform}")

    def processes(self, name: str) -> ProcessFacts:
        return ProcessFacts(name, (), "", error=f"no process probe for {self.platform}")

    def local_addresses(self) -> LocalAddresses:
        return LocalAddresses((), "", error=f"no address listing for {self.platform}")

    def reachability(self, ports: tuple[int, ...]) -> ReachFacts:
        """Whether ``ports`` answer on this machine's addresses other than loopback (see wes.probes.reach)."""
        from wes.probes.reach import REACH_TIMEOUT, reach

        found = self.local_addresses()
        names = tuple(str(a) for a in found.addresses)
        if found.error:
            return ReachFacts(ports, names, (), found.source, REACH_TIMEOUT, error=found.error)
        return ReachFacts(ports, names, reach(found.addresses, ports, timeout=REACH_TIMEOUT), found.source,
                          REACH_TIMEOUT)
