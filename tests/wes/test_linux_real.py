"""The real Linux run: pcscd with the vsmartcard virtual reader, training cards served to it, the real probes
(no fakes). pcscd is stopped in one test and always started again. With CI set these fail rather than skip."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from app.card.virtual import CardFile
from app.card.virtual.fascn import build_fascn
from app.config import Mode, Paths, Settings
from tests.integration.conftest import PIN, PUK, READER0, issue_to, spinedesk, start_pcscd, stop_pcscd
from wes import Status, run_checks
from wes.probes.trust import sha256_hex
from wes.report.text import render_text
from wes.spec import SPEC_DIR, load_spec

pytestmark = pytest.mark.pcsc
CARD_CHECKS = ["pcsc.service", "pcsc.reader", "pcsc.virtual", "card.present", "card.series", "card.cert"]


def real_settings(training_dir: Path, mode: str = "training", **extra) -> Settings:
    paths = Paths(training_dir / "config", training_dir, training_dir / "log", training_dir / "site.toml")
    if mode == "production":
        return Settings(paths=paths, mode=Mode.PRODUCTION, service_url=extra.pop("service_url", "https://127.0.0.1:9"),
                        **extra)
    return Settings(paths=paths, **extra)


@pytest.fixture(scope="module")
def card_template(ca, tmp_path_factory) -> Path:
    return issue_to(ca, tmp_path_factory.mktemp("wes-cards") / "p256.json", alg="p256")


@pytest.fixture
def card(card_template, tmp_path) -> Path:
    return Path(shutil.copy(card_template, tmp_path / "card.json"))  # PIN counters live in the file


def card_with_dates(ca, path: Path, *, start: datetime, days: int) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    card_uuid = uuid.uuid4()
    cert = ca.issue_card_certificate(key.public_key(), name="Dr Old Card", card_uuid=card_uuid, days=days,
                                     not_before=start)
    CardFile.create(holder_name="Dr Old Card", card_uuid=card_uuid, fascn=build_fascn(card_uuid), private_key=key,
                    certificate=cert, chuid_expiry=cert.not_valid_after_utc.date(), pin=PIN, puk=PUK).save(path)
    return path


def isolation_waiver(directory: Path) -> Path:
    """A waiver declaring this training machine isolated, live for a month from today (the real clock's date)."""
    until = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    path = directory / "wes-waivers.toml"
    path.write_text(f'[[waiver]]\ncheck = "pcsc.virtual"\nreason = "Test machine, isolated network"\n'
                    f'who = "Spine Desk tests"\nuntil = {until}\nmodes = ["training"]\n', encoding="utf-8")
    return path


def vpcd_guarded(settings: Settings) -> bool:
    """Whether pcsc.virtual finds vpcd guarded by this machine's host firewall (scripts/vpcd-guard.nft, loaded by
    scripts/setup.sh as root where nft may) rather than reachable; the verdict itself is tested with fake probe
    results (test_virtual_reader_exposure.py) and the real guard on a scratch port (test_vpcd_guard_real.py)."""
    return run_checks(settings=settings, checks=["pcsc.virtual"]).result("pcsc.virtual").status is Status.PASS


def test_training_workstation_with_a_training_card(pcscd, insert, card, training_dir, ca, caplog, tmp_path):
    inserted = insert(card)
    tries = inserted.card.pin_tries_left
    waivers = isolation_waiver(tmp_path)  # not beside site.toml: the other tests must not see it
    with caplog.at_level(logging.DEBUG):
        report = run_checks(mode="training", settings=real_settings(training_dir), waivers_path=waivers)
    status = {r.id: r.status for r in report.results}
    assert status["pcsc.service"] is Status.PASS
    assert status["pcsc.reader"] is Status.PASS and READER0 in report.result("pcsc.reader").evidence
    # Debian's vpcd listens on 0.0.0.0: reachable from the network, a fail in training too, here waived; unless the
    # host firewall guard is loaded (scripts/setup.sh as root), which the check verifies by connecting: a pass
    virtual = report.result("pcsc.virtual")
    assert "0.0.0.0:35963" in virtual.evidence, virtual.evidence
    if virtual.status is Status.PASS:
        assert "guarded" in virtual.evidence, virtual.evidence
    else:
        assert virtual.status is Status.WAIVED, virtual.evidence
    assert status["pcsc.apdu_logging"] is Status.PASS and "pcscd" in report.result("pcsc.apdu_logging").evidence
    assert status["card.present"] is Status.PASS and "3B 8C 01" in report.result("card.present").evidence
    assert status["card.series"] is Status.PASS
    assert status["card.cert"] is Status.PASS, report.result("card.cert").evidence
    assert status["pki.roots"] is Status.PASS
    assert sha256_hex(ca.root.public_bytes(Encoding.DER)) in report.result("pki.roots").evidence.replace(":", "")
    assert report.compliant, render_text(report)
    assert PIN not in caplog.text and PIN not in json.dumps(report.to_json())  # the checker never asks for a PIN
    assert inserted.card.pin_tries_left == tries


def test_the_command_line_on_the_same_machine(pcscd, insert, card, training_dir, tmp_path):
    insert(card)
    env = {"SPINEDESK_DATA_DIR": str(training_dir)}
    unwaived = spinedesk("wes", "check", "--silent", env=env)
    # vpcd on 0.0.0.0, no guard and no waiver: not compliant, even in training
    assert unwaived.returncode == (0 if vpcd_guarded(real_settings(training_dir)) else 1), unwaived.stdout
    done = spinedesk("wes", "check", "--format", "json", "--waivers", str(isolation_waiver(tmp_path)), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    jsonschema.validate(doc, json.loads((SPEC_DIR.parent / "report" / "schema.json").read_text()))
    assert doc["compliant"] is True and doc["mode"] == "training" and doc["hostname"]
    production = spinedesk("wes", "check", "--mode", "production", "--silent", env=env)
    assert (production.returncode, production.stdout) == (1, "")


def test_virtual_reader_and_training_card_fail_in_production(pcscd, insert, card, training_dir, ca):
    insert(card)
    anchors = (ca.directory / "root.pem",)
    settings = real_settings(training_dir, "production", trust_anchors=anchors,
                             trust_intermediates=(ca.directory / "issuing.pem",),
                             trust_crls=(ca.directory / "crl.pem",))
    report = run_checks(mode="production", settings=settings, checks=CARD_CHECKS)
    status = {r.id: r.status for r in report.results}
    assert status["pcsc.virtual"] is Status.FAIL and "libifdvpcd" in report.result("pcsc.virtual").evidence
    assert status["pcsc.reader"] is Status.FAIL  # only the virtual reader
    assert status["card.series"] is Status.FAIL  # a training card
    assert status["card.cert"] is Status.FAIL and "listed by SHA-256" in report.result("card.cert").evidence
    assert not report.compliant
    # once IT lists this root's fingerprint in the spec, the chain is built to it; production then also demands
    # revocation data for every certificate on the path, which the training CA does not publish for its issuer
    spec = load_spec()
    root_print = sha256_hex(ca.root.public_bytes(Encoding.DER))
    listed = dataclasses.replace(spec, anchors=tuple(
        dataclasses.replace(a, sha256=root_print) if a.id == "nhs-root-g2" else a for a in spec.anchors))
    again = run_checks(mode="production", settings=settings, spec=listed, checks=["card.cert"])
    result = again.result("card.cert")
    assert result.status is Status.FAIL and "revocation cannot be checked" in result.evidence, result.evidence
    assert not any("not listed in the spec" in n for n in result.notes)


def test_expired_and_renewal_due_card_certificates(pcscd, insert, training_dir, ca, tmp_path):
    now = datetime.now(UTC)
    expired = card_with_dates(ca, tmp_path / "expired.json", start=now - timedelta(days=40), days=30)
    card = insert(expired)
    result = run_checks(settings=real_settings(training_dir), checks=["card.cert"]).result("card.cert")
    assert result.status is Status.FAIL and "expired" in result.evidence, result.evidence
    card.pull()
    renewal = card_with_dates(ca, tmp_path / "renew.json", start=now - timedelta(days=1), days=31)
    insert(renewal)
    result = run_checks(settings=real_settings(training_dir), checks=["card.cert"]).result("card.cert")
    assert result.status is Status.WARN and "renewal window" in result.evidence, result.evidence


def test_pcscd_stopped(pcscd, training_dir):
    stop_pcscd()
    try:
        report = run_checks(settings=real_settings(training_dir), checks=CARD_CHECKS)
        done = spinedesk("wes", "check", env={"SPINEDESK_DATA_DIR": str(training_dir)})
    finally:
        start_pcscd()
    status = {r.id: r.status for r in report.results}
    assert status["pcsc.service"] is Status.FAIL and "0x8010001D" in report.result("pcsc.service").evidence
    assert {status[c] for c in ("pcsc.reader", "card.present", "card.series", "card.cert")} == {
        Status.NOT_APPLICABLE}
    virtual = report.result("pcsc.virtual")  # the driver is still installed, but nothing listens for cards
    assert virtual.status is Status.PASS and "nothing is listening" in virtual.evidence, virtual.evidence
    assert done.returncode == 1 and "FAIL   pcsc.service" in done.stdout and "Traceback" not in done.stderr
    assert pcscd.readers()  # back for the next test


def test_the_running_pcscd_does_not_log_apdus(pcscd, tmp_path):
    """This machine's pcscd, started without --apdu: the check reads its real command line from /proc."""
    result = run_checks(settings=real_settings(tmp_path), checks=["pcsc.apdu_logging"]).result("pcsc.apdu_logging")
    assert result.status is Status.PASS and "pcscd" in result.evidence and "/proc/*/cmdline" in result.evidence
