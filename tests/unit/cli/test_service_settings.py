"""The service's settings from the environment (SCR episode length, CP-IS lease) reach every worker process through
its ServiceConfig, and the features use the values passed in."""

from __future__ import annotations

from pathlib import Path

from app.cli import build_parser
from app.cli.service import _config
from app.config import SERVICE_CONFIG_ENV, load_settings
from app.service.runtime import ServiceConfig, build_service


def test_scr_hours_and_cpis_lease_travel_from_the_environment_to_the_worker_service(tmp_path: Path) -> None:
    settings = load_settings({"SPINEDESK_SITE_CONFIG": str(tmp_path / "absent.toml"),
                              "SPINEDESK_DATA_DIR": str(tmp_path / "data"),
                              "SPINEDESK_SCR_EPISODE_HOURS": "2", "SPINEDESK_CPIS_LEASE_SECONDS": "6"})
    args = build_parser().parse_args(["service", "--database", f"sqlite:///{tmp_path / 'service.db'}"])
    config = _config(args, settings)
    assert (config.scr_episode_hours, config.cpis_lease_seconds) == (2.0, 6.0)
    worker = ServiceConfig.from_env({SERVICE_CONFIG_ENV: config.to_env()})  # what each worker process reads
    assert worker == config
    service = build_service(worker)
    try:
        assert service.deliverer is not None and service.deliverer.lease_seconds == 6.0
        assert service.context.scr_episode_hours == 2.0
    finally:
        service.close()


def test_without_settings_the_features_keep_their_defaults(tmp_path: Path) -> None:
    service = build_service(ServiceConfig(f"sqlite:///{tmp_path / 'service.db'}",
                                          training_pki=str(tmp_path / "pki")))
    try:
        assert service.deliverer is not None and service.deliverer.lease_seconds == 30.0
    finally:
        service.close()


def test_trust_identity_travels_from_the_site_configuration_to_the_worker_service(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from app.pki import IdentityAttribute
    from app.service.runtime import identity_policy
    from tests.support.nhs_pki import NhsTestPki

    pki = NhsTestPki.create(tmp_path / "nhs", now=datetime(2026, 6, 1, tzinfo=UTC))
    site = tmp_path / "spinedesk.toml"
    site.write_text(f"""
[service]
url = "https://spine.example.test"
[trust]
anchors = ["{pki.root_path}"]
intermediates = ["{pki.issuing_path}"]
crls = ["{pki.crl_paths[0]}", "{pki.crl_paths[1]}"]
identity = {{ "{pki.root_path}" = "UID" }}
""", encoding="utf-8")
    settings = load_settings({"SPINEDESK_SITE_CONFIG": str(site), "SPINEDESK_DATA_DIR": str(tmp_path / "data")})
    args = build_parser().parse_args(["service", "--database", f"sqlite:///{tmp_path / 'service.db'}"])
    config = _config(args, settings)
    assert config.identity == ((str(pki.root_path), "UID"),)
    worker = ServiceConfig.from_env({SERVICE_CONFIG_ENV: config.to_env()})  # what each worker process reads
    assert worker == config
    assert identity_policy(worker).attribute_for(pki.root.certificate) is IdentityAttribute.UID
    assert identity_policy(ServiceConfig("unused://", training_pki=str(tmp_path / "pki"))).default is (
        IdentityAttribute.SAN_UUID)  # training: the card UUID in the subject alternative name
