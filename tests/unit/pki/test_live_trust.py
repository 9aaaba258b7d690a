"""LiveTrust: CRL files re-read while a process runs, and the per-request view of what they revoke.

Every test builds its CA on a fixed clock and decides at dates taken from that same clock."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.errors import CertificateRejected, PkiError, RevocationInfoStale
from app.pki import TrainingCA
from app.pki.live_trust import LiveTrust
from app.pki.revocation_view import CertRef
from tests.clock import Clock

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)




@pytest.fixture
def clock():
    return Clock(T0)


@pytest.fixture
def ca(tmp_path, clock):
    return TrainingCA.load_or_create(tmp_path / "ca", clock=clock)


def card(ca: TrainingCA) -> x509.Certificate:
    return ca.issue_card_certificate(ec.generate_private_key(ec.SECP256R1()).public_key(), name="Dr Live",
                                     card_uuid=uuid.uuid4())


def publish(ca: TrainingCA, path: Path, *, in_place: bool = False) -> None:
    data = ca.crl().public_bytes(serialization.Encoding.PEM)
    if in_place:
        path.write_bytes(data)
        return
    temp = path.with_name(path.name + ".new")
    temp.write_bytes(data)
    os.replace(temp, path)


def live(ca: TrainingCA, crl: Path, **kw) -> LiveTrust:
    return LiveTrust((ca.issuing,), (), (crl,), require_revocation=True, **kw)


@pytest.mark.parametrize("in_place", [False, True], ids=["renamed-over", "written-in-place"])
def test_a_changed_crl_file_is_read_at_the_next_call(ca, tmp_path, in_place):
    crl = tmp_path / "issuing.crl"
    publish(ca, crl)
    trust, cert = live(ca, crl), card(ca)
    before = trust.current(T0)
    assert before.problem(CertRef.of(cert), T0) is None
    assert trust.current(T0) is before  # nothing changed: the same view, nothing re-read
    ca.revoke(cert.serial_number)
    publish(ca, crl, in_place=in_place)
    after = trust.current(T0)
    assert after.generation == before.generation + 1
    problem = after.problem(CertRef.of(cert), T0)
    assert isinstance(problem, CertificateRejected) and problem.status == "revoked"


@pytest.mark.parametrize("damage", ["garbage", "missing", "foreign"])
def test_a_bad_new_file_keeps_the_last_good_crl_and_says_why(ca, tmp_path, damage):
    crl = tmp_path / "issuing.crl"
    publish(ca, crl)
    trust = live(ca, crl)
    generation = trust.current(T0).generation
    if damage == "garbage":
        crl.write_bytes(b"-----BEGIN X509 CRL-----\nnot base64\n-----END X509 CRL-----\n")
    elif damage == "missing":
        crl.unlink()
    else:
        publish(TrainingCA.load_or_create(tmp_path / "other", clock=lambda: T0), crl)
    view = trust.current(T0)
    assert view.generation == generation and view.next_update  # the CRL read before is still in use
    assert len(trust.errors) == 1 and str(crl) in trust.errors[0] and "still in use" in trust.errors[0]


def test_a_service_does_not_start_with_an_unusable_crl_file(ca, tmp_path):
    crl = tmp_path / "issuing.crl"
    publish(TrainingCA.load_or_create(tmp_path / "other", clock=lambda: T0), crl)
    with pytest.raises(PkiError, match="not signed by any configured authority"):
        live(ca, crl)


def test_an_asked_reload_rereads_even_an_unchanged_file(ca, tmp_path):
    crl = tmp_path / "issuing.crl"
    publish(ca, crl)
    trust = live(ca, crl)
    generation = trust.current(T0).generation
    trust.request_reload()
    assert trust.current(T0).generation == generation + 1
    assert trust.current(T0).generation == generation + 1  # once per request, not for ever
    assert trust.reload(T0).generation == generation + 2


def test_stale_crl_is_reported_with_the_file_to_replace(ca, tmp_path):
    crl = tmp_path / "issuing.crl"
    publish(ca, crl)
    trust, cert = live(ca, crl), card(ca)
    late = T0 + timedelta(days=8)
    problem = trust.current(late).problem(CertRef.of(cert), late)
    assert isinstance(problem, RevocationInfoStale)
    assert problem.paths == (str(crl),) and problem.next_update == T0 + timedelta(days=7)
    assert "Issuing CA 1" in problem.authority
    assert [s.authority for s in trust.current(late).stale_authorities(late)] == [problem.authority]


def test_training_ca_republishes_when_its_crl_nears_its_next_update(ca, clock):
    trust = LiveTrust((ca.root,), (ca.issuing,), (ca.directory / "crl.pem",), require_revocation=False,
                      refresh=ca.crl)
    assert trust.current(T0).earliest_next_update == T0 + timedelta(days=7)
    clock.at = T0 + timedelta(days=6, hours=12)  # less than a day left: the CA republishes, the file is read
    assert trust.current(clock()).earliest_next_update == clock() + timedelta(days=7)


def test_a_revoked_intermediate_revokes_what_it_issued(ca, tmp_path):
    """The root's own CRL (signed here with the training root's key) lists the issuing CA."""
    root_key = serialization.load_pem_private_key((ca.directory / "root.key").read_bytes(), password=None)
    assert isinstance(root_key, ec.EllipticCurvePrivateKey)
    entry = x509.RevokedCertificateBuilder().serial_number(ca.issuing.serial_number).revocation_date(T0).build()
    root_crl = (x509.CertificateRevocationListBuilder().issuer_name(ca.root.subject).last_update(T0)
                .next_update(T0 + timedelta(days=7)).add_revoked_certificate(entry)
                .add_extension(x509.CRLNumber(1), critical=False).sign(root_key, hashes.SHA384()))
    (tmp_path / "root.crl").write_bytes(root_crl.public_bytes(serialization.Encoding.PEM))
    publish(ca, tmp_path / "issuing.crl")
    trust = LiveTrust((ca.root,), (ca.issuing,), (tmp_path / "root.crl", tmp_path / "issuing.crl"),
                      require_revocation=True)
    problem = trust.current(T0).problem(CertRef.of(card(ca)), T0)
    assert isinstance(problem, CertificateRejected) and "issuing authority" in problem.detail


def test_require_revocation_without_a_crl_from_the_issuer_is_stale(ca, tmp_path):
    crl = tmp_path / "issuing.crl"
    publish(ca, crl)  # from the issuing CA; nothing from the root about the issuing CA
    trust = LiveTrust((ca.root,), (ca.issuing,), (crl,), require_revocation=True)
    problem = trust.current(T0).problem(CertRef.of(card(ca)), T0)
    assert isinstance(problem, RevocationInfoStale) and "Root" in problem.authority and problem.next_update is None
