"""``spinedesk service``: run the Spine service layer, or administer it (seed, users, audit, reload-crl)."""

from __future__ import annotations

import argparse
import gc
import ipaddress
import sys
import uuid as uuidlib
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

from app.cli import wiring
from app.config import Settings
from app.error_text import user_text
from app.errors import AppError, PlainHttpRefused, TlsFilesUnusable

if TYPE_CHECKING:  # the parser is built for every spinedesk command: the service loads only to run one
    from cryptography import x509

    from app.pki.live_trust import LiveTrust
    from app.service.core.rbac import RoleTable
    from app.service.cpis.store import CpisStore
    from app.service.flags.store import FlagStore
    from app.service.pds.store import PdsStore
    from app.service.runtime import ServiceConfig
    from app.service.scr.store import ScrStore
    from app.service.store import Store

    class SeedTarget(PdsStore, ScrStore, CpisStore, FlagStore, Protocol):
        """What seeding writes to: the composed store (every feature's storage over one database)."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    svc = sub.add_parser("service", help="run the Spine service layer, or administer it")
    svc.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    svc.add_argument("--port", type=int, default=8443, help="port (default 8443)")
    svc.add_argument("--database", help="sqlite:///path (default: a file in the user data dir) or postgresql://…")
    svc.add_argument("--workers", type=int, default=1, help="worker processes (use PostgreSQL for more than one "
                     "machine; SQLite works for several processes on one machine)")
    svc.add_argument("--threads", type=int, default=2, metavar="N",
                     help="threads per worker for requests that touch the database (default 2; 0 runs them on the "
                     "event loop, where a database wait blocks every connection: for measurements only)")
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
                     "names and defaults: app/service/core/limits.py)")
    svc.add_argument("--retention", action="append", default=[], metavar="NAME=VALUE",
                     help="change what is kept how long, e.g. idempotency_ttl=3600 (seconds; repeatable; names "
                     "and defaults: app/service/core/housekeeping.py)")
    actions = svc.add_subparsers(dest="service_command", metavar="ACTION")
    seed = actions.add_parser("seed", help="load deterministic synthetic patients")
    seed.add_argument("--patients", type=int, required=True)
    seed.add_argument("--seed", dest="seed_value", type=int, default=0)
    users = actions.add_parser("users", help="users, their cards and role profiles").add_subparsers(
        dest="users_command", metavar="ACTION")
    users.required = True
    add = users.add_parser("add", help="add a user (or link another card or NHS user UUID to one)")
    add.add_argument("--id", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--uuid", action="append", default=[], metavar="NHS_UUID",
                     help="the 12-digit NHS user UUID printed on the smartcard (e.g. 555000111222), which NHS card "
                     "certificates carry in their subject: every card of that person logs in as this user, renewed "
                     "and replacement cards included (repeatable)")
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
    verify = audit.add_parser("verify", help="check the keyed hash chain and the checkpoints published outside the "
                              "database; exit 3 if it was tampered with, 4 if it cannot be checked without the key")
    verify.add_argument("--audit-key", type=Path, help="the audit key file (default: [service] audit_key in the site "
                        "configuration, else audit.key in the service's data folder)")
    verify.add_argument("--audit-checkpoints", type=Path, metavar="DIR", help="the folder of published checkpoints "
                        "(default: [service] audit_checkpoints, else audit-checkpoints beside the key); copy other "
                        "hosts' checkpoint files into it to check theirs too")
    actions.add_parser("reload-crl", help="re-read the CRLs, end the sessions of certificates they revoke, and "
                       "report their dates (running service processes re-read changed CRL files by themselves; "
                       "SIGHUP makes them re-read now)")


def _database(args: argparse.Namespace, settings: Settings) -> str:
    return wiring.service_database(settings, args.database)


def _audit_files(args: argparse.Namespace, settings: Settings) -> tuple[Path, Path | None]:
    """The audit key file and checkpoint folder: the options', else the site configuration's, else the defaults."""
    key = getattr(args, "audit_key", None) or settings.service_audit_key or settings.paths.audit_key_file
    return key, getattr(args, "audit_checkpoints", None) or settings.service_audit_checkpoints


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


def _threads(args: argparse.Namespace) -> int:
    threads = getattr(args, "threads", 2)
    if not isinstance(threads, int) or threads < 0:
        raise AppError(f"--threads must be 0 or more, not {threads}")
    return threads


def _config(args: argparse.Namespace, settings: Settings) -> ServiceConfig:
    from app.service.core.housekeeping import Retention
    from app.service.core.limits import HttpLimits
    from app.service.cpis.delivery import DeliveryAlarm
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
    key, checkpoints = _audit_files(args, settings)
    training = settings.training
    return ServiceConfig(_database(args, settings), base_url=base, limits=limits, tls_ca=tls_ca, cpis_alarm=alarm,
                         retention=retention, threads=_threads(args), audience=audience,
                         scr_episode_hours=settings.scr_episode_hours,
                         cpis_lease_seconds=settings.cpis_lease_seconds, audit_key=str(key),
                         audit_checkpoints=str(checkpoints) if checkpoints else None,
                         # training: the training CA; production: the site's anchors (revocation required)
                         training_pki=str(settings.paths.pki_dir) if training else None,
                         anchors=() if training else tuple(map(str, settings.trust_anchors)),
                         intermediates=() if training else tuple(map(str, settings.trust_intermediates)),
                         crls=() if training else tuple(map(str, settings.trust_crls)),
                         identity=() if training else tuple((str(p), a) for p, a in settings.trust_identity))


def run(args: argparse.Namespace, settings: Settings, *, stdout: TextIO | None = None,
        stdin: TextIO | None = None) -> int:
    stdout = stdout or sys.stdout
    tls = _tls(args, settings)
    if args.service_command is None:
        from app.service.server import Listen, serve

        require_tls(args, settings)  # before anything is opened or listens
        if tls:
            check_tls_files(*tls)
        config = _config(args, settings)
        # migrate once before workers start, create the audit key (and check it fits the chain); seed if asked
        with wiring.open_store(config.database, audit_seal=wiring.service_audit_seal(config)) as store:
            store.check_audit_key()
            if args.seed and not wiring.is_seeded(store):
                seed(store, args.seed, 0, stdout)
        where = (f"http://{args.host}:{args.port} behind the TLS proxy {settings.service_tls_proxy}"
                 if not tls and not settings.training else config.base_url)
        print(f"Spine Desk service on {where} ({'training' if settings.training else 'production'}, "
              f"{args.workers} worker(s)); Ctrl-C stops it.", file=stdout, flush=True)
        cert_file, key_file = (str(tls[0]), str(tls[1])) if tls else (None, None)
        serve(config, Listen(args.host, args.port, args.workers, cert_file, key_file))
        return 0
    key, checkpoints = _audit_files(args, settings)
    if args.service_command == "audit":
        seal = wiring.audit_seal(key, checkpoints)  # never creates a key; an unusable one is an error
    else:
        try:  # administration writes no audit records: an unreadable key need not stop it
            seal = wiring.audit_seal(key, checkpoints)
        except AppError:
            seal = None
    with wiring.open_store(_database(args, settings), audit_seal=seal) as store:
        if args.service_command == "seed":
            return seed(store, args.patients, args.seed_value, stdout)
        if args.service_command == "audit":
            return audit_verify(store, stdout)
        if args.service_command == "reload-crl":
            return reload_crl(store, wiring.service_trust(_config(args, settings)), stdout)
        return _users(args, store, stdout)


def _users(args: argparse.Namespace, store: Store, stdout: TextIO) -> int:
    from app.service.core.rbac import load_role_table
    from app.service.runtime import ROLE_TABLE

    if args.users_command == "add":
        return users_add(store, args.id, args.name, card_file=args.card_file, cert_file=args.cert,
                         card_uuid=args.card_uuid, nhs_uuids=args.uuid, stream=stdout)
    if args.users_command == "add-role":
        return users_add_role(store, load_role_table(ROLE_TABLE), user_id=args.user, urid=args.urid,
                                       org=args.org, org_name=args.org_name, role_code=args.role,
                                       activities=args.activities, stream=stdout)
    if args.users_command == "deactivate":
        user = store.deactivate_user(args.id)
        print(f"User {user.id} deactivated; their sessions are revoked.", file=stdout)
        return 0
    return users_list(store, stdout)


def seed(store: SeedTarget, patients: int, seed_value: int, stream: TextIO) -> int:
    """Seed ``patients`` synthetic patients (plus NHS's sandbox reference patients) with their clinical content.

    Progress goes to stderr as one line rewritten in place (``\\r``); that line is always ended with a newline
    before anything else is printed, even when seeding fails part-way, so no later message runs into it.
    """
    from app.service.cpis import seed as seed_cpis
    from app.service.flags import seed as seed_flags
    from app.service.pds.seed import generate_patients
    from app.service.scr import seed as seed_scr

    generated = 0  # rows handed to the store: the synthetic patients plus the reference patients
    progress_shown = False
    started = datetime.now()
    # The rows are acyclic (reference counting frees them); left on, the cyclic collector walks every live
    # object of a 50,000-row chunk again and again while the chunk is encoded and inserted (a third of the time).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for chunk in generate_patients(patients, seed=seed_value, chunk_size=50_000):
            store.put_patients(chunk, analyze=False)
            generated += len(chunk)
            for clinical in (seed_scr, seed_cpis, seed_flags):  # SCR content, CP-IS plans, flags for some of them
                clinical.seed_rows(store, chunk, seed_value)
            print(f"\r  {generated:,} patients", end="", file=sys.stderr, flush=True)
            progress_shown = True
        store.analyze()  # once, not after every chunk
    finally:
        if progress_shown:
            print(file=sys.stderr, flush=True)  # end the progress line
        if gc_was_enabled:
            gc.enable()
    seconds = (datetime.now() - started).total_seconds()
    reference = generated - patients  # generate_patients yields exactly ``patients`` synthetic rows
    print(f"Seeded {patients:,} synthetic + {reference:,} NHS reference patients (seed {seed_value}) in "
          f"{seconds:.1f} s.", file=stream, flush=True)
    return 0


def _card_identity(card_file: Path | None, cert_file: Path | None, card_uuid: str | None) -> tuple[list, list]:
    uuids, fingerprints = [], []
    if card_uuid:
        try:
            uuids.append(str(uuidlib.UUID(card_uuid)))
        except ValueError as exc:
            raise AppError(f"--card-uuid '{card_uuid}' is not a card UUID (32 hex digits, e.g. from 'spinedesk card "
                           "status'); for the 12-digit NHS user UUID printed on an NHS smartcard use --uuid") from exc
    if card_file:
        from app.card.virtual import CardFile  # training cards only; imported where used

        uuids.append(str(CardFile.load(card_file).card_uuid))
    if cert_file:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        data = cert_file.read_bytes()
        cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
        fingerprints.append(cert.fingerprint(hashes.SHA256()).hex())
    return uuids, fingerprints


def users_add(store: Store, user_id: str, name: str, *, card_file: Path | None, cert_file: Path | None,
              card_uuid: str | None, stream: TextIO, nhs_uuids: list[str] | tuple[str, ...] = ()) -> int:
    from app.pki import nhs_uuid

    ids = list(dict.fromkeys(nhs_uuid(u) for u in nhs_uuids))  # PkiError, saying what a UUID looks like
    uuids, fingerprints = _card_identity(card_file, cert_file, card_uuid)
    if not uuids and not fingerprints and not ids:
        raise AppError("name the user's card with --uuid (the NHS user UUID printed on an NHS smartcard), "
                       "--card-uuid, --card-file or --cert")
    existing = store.get_user(user_id)
    if existing is None:
        store.add_user(user_id, name, card_uuids=uuids, cert_fingerprints=fingerprints, nhs_uuids=ids)
        named = f", NHS user UUID {', '.join(ids)}" if ids else ""
        print(f"Added user {user_id} ({name}){named}.", file=stream)
    else:
        store.add_credentials(user_id, card_uuids=uuids, cert_fingerprints=fingerprints, nhs_uuids=ids)
        linked = [*(f"NHS user UUID {i}" for i in ids), *(["another card"] if uuids or fingerprints else [])]
        print(f"Linked {' and '.join(linked)} to user {user_id}.", file=stream)
    return 0


def users_add_role(store: Store, roles: RoleTable, *, user_id: str, urid: str | None, org: str, org_name: str,
                   role_code: str, activities: list[str] | None, stream: TextIO) -> int:
    from app.service.store import RoleProfile

    try:
        acts = tuple(activities) if activities else roles.default_activities(role_code)
    except ValueError as exc:
        raise AppError(str(exc)) from exc
    unknown = [a for a in acts if a not in roles.activities]
    if unknown:
        raise AppError(f"unknown activity codes {unknown}; known: {', '.join(sorted(roles.activities))}")
    profile = RoleProfile(urid or uuidlib.uuid4().hex[:12], user_id, org, org_name, role_code,
                          roles.role_name(role_code), acts)
    store.add_role_profile(profile)
    print(f"Role profile {profile.id}: {profile.role_name} at {org_name} ({org}), activities {', '.join(acts)}.",
          file=stream)
    return 0


def users_list(store: Store, stream: TextIO) -> int:
    for user in store.list_users():
        state = "" if user.active else "  [inactive]"
        print(f"{user.id}  {user.name}{state}  NHS user UUIDs: {', '.join(user.nhs_uuids) or '-'}  cards: "
              f"{', '.join(user.card_uuids) or '-'}", file=stream)
        for role in user.role_profiles:
            print(f"    {role.id}  {role.role_code} {role.role_name} at {role.org_name} ({role.org_ods})  "
                  f"{' '.join(role.activity_codes)}", file=stream)
    return 0


def audit_verify(store: Store, stream: TextIO) -> int:
    """Walk the chain with the store's audit key against the published checkpoints. Exit 0 intact, 3 tampered with,
    4 cannot be checked (the chain is keyed and the key is missing or another)."""
    seal = store.audit_seal
    result = store.verify_audit()
    where = seal.checkpoints.directory if seal is not None and seal.checkpoints is not None else None
    if result.needs_key:
        key_path = seal.key_path if seal is not None else ""
        found = (f"the key {seal.key.key_id} at {key_path} is not it" if seal is not None and seal.key is not None
                 else f"no audit key was found{f' at {key_path}' if key_path else ''}")
        print(f"AUDIT CHAIN NOT CHECKED: {result.reason}; {found}. Run this on the service's host as the service's "
              "user, or give the key with --audit-key FILE (the site configuration's [service] audit_key names it). "
              f"({result.checked:,} records checked before it.)", file=stream)
        return 4
    if not result.ok:
        bad = f" at record {result.first_bad_seq}" if result.first_bad_seq is not None else ""
        print(f"AUDIT CHAIN BROKEN{bad}: {result.reason}. ({result.checked:,} records checked.) Preserve the "
              "database and the checkpoint files and report this to your privacy officer.", file=stream)
        return 3
    print(f"Audit chain intact: {result.checked:,} records verified.", file=stream)
    if result.checkpoint is not None:
        seq, at, host = result.checkpoint
        print(f"Last checkpoint matched: record {seq:,}, published {at} by {host} (in {where}).", file=stream)
    elif seal is not None and seal.key is not None:
        print(f"No published checkpoint was found in {where}: removal of the newest records could not be checked. "
              "Checkpoints appear once the service has written records with this key.", file=stream)
    elif result.checked:
        print("The records are unkeyed (written before the audit key existed) and no key was found: the service "
              "creates its key when it next starts.", file=stream)
    return 0


def reload_crl(store: Store, trust: LiveTrust, stream: TextIO) -> int:
    """Read the CRLs as the service would, end the sessions of certificates they revoke, and say what was read.
    Exit 1 when revocation information is out of date (nobody can log in until a fresh CRL is published)."""
    from app.service.core.auth import AuthService

    result = AuthService(store, trust, audience="").reload_revocation()  # no logins: CRLs only
    for f in trust.crl_files:
        crl = f.crl
        number = _crl_number(crl)
        issuer = crl.issuer.rfc4514_string()
        print(f"CRL file {f.path}: from {issuer}{f', number {number}' if number is not None else ''}, issued "
              f"{crl.last_update_utc:%Y-%m-%d %H:%M} UTC, next update "
              f"{f'{crl.next_update_utc:%Y-%m-%d %H:%M} UTC' if crl.next_update_utc else 'none'}, "
              f"{len(crl)} revoked certificate(s).", file=stream)
    if not trust.crl_files:
        print("No CRL files are configured.", file=stream)
    for problem in result.errors:
        print(f"Problem: {problem}.", file=stream)
    print(f"Ended {result.ended} session(s) opened with a certificate that is now revoked.", file=stream)
    print("Running service processes re-read a changed CRL file at their next request; send the service SIGHUP to "
          "make them re-read now.", file=stream)
    for stale in result.stale:
        print(user_text(stale), file=stream)
    return 1 if result.stale else 0


def _crl_number(crl: x509.CertificateRevocationList) -> int | None:
    from cryptography import x509

    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return None
