"""Settings: platformdirs paths, the machine-wide site configuration, and the mode (training or production).

Nothing here runs at import time; ``load_settings()`` is called from ``main()``. A site configuration file
(``spinedesk.toml`` in the platformdirs site config dir, ``/etc/xdg/SpineDesk`` on Linux) switches training
off; users cannot switch it back on. Example::

    [service]
    url = "https://spine.example.nhs.uk"
    ca = "/etc/xdg/SpineDesk/service-ca.pem"      # CA that signed the service's TLS certificate
    # Where `spinedesk service` runs: it never serves plain HTTP in production. Either its own TLS certificate and
    # key (the --tls-cert / --tls-key options take precedence) …
    tls_cert = "/etc/xdg/SpineDesk/service.pem"
    tls_key = "/etc/xdg/SpineDesk/service.key"
    # … or, for a service bound to loopback only (127.0.0.0/8, ::1), the TLS-terminating proxy in front of it:
    # tls_proxy = "https://spine.example.nhs.uk"
    # The key that makes the audit chain tamper-evident (created 0600 on first start; default: audit.key in the
    # service user's data folder) and the folder its checkpoints are published to (default: audit-checkpoints
    # beside the key). Keep both off the database host and back the key up (docs/decisions/audit-chain.md).
    audit_key = "/var/lib/spinedesk/audit.key"
    audit_checkpoints = "/var/log/spinedesk/audit-checkpoints"

    [trust]
    anchors = ["/etc/xdg/SpineDesk/nhs-root-g2.pem"]   # roots card certificates must chain to
    intermediates = ["/etc/xdg/SpineDesk/nhs-issuing.pem"]
    crls = ["/var/lib/spinedesk/issuing.crl"]

    [client]
    card_removal = "lock"          # or "logout"

    [wes]
    spec_version = "2026.1"
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import platformdirs

from app.errors import ConfigError

APP_NAME = "SpineDesk"
SITE_CONFIG_NAME = "spinedesk.toml"
DEFAULT_VPCD_PORT = 35963
DEFAULT_TRAINING_PIN_NOTE = "The training card's PIN is shown when it is issued; the client's default is 123456."


class Mode(StrEnum):
    TRAINING = "training"
    PRODUCTION = "production"


class RemovalMode(StrEnum):
    LOCK = "lock"
    LOGOUT = "logout"


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    data_dir: Path
    log_dir: Path
    site_config_file: Path

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "training-pki"

    @property
    def audit_key_file(self) -> Path:
        """The audit chain's key when the site configuration names none (0600, created on first start)."""
        return self.data_dir / "audit.key"

    @property
    def training_card_file(self) -> Path:
        return self.data_dir / "training-card.json"

    @classmethod
    def from_platform(cls, env: Mapping[str, str] | None = None) -> Paths:
        env = os.environ if env is None else env
        dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
        # SPINEDESK_SITE_CONFIG (tests, packaging checks) is honoured only where no machine-wide file exists: on a
        # managed workstation a user cannot switch training back on or swap the trust anchors.
        machine = Path(dirs.site_config_dir) / SITE_CONFIG_NAME
        override = env.get("SPINEDESK_SITE_CONFIG")
        site = Path(override) if override and not machine.exists() else machine
        data = Path(env["SPINEDESK_DATA_DIR"]) if env.get("SPINEDESK_DATA_DIR") else Path(dirs.user_data_dir)
        return cls(Path(dirs.user_config_dir), data, Path(dirs.user_log_dir), site)


@dataclass(frozen=True)
class Settings:
    paths: Paths
    mode: Mode = Mode.TRAINING
    service_url: str | None = None
    service_ca: Path | None = None
    service_tls_cert: Path | None = None  # the service's own certificate and key ([service] tls_cert, tls_key)
    service_tls_key: Path | None = None
    service_tls_proxy: str | None = None  # the https:// proxy that terminates TLS for a loopback-only service
    service_audit_key: Path | None = None  # [service] audit_key (default: audit.key in the data folder)
    service_audit_checkpoints: Path | None = None  # [service] audit_checkpoints (default: beside the key)
    trust_anchors: tuple[Path, ...] = ()
    trust_intermediates: tuple[Path, ...] = ()
    trust_crls: tuple[Path, ...] = ()
    card_removal: RemovalMode = RemovalMode.LOCK
    wes_spec_version: str | None = None
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def training(self) -> bool:
        return self.mode is Mode.TRAINING


def _paths(value: object, where: str, path: Path) -> tuple[Path, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(str(path), f"{where} must be a file path or a list of file paths")
    return tuple(Path(v) for v in value)


def _path(value: object, where: str, path: Path) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(str(path), f"{where} must be a file path")
    return Path(value)


_KEYS = {"service": {"url", "ca", "tls_cert", "tls_key", "tls_proxy", "audit_key", "audit_checkpoints"},
         "trust": {"anchors", "intermediates", "crls"}, "client": {"card_removal"}, "wes": {"spec_version"}}


def _table(doc: Mapping[str, object], name: str, path: Path) -> Mapping[str, object]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(str(path), f"[{name}] must be a table")
    unknown = sorted(set(value) - _KEYS[name])
    if unknown:  # a typo such as "crl" for "crls" must not silently turn a check off
        raise ConfigError(str(path), f"[{name}] has unknown key(s) {', '.join(unknown)}; expected "
                          f"{', '.join(sorted(_KEYS[name]))}")
    return value


def parse_site_config(text: str, path: Path, paths: Paths) -> Settings:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML ({exc})") from exc
    known = set(_KEYS)
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ConfigError(str(path), f"unknown section(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}")
    service, trust = _table(doc, "service", path), _table(doc, "trust", path)
    client, wes = _table(doc, "client", path), _table(doc, "wes", path)
    url = service.get("url")
    if not isinstance(url, str) or not url.startswith("https://"):
        raise ConfigError(str(path), "[service] url must be set to the service's https:// address")
    removal = client.get("card_removal", RemovalMode.LOCK.value)
    if removal not in {m.value for m in RemovalMode}:
        raise ConfigError(str(path), "[client] card_removal must be \"lock\" or \"logout\"")
    anchors = _paths(trust.get("anchors"), "[trust] anchors", path)
    if not anchors:
        raise ConfigError(str(path), "[trust] anchors must name at least one root certificate file")
    ca = service.get("ca")
    spec = wes.get("spec_version")
    tls_cert, tls_key = (_path(service.get(k), f"[service] {k}", path) for k in ("tls_cert", "tls_key"))
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError(str(path), "[service] tls_cert and tls_key must be set together, or neither")
    proxy = service.get("tls_proxy")
    if proxy is not None and (not isinstance(proxy, str) or not proxy.startswith("https://")):
        raise ConfigError(str(path), "[service] tls_proxy must be the https:// address of the proxy that "
                          "terminates TLS in front of the service")
    return Settings(
        paths=paths,
        mode=Mode.PRODUCTION,
        service_url=url.rstrip("/"),
        service_ca=Path(ca) if isinstance(ca, str) else None,
        service_tls_cert=tls_cert,
        service_tls_key=tls_key,
        service_tls_proxy=proxy.rstrip("/") if proxy else None,
        service_audit_key=_path(service.get("audit_key"), "[service] audit_key", path),
        service_audit_checkpoints=_path(service.get("audit_checkpoints"), "[service] audit_checkpoints", path),
        trust_anchors=anchors,
        trust_intermediates=_paths(trust.get("intermediates"), "[trust] intermediates", path),
        trust_crls=_paths(trust.get("crls"), "[trust] crls", path),
        card_removal=RemovalMode(removal),
        wes_spec_version=spec if isinstance(spec, str) else None,
    )


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Production when the machine-wide site configuration exists, training otherwise."""
    paths = Paths.from_platform(env)
    try:
        text = paths.site_config_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Settings(paths=paths)
    except OSError as exc:
        raise ConfigError(str(paths.site_config_file), f"cannot be read ({exc.strerror})") from exc
    return parse_site_config(text, paths.site_config_file, paths)
