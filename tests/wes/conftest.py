"""WES test helpers: fake probes at the probe seam (unit tests), recorded OS outputs, and the real pcscd
fixtures from tests/integration (imported so the real-Linux tests share the reader handling)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.config import Mode, Paths, RemovalMode, Settings

if os.environ.get("CI") and not os.environ.get("SPINEDESK_REQUIRE_PCSC"):
    os.environ["SPINEDESK_REQUIRE_PCSC"] = "1"  # as scripts/setup.sh does: under CI, pcscd tests fail, never skip

from tests.integration.conftest import ca, insert, pcscd, training_dir  # noqa: F401  (shared fixtures)
from wes import run_checks
from wes.probes.facts import (
    AppTrust,
    CardCertificate,
    ClockFacts,
    ConnectAttempt,
    DriverFacts,
    ListeningFacts,
    LocalAddresses,
    OsInfo,
    PcscFacts,
    ProcessFacts,
    ReachFacts,
    Reader,
    RemovalPolicy,
    RootStore,
    RuntimeFacts,
    ScreenFacts,
    ServiceFacts,
    TlsAttempt,
    TlsFacts,
)
from wes.spec import load_spec

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
TRAINING_ATR = bytes.fromhex("3B8C01805A5350494E452D4445534B22")
OTHER_ATR = bytes.fromhex("3B7F96000080318065B0850300EF120FFE829000")


def fixture_text(*parts: str) -> str:
    return FIXTURES.joinpath(*parts).read_text(encoding="utf-8")


def settings_for(tmp: Path, mode: str = "training", **extra) -> Settings:
    paths = Paths(tmp / "config", tmp / "data", tmp / "log", tmp / "site" / "spinedesk.toml")
    if mode == "production":
        extra.setdefault("service_url", "https://spine.example.invalid")
        return Settings(paths=paths, mode=Mode.PRODUCTION, card_removal=extra.pop("card_removal", RemovalMode.LOCK),
                        **extra)
    return Settings(paths=paths, **extra)


@dataclass
class FakeProbes:
    """Every probe answers from a field; a field holding an exception is raised. Defaults describe a healthy
    training workstation: Debian 12, pcscd with one physical reader holding an unknown card, and so on."""

    os: object = field(default_factory=lambda: OsInfo("linux", "Debian GNU/Linux 12 (bookworm)", "12", "debian",
                                                      source="/etc/os-release"))
    pcsc_facts: object = field(default_factory=lambda: PcscFacts(True, (Reader("ACS ACR39U 00 00", True, OTHER_ATR),),
                                                                source="fake"))
    driver_facts: object = field(default_factory=lambda: DriverFacts(("/usr/lib/pcsc/drivers/ifd-ccid.bundle",),
                                                                     "fake"))
    card: object = None  # CardCertificate, or None: card_certificate() then raises
    roots: object = field(default_factory=lambda: RootStore((), "fake bundle"))
    trust: object = field(default_factory=lambda: AppTrust((), (), (), "fake", error="no training CA"))
    service_facts: object = field(default_factory=lambda: ServiceFacts(
        "https://spine.example.invalid", True, 200, 12.0, NOW, NOW, '{"status": "pass"}'))
    tls_facts: object = field(default_factory=lambda: TlsFacts("spine.example.invalid", 443, (
        TlsAttempt("TLSv1", False, detail="refused by the service"),
        TlsAttempt("TLSv1.1", False, detail="refused by the service"),
        TlsAttempt("TLSv1.2", True, "ECDHE-RSA-AES256-GCM-SHA384"),
        TlsAttempt("TLSv1.3", True, "TLS_AES_256_GCM_SHA384"))))
    clock_facts: object = field(default_factory=lambda: ClockFacts(True, "fake", "synchronised"))
    screen_facts: object = field(default_factory=lambda: ScreenFacts(1920, 1080, "fake"))
    removal: object = field(default_factory=lambda: RemovalPolicy(None, ""))
    runtime_facts: object = field(default_factory=lambda: RuntimeFacts("0.1.0", "3.11.7", "6.12.0"))
    listening_facts: object = field(default_factory=lambda: ListeningFacts((), "fake"))  # vpcd not listening
    pcscd_facts: object = field(default_factory=lambda: ProcessFacts(
        "pcscd", (("/usr/sbin/pcscd", "--foreground", "--auto-exit"),), "fake"))
    # asked only when vpcd listens beyond loopback: by default it answers from the network (a connect got through)
    reach_facts: object = field(default_factory=lambda: ReachFacts(
        (35963, 35964), ("192.0.2.20",), (ConnectAttempt("192.0.2.20", 35963, "connected"),
                                          ConnectAttempt("192.0.2.20", 35964, "connected")), "fake", 0.3))
    calls: list = field(default_factory=list)

    def _give(self, name: str, value: object) -> object:
        self.calls.append(name)
        if isinstance(value, BaseException):
            raise value
        return value

    def os_info(self): return self._give("os_info", self.os)
    def pcsc(self): return self._give("pcsc", self.pcsc_facts)
    def drivers(self): return self._give("drivers", self.driver_facts)
    def system_roots(self): return self._give("system_roots", self.roots)
    def app_trust(self): return self._give("app_trust", self.trust)
    def service(self, url): return self._give("service", self.service_facts)
    def tls(self, url): return self._give("tls", self.tls_facts)
    def clock(self): return self._give("clock", self.clock_facts)
    def screen(self): return self._give("screen", self.screen_facts)
    def removal_policy(self): return self._give("removal_policy", self.removal)
    def runtime(self): return self._give("runtime", self.runtime_facts)
    def listening(self): return self._give("listening", self.listening_facts)
    def local_addresses(self): return self._give("local_addresses", LocalAddresses((), "fake"))
    def reachability(self, ports): return self._give("reachability", self.reach_facts)

    def processes(self, name: str):
        assert name == "pcscd"
        return self._give("processes", self.pcscd_facts)

    def card_certificate(self, reader: str) -> CardCertificate:
        if self.card is None:
            raise AssertionError("no card certificate was set up for this test")
        return self._give("card_certificate", self.card)


def spec_with(**check_changes):
    """The shipped spec with some checks' fields replaced, e.g. spec_with(screen={"severity": "required"})."""
    spec = load_spec()
    checks = dict(spec.checks)
    for cid, changes in check_changes.items():
        checks[cid] = dataclasses.replace(checks[cid], **changes)
    return dataclasses.replace(spec, checks=checks)


def run_one(check_id: str | Sequence[str], probes: FakeProbes, tmp_path: Path, *, mode: str = "training",
            service_url: str | None = "https://spine.example.invalid", settings: Settings | None = None, **kw):
    ids = [check_id] if isinstance(check_id, str) else list(check_id)
    settings = settings or settings_for(tmp_path, mode)
    report = run_checks(mode=mode, settings=settings, probes=probes, service_url=service_url, checks=ids,
                        now=kw.pop("now", NOW), platform=kw.pop("platform", "linux"), hostname="test-host", **kw)
    return report.results[0] if isinstance(check_id, str) else report


@pytest.fixture
def probes() -> FakeProbes:
    return FakeProbes()
