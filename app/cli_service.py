"""Argument parsing and wiring for ``spinedesk service …`` and ``spinedesk login`` (called from ``app.__main__``)."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import sys
from pathlib import Path
from typing import TextIO

from app.config import Settings
from app.errors import AppError, PlainHttpRefused, TlsFilesUnusable


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    svc = sub.add_parser("service", help="run the Spine service layer, or administer it")
    svc.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    svc.add_argument("--port", type=int, default=8443, help="port (default 8443)")
    svc.add_argument("--database", help="sqlite:///path (default: a file in the user data dir) or postgresql://…")
    svc.add_argument("--workers", type=int, default=1, help="worker processes (use PostgreSQL for more than one "
                     "machine; SQLite works for several processes on one machine)")
    svc.add_argument("--seed", type=int, metavar="N", help="seed N synthetic patients first if none are stored")
    svc.add_argument("--tls-cert", type=Path, help="serve HTTPS (TLS 1.2+) with this certificate (PEM; default: "
                     "the site configuration's [service] tls_cert). Production never serves plain HTTP, except on "
                     "loopback behind the TLS proxy the site configuration names ([service] tls_proxy)")
    svc.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM; default: [service] tls_key)")
    svc.add_argument("--tls-ca", type=Path, help="the CA (PEM) that signed --tls-cert, when not in the system trust "
                     "store (default: the site configuration's [service] ca); the service's own CP-IS deliverer "
                     "trusts it to reach the built-in inbox")
    svc.add_argument("--cpis-alarm-attempts", type=int, default=None, metavar="N",
                     help="CP-IS notifications whose Nth delivery attempt failed are stuck: /_status warns and the "
                     "service logs an error (default 8)")
    svc.add_argument("--cpis-alarm-after", type=float, default=None, metavar="SECONDS",
                     help="... as are those still undelivered this long after the access (default 900)")
    svc.add_argument("--public-url", metavar="URL", type=_public_url,
                     help="the address clients reach this service at (e.g. a load balancer's, shared by every "
                     "process behind it); login signatures name it (default: the site configuration's [service] "
                     "url in production, else http(s)://HOST:PORT)")
    svc.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                     help="change a request limit, e.g. request_timeout=20 or max_connections=200 (repeatable; "
                     "names and defaults: app/service/limits.py)")
    svc.add_argument("--retention", action="append", default=[], metavar="NAME=VALUE",
                     help="change what is kept how long, e.g. idempotency_ttl=3600 (seconds; repeatable; names "
                     "and defaults: app/service/housekeeping.py)")
    actions = svc.add_subparsers(dest="service_command", metavar="ACTION")
    seed = actions.add_parser("seed", help="load deterministic synthetic patients")
    seed.add_argument("--patients", type=int, required=True)
    seed.add_argument("--seed", dest="seed_value", type=int, default=0)
    users = actions.add_parser("users", help="users, their cards and role profiles").add_subparsers(
        dest="users_command", metavar="ACTION")
    users.required = True
    add = users.add_parser("add", help="add a user (or link another card to one)")
    add.add_argument("--id", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--card-file", type=Path, help="a training card file")
    add.add_argument("--card-uuid", help="the card UUID in the card's certificate")
    add.add_argument("--cert", type=Path, help="the card's PIV Authentication certificate (PEM or DER)")
    role = users.add_parser("add-role", help="give a user a role profile")
    role.add_argument("--user", required=True)
    role.add_argument("--urid", help="role profile id (default: random)")
    role.add_argument("--org", required=True, help="organisation ODS code")
    role.add_argument("--org-name", required=True)
    role.add_argument("--role", required=True, help="role code, e.g. S8000:G8000:R8000")
    role.add_argument("--activities", nargs="*", help="activity codes (default: the role table's for this role)")
    users.add_parser("list", help="list users and role profiles")
    deact = users.add_parser("deactivate", help="deactivate a user and end their sessions")
    deact.add_argument("--id", required=True)
    audit = actions.add_parser("audit", help="the audit trail").add_subparsers(dest="audit_command", metavar="ACTION")
    audit.required = True
    audit.add_parser("verify", help="check the hash chain")
    actions.add_parser("reload-crl", help="re-read the CRLs, end the sessions of certificates they revoke, and "
                       "report their dates (running service processes re-read changed CRL files by themselves; "
                       "SIGHUP makes them re-read now)")

    login = sub.add_parser("login", help="log in with the card in the reader; prints the session token")
    login.add_argument("--service-url", help="the service (default: the site's, or https://127.0.0.1:8443 in "
                       "training)")
    login.add_argument("--role", help="role profile id (URID) or role code (default: the only one)")
    login.add_argument("--pin-stdin", action="store_true", required=True, help="read the PIN from stdin")
    login.add_argument("--reader", help="reader name or prefix")
    login.add_argument("--ca", type=Path, help="CA certificate to trust for the service's TLS")


def _database(args: argparse.Namespace, settings: Settings) -> str:
    if args.database:
        return str(args.database)
    from app.private_files import private_dir

    private_dir(settings.paths.data_dir)  # 0700: the database in it holds patient data
    return f"sqlite:///{settings.paths.data_dir / 'service.db'}"


def _tls(args: argparse.Namespace, settings: Settings) -> tuple[Path, Path] | None:
    """The certificate and key to serve HTTPS with: the options', else the site configuration's, else none."""
    if bool(args.tls_cert) != bool(args.tls_key):
        raise AppError("give both --tls-cert and --tls-key, or neither")
    if args.tls_cert:
        return args.tls_cert, args.tls_key
    if settings.service_tls_cert and settings.service_tls_key:
        return settings.service_tls_cert, settings.service_tls_key
    return None


def check_tls_files(cert: Path, key: Path) -> None:
    """Load the certificate and key as the server will, so a bad pair is a sentence, not a traceback from uvicorn.
    An encrypted key is refused rather than prompted for: nobody is there to type its password."""
    import ssl

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as exc:  # not PEM, encrypted, or not a pair
        raise TlsFilesUnusable(str(cert), str(key), exc.reason or str(exc)) from exc
    except (OSError, ValueError) as exc:  # missing or unreadable
        raise TlsFilesUnusable(str(cert), str(key), getattr(exc, "strerror", None) or str(exc)) from exc


def is_loopback(host: str) -> bool:
    """Only addresses in 127.0.0.0/8 and ::1; never 0.0.0.0, :: or a host name (not even localhost: what a name
    resolves to is not this configuration's to say)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _public_url(value: str) -> str:
    from app.protocol import canonical_audience

    try:
        return canonical_audience(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--public-url must be an absolute http(s) URL: {exc}") from exc


def require_tls(args: argparse.Namespace, settings: Settings) -> None:
    """Production never serves plain HTTP, except on loopback behind the TLS proxy the site configuration names."""
    if settings.training or _tls(args, settings):
        return
    loopback = is_loopback(args.host)
    if not (loopback and settings.service_tls_proxy):
        raise PlainHttpRefused(args.host, args.port, loopback=loopback, proxy=settings.service_tls_proxy,
                               site_config=str(settings.paths.site_config_file))


def _config(args: argparse.Namespace, settings: Settings):  # type: ignore[no-untyped-def]
    from app.service.cpis_delivery import DeliveryAlarm
    from app.service.housekeeping import Retention
    from app.service.limits import HttpLimits
    from app.service.runtime import ServiceConfig

    tls = _tls(args, settings)
    base = f"{'https' if tls else 'http'}://{args.host}:{args.port}"
    audience = getattr(args, "public_url", None) or (None if settings.training else settings.service_url) or base
    if not tls and not settings.training and settings.service_tls_proxy:
        base = settings.service_tls_proxy  # links in answers point where clients reach the service: the proxy
    limits = HttpLimits().with_overrides(args.limit)
    ca = getattr(args, "tls_ca", None) or settings.service_ca
    tls_ca = str(ca) if ca and tls else None  # TLS from the command line or the site configuration
    alarm = DeliveryAlarm(**{name: value for name, value in (
        ("attempts", getattr(args, "cpis_alarm_attempts", None)),
        ("after_seconds", getattr(args, "cpis_alarm_after", None))) if value is not None})
    retention = Retention().with_overrides(getattr(args, "retention", []))
    if settings.training:
        return ServiceConfig(_database(args, settings), base_url=base, training_pki=str(settings.paths.pki_dir),
                             limits=limits, tls_ca=tls_ca, cpis_alarm=alarm, retention=retention, audience=audience)
    return ServiceConfig(_database(args, settings), base_url=base, limits=limits, tls_ca=tls_ca, cpis_alarm=alarm,
                         retention=retention, audience=audience,
                         anchors=tuple(map(str, settings.trust_anchors)),
                         intermediates=tuple(map(str, settings.trust_intermediates)),
                         crls=tuple(map(str, settings.trust_crls)))


def run_service(args: argparse.Namespace, settings: Settings, stdout: TextIO) -> int:
    from app.commands import service as commands
    from app.service.store import open_store

    tls = _tls(args, settings)
    if args.service_command is None:
        from app.service.server import Listen, serve

        require_tls(args, settings)  # before anything is opened or listens
        if tls:
            check_tls_files(*tls)
        config = _config(args, settings)
        with open_store(config.database) as store:  # migrate once before workers start; seed if asked
            if args.seed and store.get_patient("9000000009") is None:
                commands.seed(store, args.seed, 0, stdout)
        where = (f"http://{args.host}:{args.port} behind the TLS proxy {settings.service_tls_proxy}"
                 if not tls and not settings.training else config.base_url)
        print(f"Spine Desk service on {where} ({'training' if settings.training else 'production'}, "
              f"{args.workers} worker(s)); Ctrl-C stops it.", file=stdout, flush=True)
        cert, key = (str(tls[0]), str(tls[1])) if tls else (None, None)
        serve(config, Listen(args.host, args.port, args.workers, cert, key))
        return 0
    with open_store(_database(args, settings)) as store:
        if args.service_command == "seed":
            return commands.seed(store, args.patients, args.seed_value, stdout)
        if args.service_command == "audit":
            return commands.audit_verify(store, stdout)
        if args.service_command == "reload-crl":
            from app.service.runtime import trust_store

            return commands.reload_crl(store, trust_store(_config(args, settings)), stdout)
        return _users(args, store, stdout)


def _users(args: argparse.Namespace, store, stdout: TextIO) -> int:  # type: ignore[no-untyped-def]
    from app.commands import service as commands
    from app.service.domain.rbac import load_role_table
    from app.service.runtime import ROLE_TABLE

    if args.users_command == "add":
        return commands.users_add(store, args.id, args.name, card_file=args.card_file, cert_file=args.cert,
                                  card_uuid=args.card_uuid, stream=stdout)
    if args.users_command == "add-role":
        return commands.users_add_role(store, load_role_table(ROLE_TABLE), user_id=args.user, urid=args.urid,
                                       org=args.org, org_name=args.org_name, role_code=args.role,
                                       activities=args.activities, stream=stdout)
    if args.users_command == "deactivate":
        user = store.deactivate_user(args.id)
        print(f"User {user.id} deactivated; their sessions are revoked.", file=stdout)
        return 0
    return commands.users_list(store, stdout)


def run_login(args: argparse.Namespace, settings: Settings, stdout: TextIO, stdin: TextIO) -> int:
    import httpx

    from app.card.login_card import PivLoginCard
    from app.card.pcsc import PcscSystem
    from app.card.piv import PivSession
    from app.client.client import SpineClient
    from app.client.login import card_login, choose_role, select_role

    url = args.service_url or settings.service_url or "http://127.0.0.1:8443"
    verify: bool | str = str(args.ca) if args.ca else (str(settings.service_ca) if settings.service_ca else True)
    pin = stdin.readline().rstrip("\r\n")
    connection = PcscSystem().connect(args.reader)
    with httpx.Client(verify=verify, timeout=15) as http:
        client = SpineClient(url, http)
        try:
            login = card_login(PivLoginCard(PivSession(connection)), client, pin)
        finally:
            connection.close(reset=True)  # the card forgets the PIN when the login is done
        try:
            role = choose_role(login, args.role)
            select_role(client, login, role)  # the token works for this role only
        except BaseException:
            with contextlib.suppress(Exception):
                client.logout(login.token)  # no role, no session left behind
            raise
    print(f"Logged in as {login.user_name}, {role.role_name} at {role.org_name} (URID {role.urid}); session "
          f"expires {login.expires_at:%Y-%m-%d %H:%M} UTC.", file=sys.stderr)
    print(login.token, file=stdout)
    return 0
