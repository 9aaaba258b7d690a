"""Composition root: parse the command line, build the concrete objects, hand them to the command.

Nothing else in the application constructs I/O objects (PC/SC, files, sockets, the CA).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
import uuid
from collections.abc import Sequence
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TextIO

from app import __version__, cli_service
from app.config import DEFAULT_VPCD_PORT, Settings, load_settings
from app.errors import AppError, InvalidPinFormat, PlainHttpRefused, user_text
from app.private_files import create_private_file, private_dir, private_umask, tighten

# 3 is a command's own verdict (wes check could not run, audit chain broken); 4: a service refused to start because
# its configuration is unsafe to serve (production without TLS), nothing was started.
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 4
log = logging.getLogger("spinedesk")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spinedesk", description="Spine Desk: NHS Spine smartcard client.")
    parser.add_argument("--version", action="version", version=f"spinedesk {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail to the log file")
    parser.add_argument("--self-test", action="store_true",
                        help="check this installation (Qt, pyscard, service, WES spec, site config) and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    card = sub.add_parser("card", help="training cards and card status").add_subparsers(dest="card_command",
                                                                                         metavar="ACTION")
    card.required = True
    issue = card.add_parser("issue", help="make a training card file signed by the training CA")
    issue.add_argument("--out", required=True, type=Path, help="card file to write")
    issue.add_argument("--name", required=True, help="card holder's name (certificate subject)")
    issue.add_argument("--uuid", type=uuid.UUID, help="card UUID (default: random)")
    issue.add_argument("--alg", choices=["rsa2048", "p256"], default="rsa2048", help="key algorithm")
    pin = issue.add_mutually_exclusive_group()
    pin.add_argument("--pin", help="the card's PIN, 6-8 digits (visible to other users: prefer --pin-stdin)")
    pin.add_argument("--pin-stdin", action="store_true", help="read the PIN from the first line of stdin")
    puk = issue.add_mutually_exclusive_group()
    puk.add_argument("--puk", help="the PUK, 8 digits (default: random, printed once)")
    puk.add_argument("--puk-stdin", action="store_true",
                     help="read the PUK from stdin (the line after the PIN when --pin-stdin is also given)")
    issue.add_argument("--days", type=int, default=365, help="certificate validity in days (default 365)")

    insert = card.add_parser("insert", help="put a card file into pcscd's virtual reader until stopped")
    insert.add_argument("file", type=Path)
    insert.add_argument("--port", type=int, default=DEFAULT_VPCD_PORT, help="vpcd slot port (default 35963)")
    insert.add_argument("--host", default="127.0.0.1", help="where pcscd's vpcd driver listens")

    status = card.add_parser("status", help="reader, ATR, card UUID, certificate, trust and PIN tries left")
    status.add_argument("--reader", help="reader name or prefix (default: the first reader with a card)")
    cli_service.add_parsers(sub)
    from app.commands import wes as wes_commands

    wes_commands.add_parser(sub)
    return parser


class _PrivateRotatingFileHandler(RotatingFileHandler):
    """Every log file it opens (the first and each one after a rollover) is created 0600: failure logs can name
    patients (NHS numbers)."""

    def _open(self):  # type: ignore[no-untyped-def]
        create_private_file(Path(self.baseFilename))
        return super()._open()


LOG_BACKUPS = 3


def _configure_logging(settings: Settings, verbose: bool) -> None:
    """Log to a rotating file in the user log dir (folder 0700, files 0600; older files are tightened). Nothing
    logged anywhere ever contains a PIN or PUK."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    try:
        log_file = private_dir(settings.paths.log_dir) / "spinedesk.log"
        tighten(Path(f"{log_file}.{n}") for n in range(1, LOG_BACKUPS + 1))
        handler: logging.Handler = _PrivateRotatingFileHandler(log_file, maxBytes=5_000_000,
                                                               backupCount=LOG_BACKUPS, encoding="utf-8")
    except OSError:
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)


def _read_pin(args: argparse.Namespace, stdin: TextIO) -> str:
    if args.pin is not None:
        return args.pin
    if args.pin_stdin:
        line = stdin.readline()
        return line.rstrip("\r\n")
    if stdin.isatty():
        first = getpass.getpass("New PIN (6-8 digits): ")
        if getpass.getpass("Repeat the PIN: ") != first:
            raise InvalidPinFormat("the two PINs typed differ")
        return first
    raise InvalidPinFormat("no PIN given: use --pin-stdin (or --pin)")


def _card_command(args: argparse.Namespace, settings: Settings, stdout: TextIO, stdin: TextIO) -> int:
    from app.commands import card as commands

    if args.card_command == "issue":
        from app.pki import TrainingCA

        pin = _read_pin(args, stdin)
        puk = stdin.readline().rstrip("\r\n") if args.puk_stdin else args.puk
        ca = TrainingCA.load_or_create(settings.paths.pki_dir)
        return commands.issue(ca, args.out, name=args.name, card_uuid=args.uuid, algorithm=args.alg, pin=pin,
                              puk=puk, days=args.days, stream=stdout)
    if args.card_command == "insert":
        return commands.insert(args.file, port=args.port, host=args.host, stream=stdout)
    if args.card_command == "status":
        from app.card.pcsc import PcscSystem

        def connect():  # type: ignore[no-untyped-def]
            conn = PcscSystem().connect(args.reader)
            return conn, conn.reader, conn.atr, conn.close

        return commands.status(connect, _trust_store(settings), stdout)
    raise AssertionError(args.card_command)


def _trust_store(settings: Settings):  # type: ignore[no-untyped-def]
    from app.pki import TrainingCA, TrustStore

    if settings.training:
        return TrainingCA.load_or_create(settings.paths.pki_dir).trust_store()
    # Live trust stores must prove a certificate is not revoked: no current CRL means not trusted.
    return TrustStore.from_pem_files(settings.trust_anchors, settings.trust_intermediates, settings.trust_crls,
                                     require_revocation=True)


def _wes_command(args: argparse.Namespace, settings: Settings, stdout: TextIO) -> int:
    from app.commands import wes as commands
    from app.config import Mode

    production = settings.mode is Mode.PRODUCTION
    if problem := commands.usage_problem(args, production):
        print(f"spinedesk wes check: {problem}", file=sys.stderr)
        return commands.EXIT_USAGE

    def run():  # type: ignore[no-untyped-def]
        from wes import run_checks
        from wes.probes import default_probes
        from wes.spec import load_spec

        spec = load_spec(args.spec or settings.wes_spec_version)
        return run_checks(mode=args.mode or settings.mode.value, service_url=args.service_url,
                          waivers_path=args.waivers, settings=settings, spec=spec,
                          probes=default_probes(settings, network_timeout=spec.timeouts.network_seconds))

    def pdf_writer():  # type: ignore[no-untyped-def]
        from app.ui.pdf import html_to_pdf

        return lambda html, out, title: html_to_pdf(html, out, title=title)

    return commands.check(run, fmt=args.format, out=args.out, silent=args.silent, stdout=stdout,
                          pdf_writer=pdf_writer)


def _client(settings: Settings, stdout: TextIO) -> int:
    """The desktop client (no subcommand); ``app.desktop`` builds its I/O objects and injects them."""
    from app.desktop import NO_DISPLAY, has_display, run_desktop

    if not has_display(dict(os.environ)):
        print(NO_DISPLAY, file=stdout)
        return EXIT_ERROR
    return run_desktop(settings, stdout)


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stdin: TextIO | None = None) -> int:
    stdout = stdout or sys.stdout
    stdin = stdin or sys.stdin
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.self_test:
        from app.selftest import run as self_test

        return self_test(stdout)
    try:
        settings = load_settings()
        if args.command == "service":
            private_umask()  # the service's database, logs and anything else it writes are its user's alone
        _configure_logging(settings, args.verbose)
        if args.command == "card":
            return _card_command(args, settings, stdout, stdin)
        if args.command == "service":
            return cli_service.run_service(args, settings, stdout)
        if args.command == "wes":
            return _wes_command(args, settings, stdout)
        if args.command == "login":
            return cli_service.run_login(args, settings, stdout, stdin)
        return _client(settings, stdout)
    except PlainHttpRefused as exc:
        log.warning("service refused to start: %s", exc)
        print(user_text(exc), file=sys.stderr)
        return EXIT_REFUSED
    except AppError as exc:
        log.info("command failed: %s", type(exc).__name__)
        print(user_text(exc), file=sys.stderr)
        return 3 if args.command == "wes" else EXIT_ERROR  # wes check: 1 means "not compliant"; 3 could not run
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
