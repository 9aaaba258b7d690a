"""The tls and net.spine checks against a real TLS server on loopback: 1.0/1.1 offered is a fail, 1.2+ a pass."""

from __future__ import annotations

import pytest

from tests.support.wes.harness import settings_for
from tests.support.wes.tls_server import https_server
from wes import Status, run_checks


def check(tmp_path, url, cert):
    settings = settings_for(tmp_path, "production", service_url=url, service_ca=cert)
    return run_checks(mode="production", settings=settings, checks=["tls", "net.spine", "time.sync"])


def test_a_service_offering_tls_10_and_11_fails(tmp_path):
    with https_server(tmp_path, "TLSv1") as (url, cert):
        report = check(tmp_path, url, cert)
    tls = report.result("tls")
    assert tls.status is Status.FAIL, tls.evidence
    assert "accepts TLSv1, TLSv1.1" in tls.evidence
    assert "TLSv1.2 accepted" in tls.evidence and "TLSv1.3 accepted" in tls.evidence
    assert report.result("net.spine").status is Status.PASS


def test_a_service_with_tls_12_and_up_passes(tmp_path):
    with https_server(tmp_path, "TLSv1.2") as (url, cert):
        report = check(tmp_path, url, cert)
    tls = report.result("tls")
    assert tls.status is Status.PASS, tls.evidence
    assert "TLSv1 refused by the service" in tls.evidence and "TLSv1.1 refused by the service" in tls.evidence
    net = report.result("net.spine")
    assert net.status is Status.PASS and "answered HTTP 200" in net.evidence
    assert "drift against the service's Date header" in report.result("time.sync").evidence


def test_an_untrusted_service_certificate_fails_net_spine(tmp_path):
    with https_server(tmp_path, "TLSv1.2") as (url, _cert):
        settings = settings_for(tmp_path, "production", service_url=url)  # no service CA: system roots only
        report = run_checks(mode="production", settings=settings, checks=["net.spine"])
    result = report.result("net.spine")
    assert result.status is Status.FAIL and "not trusted" in result.evidence


@pytest.mark.parametrize("url", ["https://127.0.0.1:9", "http://127.0.0.1:9"])
def test_nothing_listening(tmp_path, url):
    settings = settings_for(tmp_path, "production", service_url=url)
    report = run_checks(mode="production", settings=settings, checks=["tls", "net.spine"])
    assert report.result("net.spine").status is Status.FAIL
    assert "connection refused" in report.result("net.spine").evidence
    expected = Status.NOT_APPLICABLE if url.startswith("https") else Status.FAIL  # plain http in production
    assert report.result("tls").status is expected
