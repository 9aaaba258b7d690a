from pathlib import Path

import pytest

from app.config import Mode, Paths, RemovalMode, load_settings, parse_site_config
from app.errors import ConfigError

GOOD = """
[service]
url = "https://spine.example.test/"
[trust]
anchors = ["/etc/xdg/SpineDesk/root.pem"]
[client]
card_removal = "logout"
[wes]
spec_version = "2026.1"
"""


def paths(tmp_path):
    return Paths(tmp_path / "c", tmp_path / "d", tmp_path / "l", tmp_path / "site.toml")


def test_no_site_config_means_training(tmp_path):
    s = load_settings({"SPINEDESK_SITE_CONFIG": str(tmp_path / "absent.toml"), "SPINEDESK_DATA_DIR": str(tmp_path)})
    assert s.mode is Mode.TRAINING and s.training
    assert s.paths.data_dir == tmp_path and s.paths.pki_dir == tmp_path / "training-pki"


def test_site_config_switches_training_off(tmp_path):
    site = tmp_path / "site.toml"
    site.write_text(GOOD)
    s = load_settings({"SPINEDESK_SITE_CONFIG": str(site)})
    assert s.mode is Mode.PRODUCTION and not s.training
    assert s.service_url == "https://spine.example.test"
    assert s.card_removal is RemovalMode.LOGOUT
    assert s.trust_anchors == (Path("/etc/xdg/SpineDesk/root.pem"),)
    assert s.wes_spec_version == "2026.1"


@pytest.mark.parametrize(("text", "problem"), [
    ("[service\n", "not valid TOML"),
    ("[service]\nurl = 'http://plain'\n[trust]\nanchors=['a']", "https://"),
    ("[service]\nurl = 'https://x'\n", "anchors"),
    ("[service]\nurl = 'https://x'\n[trust]\nanchors=['a']\n[client]\ncard_removal='eject'", "lock"),
    ("[service]\nurl = 'https://x'\n[trust]\nanchors=[1]", "file path"),
    ("[training]\nenabled = true", "unknown section"),
    ("service = 3", "must be a table"),
    ("[service]\nurl = 'https://x'\n[trust]\nanchors=['a']\ncrl=['c.pem']", "unknown key(s) crl"),
    ("[service]\nurl = 'https://x'\ntls_proxy = 'http://proxy'\n[trust]\nanchors=['a']", "tls_proxy must be"),
    ("[service]\nurl = 'https://x'\ntls_cert = 'c.pem'\n[trust]\nanchors=['a']", "set together"),
    ("[service]\nurl = 'https://x'\ntls_key = 3\n[trust]\nanchors=['a']", "tls_key must be a file path"),
])
def test_bad_site_config_names_the_file_and_the_field(tmp_path, text, problem):
    with pytest.raises(ConfigError) as err:
        parse_site_config(text, tmp_path / "site.toml", paths(tmp_path))
    assert problem in err.value.problem and str(tmp_path / "site.toml") == err.value.path


def test_site_config_names_the_service_tls_or_its_proxy(tmp_path):
    tls = parse_site_config(GOOD.replace("[trust]", "tls_cert = '/etc/s.pem'\ntls_key = '/etc/s.key'\n[trust]"),
                            tmp_path / "site.toml", paths(tmp_path))
    assert (tls.service_tls_cert, tls.service_tls_key, tls.service_tls_proxy) == (
        Path("/etc/s.pem"), Path("/etc/s.key"), None)
    proxied = parse_site_config(GOOD.replace("[trust]", "tls_proxy = 'https://spine.example.test/'\n[trust]"),
                                tmp_path / "site.toml", paths(tmp_path))
    assert proxied.service_tls_proxy == "https://spine.example.test" and proxied.service_tls_cert is None
    assert parse_site_config(GOOD, tmp_path / "site.toml", paths(tmp_path)).service_tls_proxy is None


def test_site_config_names_the_audit_key_and_checkpoint_folder(tmp_path):
    site = parse_site_config(GOOD.replace("[trust]", "audit_key = '/etc/spinedesk/audit.key'\n"
                                          "audit_checkpoints = '/var/log/spinedesk/cp'\n[trust]"),
                             tmp_path / "site.toml", paths(tmp_path))
    assert (site.service_audit_key, site.service_audit_checkpoints) == (
        Path("/etc/spinedesk/audit.key"), Path("/var/log/spinedesk/cp"))
    default = parse_site_config(GOOD, tmp_path / "site.toml", paths(tmp_path))
    assert (default.service_audit_key, default.service_audit_checkpoints) == (None, None)
    assert default.paths.audit_key_file == default.paths.data_dir / "audit.key"


def test_platform_paths_follow_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    p = Paths.from_platform({})
    assert p.data_dir == tmp_path / "data" / "SpineDesk"
    assert p.config_dir == tmp_path / "cfg" / "SpineDesk"


def test_a_machine_wide_file_beats_the_environment_override(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "etc-xdg"))
    machine = tmp_path / "etc-xdg" / "SpineDesk" / "spinedesk.toml"
    machine.parent.mkdir(parents=True)
    machine.write_text(GOOD)
    s = load_settings({"SPINEDESK_SITE_CONFIG": str(tmp_path / "nothing.toml")})
    assert s.mode is Mode.PRODUCTION and s.paths.site_config_file == machine


def test_the_environment_becomes_typed_settings(tmp_path):
    s = load_settings({"SPINEDESK_SITE_CONFIG": str(tmp_path / "absent.toml"), "SPINEDESK_DATA_DIR": str(tmp_path),
                       "SPINEDESK_TRAINING_VPCD_PORT": "35964", "SPINEDESK_TRAINING_READER": "Virtual PCD 00 01",
                       "SPINEDESK_STARTUP_MARKS": "1", "SPINEDESK_SCR_EPISODE_HOURS": "2",
                       "SPINEDESK_CPIS_LEASE_SECONDS": "6"})
    assert (s.training_vpcd_port, s.training_reader, s.startup_marks) == (35964, "Virtual PCD 00 01", True)
    assert (s.scr_episode_hours, s.cpis_lease_seconds) == (2.0, 6.0)
    unset = load_settings({"SPINEDESK_SITE_CONFIG": str(tmp_path / "absent.toml")})
    assert (unset.training_vpcd_port, unset.training_reader, unset.startup_marks) == (35963, None, False)
    assert (unset.scr_episode_hours, unset.cpis_lease_seconds) == (None, None)


@pytest.mark.parametrize("value", ["", "junk", "0", "-1", "nan", "inf"])
def test_unusable_numbers_in_the_environment_count_as_unset(tmp_path, value):
    s = load_settings({"SPINEDESK_SITE_CONFIG": str(tmp_path / "absent.toml"), "SPINEDESK_SCR_EPISODE_HOURS": value,
                       "SPINEDESK_CPIS_LEASE_SECONDS": value, "SPINEDESK_TRAINING_VPCD_PORT": value})
    assert (s.scr_episode_hours, s.cpis_lease_seconds) == (None, None)
    if value not in ("0", "-1"):
        assert s.training_vpcd_port == 35963


def test_a_production_workstation_gets_the_environment_settings_too(tmp_path):
    site = tmp_path / "site.toml"
    site.write_text(GOOD)
    s = load_settings({"SPINEDESK_SITE_CONFIG": str(site), "SPINEDESK_CPIS_LEASE_SECONDS": "6"})
    assert s.mode is Mode.PRODUCTION and s.cpis_lease_seconds == 6.0


def test_the_service_workers_config_is_read_here(tmp_path):
    from app.config import SERVICE_CONFIG_ENV, service_config_json

    assert service_config_json({SERVICE_CONFIG_ENV: '{"database": "sqlite:///x.db"}'}) == '{"database": "sqlite:///x.db"}'
    with pytest.raises(ConfigError):
        service_config_json({})


def test_cards_default_to_piv_then_pkcs11_with_no_module(tmp_path):
    s = parse_site_config(GOOD, tmp_path / "site.toml", paths(tmp_path))
    assert [b.value for b in s.card_backends] == ["piv", "pkcs11"]
    assert s.pkcs11_modules == ()


def test_cards_table_names_backends_in_order_and_absolute_modules(tmp_path):
    text = GOOD + ('[cards]\nbackends = ["pkcs11", "piv"]\npkcs11_modules = '
                   '["/usr/lib/ClassicClient/libclassicclient.so", "/no/such/module.so"]\n')
    s = parse_site_config(text, tmp_path / "site.toml", paths(tmp_path))
    assert [b.value for b in s.card_backends] == ["pkcs11", "piv"]
    # a module that does not exist is not a configuration error: the card back-end reports it when used
    assert s.pkcs11_modules == (Path("/usr/lib/ClassicClient/libclassicclient.so"), Path("/no/such/module.so"))


@pytest.mark.parametrize(("cards", "problem"), [
    ('backends = ["piv", "cac"]', 'unknown back-end(s) cac; expected "piv", "pkcs11"'),
    ("backends = []", "non-empty list"),
    ('backends = "piv"', "non-empty list"),
    ('backends = ["piv", "piv"]', "twice"),
    ('pkcs11_modules = ["opensc-pkcs11.so"]', "must be absolute paths (opensc-pkcs11.so is not)"),
    ("pkcs11_modules = [3]", "file path"),
    ('pkcs11_module = ["/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"]', "unknown key(s) pkcs11_module"),
])
def test_bad_cards_table_is_refused_with_the_field_named(tmp_path, cards, problem):
    with pytest.raises(ConfigError) as err:
        parse_site_config(GOOD + "[cards]\n" + cards + "\n", tmp_path / "site.toml", paths(tmp_path))
    assert problem in err.value.problem


def test_trust_identity_names_an_attribute_per_anchor_file(tmp_path):
    from app.config import IDENTITY_ATTRIBUTES
    from app.pki import IdentityAttribute

    assert tuple(a.value for a in IdentityAttribute) == IDENTITY_ATTRIBUTES  # config keeps its own copy of them
    text = GOOD.replace('anchors = ["/etc/xdg/SpineDesk/root.pem"]',
                        'anchors = ["/etc/xdg/SpineDesk/root.pem", "/etc/xdg/SpineDesk/piv.pem"]\n'
                        'identity = { "/etc/xdg/SpineDesk/root.pem" = "uid", '
                        '"/etc/xdg/SpineDesk/piv.pem" = "san-uuid" }')
    site = parse_site_config(text, tmp_path / "site.toml", paths(tmp_path))
    assert site.trust_identity == ((Path("/etc/xdg/SpineDesk/root.pem"), "UID"),
                                   (Path("/etc/xdg/SpineDesk/piv.pem"), "san-uuid"))
    assert parse_site_config(GOOD, tmp_path / "site.toml", paths(tmp_path)).trust_identity == ()


@pytest.mark.parametrize(("identity", "problem"), [
    ('"serialNumber"', "must be a table"),
    ('{ "/etc/xdg/SpineDesk/root.pem" = "CN" }', "must be one of 'serialNumber', 'UID', 'san-uuid', not 'CN'"),
    ('{ "/etc/xdg/SpineDesk/other.pem" = "UID" }', "not one of the [trust] anchors"),
])
def test_a_wrong_trust_identity_is_refused_with_what_to_write(tmp_path, identity, problem):
    text = GOOD.replace('anchors = ["/etc/xdg/SpineDesk/root.pem"]',
                        f'anchors = ["/etc/xdg/SpineDesk/root.pem"]\nidentity = {identity}')
    with pytest.raises(ConfigError) as err:
        parse_site_config(text, tmp_path / "site.toml", paths(tmp_path))
    assert problem in str(err.value) and "site.toml" in str(err.value)
