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
    # Where a card certificate names its holder, per anchor file: "serialNumber" (the default), "UID", or
    # "san-uuid" (a urn:uuid subject alternative name, as training cards have). Users are registered by it.
    identity = { "/etc/xdg/SpineDesk/nhs-root-g2.pem" = "serialNumber" }

    [client]
    card_removal = "lock"          # or "logout"

    [wes]
    spec_version = "2026.1"

    [cards]
    # How a card is reached, tried in this order per inserted card (default ["piv", "pkcs11"]): "piv" talks to the
    # card's PIV application through PC/SC; "pkcs11" asks each module below for a token.
    backends = ["piv", "pkcs11"]
    # PKCS#11 modules (absolute paths), e.g. the Oberthur/IDEMIA middleware NHS series 8 cards need
    pkcs11_modules = ["/usr/lib/ClassicClient/libclassicclient.so"]

Environment variables are read in one place, :func:`read_environment` (once per ``load_settings``), and nowhere
else in the application; each becomes a typed field (see that function's table).
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

import platformdirs

from app.errors import ConfigError

APP_NAME = "SpineDesk"
SITE_CONFIG_NAME = "spinedesk.toml"
DEFAULT_VPCD_PORT = 35963
SERVICE_CONFIG_ENV = "SPINEDESK_SERVICE_CONFIG"


class Mode(StrEnum):
    TRAINING = "training"
    PRODUCTION = "production"


class CardBackendName(StrEnum):
    """The ways of reaching a card that ``[cards] backends`` may name (``app.card.chooser`` builds them)."""

    PIV = "piv"
    PKCS11 = "pkcs11"


DEFAULT_CARD_BACKENDS = (CardBackendName.PIV, CardBackendName.PKCS11)


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
    def from_platform(cls, env: Environment | Mapping[str, str] | None = None) -> Paths:
        """platformdirs' folders, with the overrides ``env`` (default: this process's environment) names."""
        environment = env if isinstance(env, Environment) else read_environment(env)
        dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
        # SPINEDESK_SITE_CONFIG (tests, packaging checks) is honoured only where no machine-wide file exists: on a
        # managed workstation a user cannot switch training back on or swap the trust anchors.
        machine = Path(dirs.site_config_dir) / SITE_CONFIG_NAME
        override = environment.site_config
        site = override if override and not machine.exists() else machine
        data = environment.data_dir or Path(dirs.user_data_dir)
        return cls(Path(dirs.user_config_dir), data, Path(dirs.user_log_dir), site)


@dataclass(frozen=True)
class Environment:
    """The ``SPINEDESK_*`` environment variables, typed (see :func:`read_environment`)."""

    site_config: Path | None = None
    data_dir: Path | None = None
    training_vpcd_port: int = DEFAULT_VPCD_PORT
    training_reader: str | None = None
    startup_marks: bool = False
    scr_episode_hours: float | None = None
    cpis_lease_seconds: float | None = None
    service_config: str | None = None


def _positive(value: str | None) -> float | None:
    """A positive finite number, else None (unset or unusable: the feature's default applies)."""
    try:
        number = float(value) if value else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) and number > 0 else None


def read_environment(env: Mapping[str, str] | None = None) -> Environment:
    """Read this process's environment (or ``env``), once: the only place the application reads it.

    ==============================  ===================================================================
    variable                        meaning
    ==============================  ===================================================================
    SPINEDESK_SITE_CONFIG           site configuration file to use where no machine-wide one exists
                                    (tests, packaging checks)
    SPINEDESK_DATA_DIR              the user data dir (databases, training PKI and card)
    SPINEDESK_TRAINING_VPCD_PORT    the vpcd slot port the client inserts the training card into
                                    (default 35963; a training room's PC may use 35964, …)
    SPINEDESK_TRAINING_READER       the one reader the client watches (a shared machine's other slots
                                    are not its own)
    SPINEDESK_STARTUP_MARKS         when set, the client writes start-up marks on stderr (benchmarks)
    SPINEDESK_SCR_EPISODE_HOURS     how long an SCR episode's grants last (hours; default 12, at most
                                    a week)
    SPINEDESK_CPIS_LEASE_SECONDS    the CP-IS deliverer's claim lease (seconds; default 30, at least 1)
    SPINEDESK_SERVICE_CONFIG        the service's configuration as JSON, set by ``spinedesk service``
                                    for its worker processes (``ServiceConfig.to_env``)
    ==============================  ===================================================================

    Unusable numbers count as unset (the default applies), as they always have.
    """
    source = os.environ if env is None else env
    site, data = source.get("SPINEDESK_SITE_CONFIG"), source.get("SPINEDESK_DATA_DIR")
    try:
        port = int(source.get("SPINEDESK_TRAINING_VPCD_PORT") or DEFAULT_VPCD_PORT)
    except ValueError:
        port = DEFAULT_VPCD_PORT
    return Environment(
        site_config=Path(site) if site else None,
        data_dir=Path(data) if data else None,
        training_vpcd_port=port,
        training_reader=source.get("SPINEDESK_TRAINING_READER") or None,
        startup_marks=bool(source.get("SPINEDESK_STARTUP_MARKS")),
        scr_episode_hours=_positive(source.get("SPINEDESK_SCR_EPISODE_HOURS")),
        cpis_lease_seconds=_positive(source.get("SPINEDESK_CPIS_LEASE_SECONDS")),
        service_config=source.get(SERVICE_CONFIG_ENV) or None,
    )


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
    # [trust] identity: (anchor file, identity attribute) pairs; anchors not listed use "serialNumber"
    trust_identity: tuple[tuple[Path, str], ...] = ()
    card_removal: RemovalMode = RemovalMode.LOCK
    wes_spec_version: str | None = None
    # [cards]: the back-ends tried per card, in order, and the PKCS#11 modules (absolute paths; a missing file is
    # reported as a card error when the module is used, not here)
    card_backends: tuple[CardBackendName, ...] = DEFAULT_CARD_BACKENDS
    pkcs11_modules: tuple[Path, ...] = ()
    # from the environment (read_environment): the client's training card slot and start-up marks, and the
    # service's SCR episode length and CP-IS lease (None: the feature's default)
    training_vpcd_port: int = DEFAULT_VPCD_PORT
    training_reader: str | None = None
    startup_marks: bool = False
    scr_episode_hours: float | None = None
    cpis_lease_seconds: float | None = None

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


IDENTITY_ATTRIBUTES = ("serialNumber", "UID", "san-uuid")  # app.pki.identity.IdentityAttribute's values


def _identity(value: object, anchors: tuple[Path, ...], path: Path) -> tuple[tuple[Path, str], ...]:
    """``[trust] identity``: a table from anchor file (one of ``anchors``) to identity attribute."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ConfigError(str(path), '[trust] identity must be a table of anchor file = attribute, e.g. identity = '
                          '{ "/etc/xdg/SpineDesk/nhs-root-g2.pem" = "serialNumber" }')
    pairs = []
    for file, attribute in value.items():
        match = next((a for a in IDENTITY_ATTRIBUTES if isinstance(attribute, str)
                      and a.casefold() == attribute.strip().casefold()), None)
        if match is None:
            raise ConfigError(str(path), f"[trust] identity for {file} must be one of "
                              f"{', '.join(repr(a) for a in IDENTITY_ATTRIBUTES)}, not {attribute!r}")
        if Path(file) not in anchors:
            raise ConfigError(str(path), f"[trust] identity names {file}, which is not one of the [trust] anchors; "
                              "name the anchor file exactly as in anchors")
        pairs.append((Path(file), match))
    return tuple(pairs)


_KEYS = {"service": {"url", "ca", "tls_cert", "tls_key", "tls_proxy", "audit_key", "audit_checkpoints"},
         "trust": {"anchors", "intermediates", "crls", "identity"}, "client": {"card_removal"},
         "wes": {"spec_version"}, "cards": {"backends", "pkcs11_modules"}}


def _table(doc: Mapping[str, object], name: str, path: Path) -> Mapping[str, object]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(str(path), f"[{name}] must be a table")
    unknown = sorted(set(value) - _KEYS[name])
    if unknown:  # a typo such as "crl" for "crls" must not silently turn a check off
        raise ConfigError(str(path), f"[{name}] has unknown key(s) {', '.join(unknown)}; expected "
                          f"{', '.join(sorted(_KEYS[name]))}")
    return value


def _card_backends(value: object, path: Path) -> tuple[CardBackendName, ...]:
    if value is None:
        return DEFAULT_CARD_BACKENDS
    names = {b.value for b in CardBackendName}
    expected = ", ".join(f'"{n}"' for n in sorted(names))
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(str(path), f"[cards] backends must be a non-empty list of back-end names ({expected})")
    unknown = sorted({v for v in value if v not in names})
    if unknown:
        raise ConfigError(str(path), f"[cards] backends names unknown back-end(s) {', '.join(unknown)}; expected "
                          f"{expected}")
    if len(set(value)) != len(value):
        raise ConfigError(str(path), "[cards] backends names a back-end twice")
    return tuple(CardBackendName(v) for v in value)


def _pkcs11_modules(value: object, path: Path) -> tuple[Path, ...]:
    modules = _paths(value, "[cards] pkcs11_modules", path)
    relative = [str(m) for m in modules if not m.is_absolute()]
    if relative:  # a relative path would load whatever library the working folder holds
        raise ConfigError(str(path), f"[cards] pkcs11_modules must be absolute paths ({', '.join(relative)} is not)")
    return modules


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
    cards = _table(doc, "cards", path)
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
        trust_identity=_identity(trust.get("identity"), anchors, path),
        card_removal=RemovalMode(str(removal)),
        wes_spec_version=spec if isinstance(spec, str) else None,
        card_backends=_card_backends(cards.get("backends"), path),
        pkcs11_modules=_pkcs11_modules(cards.get("pkcs11_modules"), path),
    )


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Production when the machine-wide site configuration exists, training otherwise; ``env`` (default: this
    process's environment) is read once."""
    environment = read_environment(env)
    paths = Paths.from_platform(environment)
    try:
        text = paths.site_config_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return _with_environment(Settings(paths=paths), environment)
    except OSError as exc:
        raise ConfigError(str(paths.site_config_file), f"cannot be read ({exc.strerror})") from exc
    return _with_environment(parse_site_config(text, paths.site_config_file, paths), environment)


def _with_environment(settings: Settings, environment: Environment) -> Settings:
    return replace(settings, training_vpcd_port=environment.training_vpcd_port,
                   training_reader=environment.training_reader, startup_marks=environment.startup_marks,
                   scr_episode_hours=environment.scr_episode_hours,
                   cpis_lease_seconds=environment.cpis_lease_seconds)


def service_config_json(env: Mapping[str, str] | None = None) -> str:
    """The JSON a service worker process builds its service from (``SPINEDESK_SERVICE_CONFIG``, set by
    ``spinedesk service`` before its workers start); ConfigError when it is absent."""
    text = read_environment(env).service_config
    if text is None:
        raise ConfigError(SERVICE_CONFIG_ENV, "is not set: service workers are started by 'spinedesk service'")
    return text
