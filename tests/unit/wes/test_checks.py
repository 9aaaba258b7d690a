"""Every check, from fixtures at the probe seam: pass, warn, fail and not applicable (ERROR is in test_runner).

Where a status cannot arise from the facts alone, the spec (data, not code) produces it: an advisory check's fail
is a warning unless the spec makes it required, and any check is not applicable where the spec's `platforms` or
`modes` exclude it.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from app.config import RemovalMode
from app.errors import NotPiv
from tests.support.wes.harness import NOW, OTHER_ATR, TRAINING_ATR, FakeProbes, run_one, settings_for, spec_with
from wes import Status
from wes.probes.facts import (
    AppTrust,
    CardCertificate,
    ClockFacts,
    DriverFacts,
    OsInfo,
    PcscFacts,
    Reader,
    RemovalPolicy,
    RootStore,
    RuntimeFacts,
    ScreenFacts,
    ServiceFacts,
    TlsAttempt,
    TlsFacts,
)

P, W, F, NA = Status.PASS, Status.WARN, Status.FAIL, Status.NOT_APPLICABLE
DOWN = PcscFacts(False, (), detail="establish context: Service not available. (0x8010001D)")
NO_READERS = PcscFacts(True, ())
EMPTY_READER = PcscFacts(True, (Reader("ACS ACR39U 00 00", False),))
VIRTUAL_ONLY = PcscFacts(True, (Reader("Virtual PCD 00 00", True, TRAINING_ATR),))
VPCD = DriverFacts(("/etc/reader.conf.d/vpcd: /usr/lib/pcsc/drivers/serial/libifdvpcd.so",), "fake")


def not_applicable_by_spec(check_id: str, probes: FakeProbes, tmp_path):
    spec = spec_with(**{check_id: {"platforms": ("windows",)}})
    return run_one(check_id, probes, tmp_path, spec=spec)


# --- os.supported -----------------------------------------------------------------------------------------------

def test_os_supported(probes, tmp_path):
    assert run_one("os.supported", probes, tmp_path).status is P
    probes.os = OsInfo("linux", "Ubuntu 22.04.5 LTS", "22.04", "ubuntu")
    near = run_one("os.supported", probes, tmp_path, now=NOW.replace(year=2027, month=3, day=1))
    assert near.status is W and "2027-04-30" in near.evidence
    probes.os = OsInfo("linux", "Debian GNU/Linux 11 (bullseye)", "11", "debian")
    old = run_one("os.supported", probes, tmp_path)
    assert old.status is F and "not listed" in old.evidence and "Debian 12" in old.evidence
    probes.os = OsInfo("windows", "Microsoft Windows 10 Pro", "19045", edition="Pro")
    ended = run_one("os.supported", probes, tmp_path)
    assert ended.status is F and "ended on 2025-10-14" in ended.evidence
    assert not_applicable_by_spec("os.supported", probes, tmp_path).status is NA


def test_os_supported_windows_editions_have_their_own_dates(probes, tmp_path):
    probes.os = OsInfo("windows", "Microsoft Windows 11 Enterprise", "26100", edition="Enterprise")
    assert run_one("os.supported", probes, tmp_path).status is P
    probes.os = OsInfo("windows", "Microsoft Windows 11 Pro", "26100", edition="Pro")
    assert run_one("os.supported", probes, tmp_path).status is F  # Home/Pro 24H2 ended 2026-10-13


def test_os_supported_macos_matches_major_version(probes, tmp_path):
    probes.os = OsInfo("macos", "macOS 15.3.1", "15.3.1")
    result = run_one("os.supported", probes, tmp_path)
    assert result.status is P and "no end-of-support date" in result.evidence


# --- pcsc.* ---------------------------------------------------------------------------------------------------------

def test_pcsc_service(probes, tmp_path):
    assert run_one("pcsc.service", probes, tmp_path).status is P
    probes.pcsc_facts = dataclasses.replace(probes.pcsc_facts, detail="Smart Card service (SCardSvr) RUNNING")
    assert "SCardSvr" in run_one("pcsc.service", probes, tmp_path).evidence
    probes.pcsc_facts = DOWN
    down = run_one("pcsc.service", probes, tmp_path)
    assert down.status is F and "0x8010001D" in down.evidence and "pcscd" in down.remediation
    assert not_applicable_by_spec("pcsc.service", probes, tmp_path).status is NA


def test_pcsc_service_warns_never_by_itself_so_the_spec_can_make_it_advisory(probes, tmp_path):
    probes.pcsc_facts = DOWN
    spec = spec_with(**{"pcsc.service": {"severity": __import__("wes").Severity.ADVISORY}})
    result = run_one("pcsc.service", probes, tmp_path, spec=spec)
    assert result.status is W and any("Advisory" in n for n in result.notes)


def test_pcsc_reader(probes, tmp_path):
    ok = run_one("pcsc.reader", probes, tmp_path)
    assert ok.status is P and "ACS ACR39U" in ok.evidence and any("ifd-ccid" in n for n in ok.notes)
    probes.pcsc_facts = NO_READERS
    assert run_one("pcsc.reader", probes, tmp_path).status is F
    probes.pcsc_facts = VIRTUAL_ONLY
    assert run_one("pcsc.reader", probes, tmp_path).status is P  # training: the virtual reader is the reader
    assert run_one("pcsc.reader", probes, tmp_path, mode="production").status is F
    probes.pcsc_facts = DOWN
    assert run_one("pcsc.reader", probes, tmp_path).status is NA
    spec = spec_with(**{"pcsc.reader": {"severity": __import__("wes").Severity.ADVISORY}})
    probes.pcsc_facts = NO_READERS
    assert run_one("pcsc.reader", probes, tmp_path, spec=spec).status is W


def test_pcsc_virtual(probes, tmp_path):
    assert run_one("pcsc.virtual", probes, tmp_path).status is P
    probes.driver_facts = VPCD
    training = run_one("pcsc.virtual", probes, tmp_path)
    assert training.status is P and "libifdvpcd" in training.evidence  # not listening beyond loopback
    production = run_one("pcsc.virtual", probes, tmp_path, mode="production")
    assert production.status is F and "production" in production.evidence
    probes.driver_facts = DriverFacts((), "fake")
    probes.pcsc_facts = VIRTUAL_ONLY  # a reader named like one, whatever its driver
    assert run_one("pcsc.virtual", probes, tmp_path, mode="production").status is F
    assert not_applicable_by_spec("pcsc.virtual", probes, tmp_path).status is NA


# --- card.* ---------------------------------------------------------------------------------------------------------

def test_card_present(probes, tmp_path):
    ok = run_one("card.present", probes, tmp_path)
    assert ok.status is P and "3B 7F" in ok.evidence
    probes.pcsc_facts = EMPTY_READER
    assert run_one("card.present", probes, tmp_path).status is W
    probes.pcsc_facts = NO_READERS
    assert run_one("card.present", probes, tmp_path).status is NA
    probes.pcsc_facts = DOWN
    assert run_one("card.present", probes, tmp_path).status is NA
    probes.pcsc_facts = EMPTY_READER
    spec = spec_with(**{"card.present": {"severity": __import__("wes").Severity.REQUIRED}})
    assert run_one("card.present", probes, tmp_path, spec=spec).status is W  # a missing card is never a fail


def test_card_series(probes, tmp_path):
    probes.pcsc_facts = VIRTUAL_ONLY
    training = run_one("card.series", probes, tmp_path)
    assert training.status is P and "training card" in training.evidence
    assert run_one("card.series", probes, tmp_path, mode="production").status is F
    probes.pcsc_facts = PcscFacts(True, (Reader("ACS ACR39U 00 00", True, OTHER_ATR),))
    unknown = run_one("card.series", probes, tmp_path)
    assert unknown.status is W and "not a card family" in unknown.evidence
    probes.pcsc_facts = EMPTY_READER
    assert run_one("card.series", probes, tmp_path).status is NA


NHS_CIS_JCOP41_ATR = bytes.fromhex("3B F9 18 00 00 81 31 FE 45 4A 43 4F 50 34 31 56 32 32 AF")  # series 5/6


def test_card_series_fails_a_series_4_to_6_card_from_the_day_nhs_blocked_it(probes, tmp_path):
    probes.pcsc_facts = PcscFacts(True, (Reader("ACS ACR39U 00 00", True, NHS_CIS_JCOP41_ATR),))
    blocked = run_one("card.series", probes, tmp_path, mode="production")
    assert blocked.status is F and "blocked from logging in since 2026-05-07" in blocked.evidence
    assert "replacement smartcard" in (blocked.remediation or "")
    before = run_one("card.series", probes, tmp_path, mode="production", now=datetime(2026, 5, 6, 12, tzinfo=UTC))
    assert before.status is P and "series 5/6" in before.evidence


@pytest.fixture(scope="module")
def training_trust(tmp_path_factory):
    from app.pki import TrainingCA

    ca = TrainingCA.load_or_create(tmp_path_factory.mktemp("wes-ca"), clock=lambda: NOW)  # the checks run at NOW
    store = ca.trust_store()
    trust = AppTrust(tuple(c.public_bytes(Encoding.DER) for c in store.anchors),
                     tuple(c.public_bytes(Encoding.DER) for c in store.intermediates),
                     tuple(c.public_bytes(Encoding.DER) for c in store.crls), "fake training CA")

    def cert(days: int, start_days_ago: int = 0) -> CardCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        c = ca.issue_card_certificate(key.public_key(), name="Dr Ada Training", card_uuid=uuid.uuid4(), days=days,
                                      not_before=NOW - timedelta(days=start_days_ago))
        return CardCertificate("Virtual PCD 00 00", c.public_bytes(Encoding.DER))

    return trust, cert


def test_card_cert(probes, tmp_path, training_trust):
    trust, cert = training_trust
    probes.pcsc_facts, probes.trust = VIRTUAL_ONLY, trust
    probes.card = cert(365)
    ok = run_one("card.cert", probes, tmp_path)
    assert ok.status is P and "trusted via" in ok.evidence
    probes.card = cert(30)
    renew = run_one("card.cert", probes, tmp_path)
    assert renew.status is W and "90-day renewal window" in renew.evidence
    probes.card = cert(10, start_days_ago=20)
    expired = run_one("card.cert", probes, tmp_path)
    assert expired.status is F and "expired" in expired.evidence
    probes.card = CardCertificate("Virtual PCD 00 00", None)
    assert run_one("card.cert", probes, tmp_path).status is F
    probes.card = NotPiv("the card has no PIV application")
    not_piv = run_one("card.cert", probes, tmp_path)
    assert not_piv.status is F and "not a PIV" in not_piv.evidence
    probes.pcsc_facts = EMPTY_READER
    assert run_one("card.cert", probes, tmp_path).status is NA


def test_card_cert_in_production_needs_an_anchor_listed_in_the_spec(probes, tmp_path, training_trust):
    trust, cert = training_trust
    probes.pcsc_facts, probes.trust, probes.card = VIRTUAL_ONLY, trust, cert(365)
    result = run_one("card.cert", probes, tmp_path, mode="production")
    assert result.status is F and "listed by SHA-256" in result.evidence
    assert any("not listed in the spec" in n for n in result.notes)


def test_card_cert_untrusted_issuer_fails(probes, tmp_path, training_trust, tmp_path_factory):
    from app.pki import TrainingCA

    _, cert = training_trust
    other = TrainingCA.load_or_create(tmp_path_factory.mktemp("other-ca"), clock=lambda: NOW).trust_store()
    probes.trust = AppTrust((other.anchors[0].public_bytes(Encoding.DER),), (), (), "other CA")
    probes.pcsc_facts, probes.card = VIRTUAL_ONLY, cert(365)
    result = run_one("card.cert", probes, tmp_path)
    assert result.status is F and "untrusted issuer" in result.evidence


# --- pki.roots ------------------------------------------------------------------------------------------------------

def _with_anchor_prints(prints: dict[str, str]):
    spec = spec_with()
    anchors = tuple(dataclasses.replace(a, sha256=prints.get(a.id, a.sha256)) for a in spec.anchors)
    return dataclasses.replace(spec, anchors=anchors)


def test_pki_roots_training(probes, tmp_path, training_trust):
    assert run_one("pki.roots", probes, tmp_path).status is W  # no training CA yet
    probes.trust = training_trust[0]
    ok = run_one("pki.roots", probes, tmp_path)
    assert ok.status is P and "SHA-256" in ok.evidence


def test_pki_roots_production(probes, tmp_path):
    import hashlib

    g2, auth, g1 = b"fake G2 root DER", b"fake G2 auth DER", b"fake G1 root DER"
    fp = {k: hashlib.sha256(v).hexdigest().upper() for k, v in
          {"nhs-root-g2": g2, "nhs-authentication-g2": auth, "nhs-g1": g1}.items()}
    spec = _with_anchor_prints(fp)
    placeholder = run_one("pki.roots", probes, tmp_path, mode="production")
    assert placeholder.status is Status.ERROR and "placeholder" in placeholder.evidence
    probes.roots = RootStore((g2, auth), "/etc/ssl/certs/ca-certificates.crt")
    assert run_one("pki.roots", probes, tmp_path, mode="production", spec=spec).status is P
    probes.roots = RootStore((g2, auth, g1), "bundle")
    old_too = run_one("pki.roots", probes, tmp_path, mode="production", spec=spec)
    assert old_too.status is W and "retired" in old_too.evidence
    probes.roots = RootStore((g1,), "bundle")
    only_g1 = run_one("pki.roots", probes, tmp_path, mode="production", spec=spec)
    assert only_g1.status is F and "Only retired (G1)" in only_g1.evidence
    probes.roots, probes.trust = RootStore((), "bundle"), AppTrust((g2,), (auth,), (), "/etc/xdg/SpineDesk/nhs.pem")
    assert run_one("pki.roots", probes, tmp_path, mode="production", spec=spec).status is P
    assert not_applicable_by_spec("pki.roots", probes, tmp_path).status is NA


# --- tls / net.spine ------------------------------------------------------------------------------------------------

def _tls(*accepted: str, cipher12: str = "ECDHE-RSA-AES256-GCM-SHA384", untested: tuple[str, ...] = ()):
    return TlsFacts("spine.example.invalid", 443, tuple(
        TlsAttempt(v, v in accepted, (cipher12 if v == "TLSv1.2" else "X") if v in accepted else None,
                   "not tested" if v in untested else "refused", tested=v not in untested)
        for v in ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")))


def test_tls(probes, tmp_path):
    probes.tls_facts = _tls("TLSv1.2", "TLSv1.3")
    assert run_one("tls", probes, tmp_path).status is P
    probes.tls_facts = _tls("TLSv1.2", cipher12="ECDHE-RSA-AES256-SHA384")
    assert run_one("tls", probes, tmp_path).status is W  # not AEAD
    probes.tls_facts = _tls("TLSv1.2", untested=("TLSv1",))
    assert run_one("tls", probes, tmp_path).status is W
    probes.tls_facts = _tls("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
    bad = run_one("tls", probes, tmp_path)
    assert bad.status is F and "TLSv1, TLSv1.1" in bad.evidence
    probes.tls_facts = _tls()
    assert run_one("tls", probes, tmp_path).status is F
    probes.tls_facts = TlsFacts("h", 443, (), error="unreachable: connection refused")
    assert run_one("tls", probes, tmp_path).status is NA
    assert run_one("tls", probes, tmp_path, service_url=None).status is NA
    assert run_one("tls", probes, tmp_path, service_url="http://127.0.0.1:8443").status is NA
    assert run_one("tls", probes, tmp_path, service_url="http://10.0.0.1", mode="production").status is F


def test_net_spine(probes, tmp_path):
    ok = run_one("net.spine", probes, tmp_path)
    assert ok.status is P and "HTTP 200" in ok.evidence and "12 ms" in ok.evidence
    probes.service_facts = dataclasses.replace(probes.service_facts, latency_ms=900.0)
    assert run_one("net.spine", probes, tmp_path).status is W
    probes.service_facts = ServiceFacts("u", False, error="connection refused (nothing listening on that port)")
    down = run_one("net.spine", probes, tmp_path)
    assert down.status is F and "connection refused" in down.evidence
    probes.service_facts = ServiceFacts("u", True, 503, 5.0, body='{"status": "fail"}')
    assert run_one("net.spine", probes, tmp_path).status is F
    assert run_one("net.spine", probes, tmp_path, service_url=None).status is NA


# --- time.sync ------------------------------------------------------------------------------------------------------

def test_time_sync(probes, tmp_path):
    assert run_one("time.sync", probes, tmp_path).status is P
    probes.clock_facts = ClockFacts(False, "timedatectl", "NTPSynchronized=no")
    assert run_one("time.sync", probes, tmp_path).status is W
    probes.clock_facts = ClockFacts(True, "timedatectl", "yes")
    probes.service_facts = dataclasses.replace(probes.service_facts, server_date=NOW - timedelta(seconds=30))
    assert run_one("time.sync", probes, tmp_path).status is W
    probes.service_facts = dataclasses.replace(probes.service_facts, server_date=NOW - timedelta(minutes=10))
    advisory = run_one("time.sync", probes, tmp_path)
    assert advisory.status is W and "+600 s" in advisory.evidence  # advisory: never a fail
    spec = spec_with(**{"time.sync": {"severity": __import__("wes").Severity.REQUIRED}})
    assert run_one("time.sync", probes, tmp_path, spec=spec).status is F
    probes.clock_facts = ClockFacts(None, "none", "cannot tell")
    assert run_one("time.sync", probes, tmp_path, service_url=None).status is W
    assert not_applicable_by_spec("time.sync", probes, tmp_path).status is NA


# --- client.version, screen, removal.mode ---------------------------------------------------------------------------

def test_client_version(probes, tmp_path):
    assert run_one("client.version", probes, tmp_path).status is P
    probes.runtime_facts = RuntimeFacts("0.1.0", "3.11.7", None)
    assert run_one("client.version", probes, tmp_path).status is W
    probes.runtime_facts = RuntimeFacts("0.0.9", "3.12.1", "6.5.0")
    old = run_one("client.version", probes, tmp_path)
    assert old.status is F and "0.0.9" in old.evidence and "3.12.1" in old.evidence and "6.5.0" in old.evidence
    assert not_applicable_by_spec("client.version", probes, tmp_path).status is NA


def test_screen(probes, tmp_path):
    assert run_one("screen", probes, tmp_path).status is P
    probes.screen_facts = ScreenFacts(800, 600, "fake")
    small = run_one("screen", probes, tmp_path)
    assert small.status is W and "800 x 600" in small.evidence  # advisory
    spec = spec_with(screen={"severity": __import__("wes").Severity.REQUIRED})
    assert run_one("screen", probes, tmp_path, spec=spec).status is F
    probes.screen_facts = None
    assert run_one("screen", probes, tmp_path).status is NA
    from_client = run_one("screen", probes, tmp_path, screen=(1366, 768))  # the desktop client knows its screen
    assert from_client.status is P and "the desktop client's screen" in from_client.evidence


def test_removal_mode(probes, tmp_path):
    assert run_one("removal.mode", probes, tmp_path).status is P
    probes.removal = RemovalPolicy("0 (no action)", "ScRemoveOption")
    windows = run_one("removal.mode", probes, tmp_path, mode="production")
    assert windows.status is W and "Lock Workstation" in windows.remediation
    strict = dataclasses.replace(spec_with(), client=dataclasses.replace(spec_with().client, card_removal=("logout",)))
    settings = settings_for(tmp_path, "production", card_removal=RemovalMode.LOCK)
    assert run_one("removal.mode", probes, tmp_path, mode="production", spec=strict, settings=settings).status is F
    spec = spec_with(**{"removal.mode": {"modes": ("production",)}})
    assert run_one("removal.mode", probes, tmp_path, spec=spec).status is NA


def test_net_spine_warns_when_the_service_reports_a_problem(probes, tmp_path):
    body = ('{"status":"warn","schema_version":5,"checks":{"audit":[{"status":"pass"}],"cpis-delivery":[{"status":'
            '"warn","observedValue":3,"output":"3 CP-IS notification(s) not delivered after 8 failed attempts"}]}}')
    probes.service_facts = dataclasses.replace(probes.service_facts, body=body)
    warned = run_one("net.spine", probes, tmp_path)
    assert warned.status is W and "cpis-delivery: 3 CP-IS notification(s) not delivered" in warned.evidence
    probes.service_facts = dataclasses.replace(probes.service_facts, body=body[:60])  # cut short by the probe
    assert run_one("net.spine", probes, tmp_path).status is W
    probes.service_facts = dataclasses.replace(probes.service_facts, body='{"status":"pass","schema_version":5}')
    assert run_one("net.spine", probes, tmp_path).status is P
