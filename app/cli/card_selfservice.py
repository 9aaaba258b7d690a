"""``spinedesk card change-pin | unblock | renew``: card self-service on the command line.

PINs and PUKs come from a terminal prompt (not echoed) or, with ``--pin-stdin`` / ``--puk-stdin``, from lines of
standard input — never from the command line, where other users could read them. Nothing here prints or logs them.
Errors are raised typed; ``app.__main__`` turns them into words and the exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from app.config import Settings
from app.errors import AppError, InvalidPinFormat

if TYPE_CHECKING:
    from app.card.backend import LoginToken

COMMANDS = ("change-pin", "unblock", "renew")
READER_HELP = "PC/SC reader name or prefix, or a PKCS#11 slot description (default: the first card found)"


def add_parsers(card: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    change = card.add_parser("change-pin", help="change the PIN of the card in the reader")
    change.add_argument("--reader", help=READER_HELP)
    change.add_argument("--pin-stdin", action="store_true",
                        help="read the current PIN, the new PIN and the new PIN again from three lines of stdin")

    unblock = card.add_parser("unblock", help="unblock the card in the reader and give it a new PIN")
    unblock.add_argument("--reader", help=READER_HELP)
    how = unblock.add_mutually_exclusive_group()
    how.add_argument("--puk-stdin", action="store_true",
                     help="read the PUK, the new PIN and the new PIN again from three lines of stdin")
    how.add_argument("--via-service", action="store_true",
                     help="a Local Smartcard Unlocker unblocks the card: stdin gives the unlocker's session token "
                          "(from 'spinedesk login'), then the new PIN and the new PIN again")
    unblock.add_argument("--role", help="with --via-service: the unlocker's role profile (URID) the token is bound to")
    _service_options(unblock)

    renew = card.add_parser("renew", help="renew the card's certificate with a new key generated on the card")
    renew.add_argument("--reader", help=READER_HELP)
    renew.add_argument("--pin-stdin", action="store_true", help="read the PIN from the first line of stdin")
    _service_options(renew)


def _service_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--service-url", help="the service (default: the site's, or http://127.0.0.1:8443 in "
                        "training)")
    parser.add_argument("--ca", type=Path, help="CA certificate to trust for the service's TLS")


def run(args: argparse.Namespace, settings: Settings, stdout: TextIO, stdin: TextIO) -> int:
    if args.card_command == "change-pin":
        return change_pin(args, settings, stdout, stdin)
    if args.card_command == "unblock":
        if args.via_service:
            return unblock_via_service(args, settings, stdout, stdin)
        return unblock(args, settings, stdout, stdin)
    if args.card_command == "renew":
        return renew(args, settings, stdout, stdin)
    raise AssertionError(args.card_command)


# --- the commands ------------------------------------------------------------------------------------------


def change_pin(args: argparse.Namespace, settings: Settings, stdout: TextIO, stdin: TextIO) -> int:
    from app.client import selfservice

    read = _reader(stdin, args.pin_stdin)
    old, new, repeat = read("Current PIN: "), read("New PIN (6-8 numbers): "), read("New PIN again: ")
    with _card(settings, args.reader) as card:
        result = selfservice.change_pin(card, old, new, repeat)
    print(result.message, file=stdout)
    return 0


def unblock(args: argparse.Namespace, settings: Settings, stdout: TextIO, stdin: TextIO) -> int:
    from app.client import selfservice

    read = _reader(stdin, args.puk_stdin)
    puk, new, repeat = read("PUK (8 digits): "), read("New PIN (6-8 numbers): "), read("New PIN again: ")
    with _card(settings, args.reader) as card:
        result = selfservice.unblock_with_puk(card, puk, new, repeat)
    print(result.message, file=stdout)
    return 0


def unblock_via_service(args: argparse.Namespace, settings: Settings, stdout: TextIO, stdin: TextIO) -> int:
    from app.client import selfservice

    if not args.role:
        raise AppError("--via-service needs --role: the unlocker's role profile (URID) the token serves")
    token = stdin.readline().strip()
    if not token:
        raise InvalidPinFormat("no session token on the first line of stdin (from 'spinedesk login')")
    read = _reader(stdin, not stdin.isatty())
    new, repeat = read("New PIN for the card (6-8 numbers): "), read("New PIN again: ")
    with _card(settings, args.reader) as card, _client(args, settings) as client:
        result = selfservice.unblock_via_service(card, client, card.certificate_der(), new, repeat, token=token,
                                                 urid=args.role)
    print(result.message, file=stdout)
    return 0


def renew(args: argparse.Namespace, settings: Settings, stdout: TextIO, stdin: TextIO) -> int:
    from app.card.management_key import ManagementKey
    from app.card.renewal import renewable
    from app.client import selfservice

    pin = _reader(stdin, args.pin_stdin)("PIN: ")
    with _card(settings, args.reader) as token, _client(args, settings) as client:
        card = renewable(token, ManagementKey.training())  # a training card's management key (see card-renewal.md)
        result = selfservice.renew_certificate(card, client, pin,
                                               on_step=lambda step: print(f"… {step}", file=sys.stderr))
    print(result.message, file=stdout)
    print(f"New certificate serial {result.serial:x}, valid until {result.not_after:%Y-%m-%d %H:%M} UTC "
          f"(replaces serial {result.old_serial:x}).", file=stdout)
    return 0


# --- plumbing ----------------------------------------------------------------------------------------------


def _reader(stdin: TextIO, from_stdin: bool) -> Any:
    """How secrets are read: lines of stdin, or prompts on the terminal (not echoed). Never argv."""
    def read(prompt: str) -> str:
        if from_stdin:
            line = stdin.readline()
            if not line:
                raise InvalidPinFormat("stdin ended before every PIN was given (one per line)")
            return line.rstrip("\r\n")
        if not stdin.isatty():
            raise InvalidPinFormat("no terminal to ask for the PIN: give the PINs on stdin (--pin-stdin or "
                                   "--puk-stdin)")
        return getpass.getpass(prompt)

    return read


@contextlib.contextmanager
def _card(settings: Settings, reader: str | None) -> Iterator[LoginToken]:
    """The card in ``reader`` through the site's card back-ends in their order (PIV, PKCS#11), as ``spinedesk login``
    opens it; closing it makes the card forget the PIN (and, on PIV, the management authentication)."""
    from app.card.chooser import open_login_token
    from app.cli import wiring

    token = open_login_token(wiring.card_backends(settings), reader, wiring.pcsc_atr(reader))
    try:
        yield token
    finally:
        token.close()


@contextlib.contextmanager
def _client(args: argparse.Namespace, settings: Settings) -> Iterator[Any]:
    import httpx

    from app.client.client import SpineClient

    url = args.service_url or settings.service_url or "http://127.0.0.1:8443"
    verify: bool | str = str(args.ca) if args.ca else (str(settings.service_ca) if settings.service_ca else True)
    with httpx.Client(verify=verify, timeout=30) as http:
        yield SpineClient(url, http)
