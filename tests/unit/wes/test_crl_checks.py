"""card.cert and pki.roots when the configured CRL has run out: FAIL with the text that says where IT must
publish a fresh CRL (the same words the service's refusal uses). The CA is dated from the checks' fixed NOW."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from app.pki import TrainingCA
from tests.support.wes.harness import NOW, TRAINING_ATR, run_one, spec_with
from wes import Status
from wes.probes.facts import AppTrust, CardCertificate, PcscFacts, Reader
from wes.probes.trust import sha256_hex

CRL_PATH = "/var/lib/spinedesk/issuing.crl"
CARD_IN_READER = PcscFacts(True, (Reader("Virtual PCD 00 00", True, TRAINING_ATR),))


def _site(directory, issued) -> tuple[AppTrust, CardCertificate, object]:
    """Trust facts as the probe reports them: the issuing CA as anchor, its CRL read from CRL_PATH."""
    ca = TrainingCA.load_or_create(directory, clock=lambda: issued)
    cert = ca.issue_card_certificate(ec.generate_private_key(ec.SECP256R1()).public_key(), name="Dr Stale",
                                     card_uuid=uuid.uuid4())
    issuing = ca.issuing.public_bytes(Encoding.DER)
    trust = AppTrust((issuing,), (), (ca.crl().public_bytes(Encoding.DER),), "site configuration",
                     crl_paths=(CRL_PATH,))
    spec = spec_with()  # production accepts this anchor only when the spec lists its SHA-256
    anchors = tuple(dataclasses.replace(a, sha256=sha256_hex(issuing)) if a.id == "nhs-authentication-g2" else a
                    for a in spec.anchors)
    return trust, CardCertificate("Virtual PCD 00 00", cert.public_bytes(Encoding.DER)), \
        dataclasses.replace(spec, anchors=anchors)


@pytest.fixture(scope="module")
def stale(tmp_path_factory):
    return _site(tmp_path_factory.mktemp("stale-ca"), NOW - timedelta(days=10))  # next update: NOW - 3 days


@pytest.fixture(scope="module")
def current(tmp_path_factory):
    return _site(tmp_path_factory.mktemp("current-ca"), NOW - timedelta(days=1))


def _says_publish_a_fresh_crl(evidence: str) -> bool:
    return "Revocation information is out of date" in evidence and f"publish a fresh CRL to {CRL_PATH}" in evidence


@pytest.mark.parametrize("mode", ["training", "production"])
def test_card_cert_fails_saying_where_to_publish_a_fresh_crl(probes, tmp_path, stale, mode):
    trust, card, spec = stale
    probes.pcsc_facts, probes.trust, probes.card = CARD_IN_READER, trust, card
    result = run_one("card.cert", probes, tmp_path, mode=mode, spec=spec)
    assert result.status is Status.FAIL and _says_publish_a_fresh_crl(result.evidence), result.evidence


@pytest.mark.parametrize("mode", ["training", "production"])
def test_pki_roots_fails_on_a_stale_crl_even_with_no_card_inserted(probes, tmp_path, stale, mode):
    trust, _, spec = stale
    probes.trust = trust
    result = run_one("pki.roots", probes, tmp_path, mode=mode, spec=spec)
    assert result.status is Status.FAIL and _says_publish_a_fresh_crl(result.evidence), result.evidence


def test_a_current_crl_passes(probes, tmp_path, current):
    trust, card, spec = current
    probes.pcsc_facts, probes.trust, probes.card = CARD_IN_READER, trust, card
    assert run_one("card.cert", probes, tmp_path, spec=spec).status is Status.PASS
    assert run_one("pki.roots", probes, tmp_path, spec=spec).status is Status.PASS
