"""The composition root: the command line and every command's wiring.

One module per command, each with ``add_parser(sub)`` (its subcommand and options on the ``spinedesk`` parser)
and ``run(args, settings, *, stdout, stdin) -> int`` (build the concrete objects, with ``app.cli.wiring`` for
those commands share, and run). ``COMMANDS`` is the one table of them; ``app.__main__.main`` parses, picks the
command, runs it, and is the one place an error becomes user text and an exit status. Nothing else in the
application constructs I/O objects (PC/SC, files, sockets, the CA), and nothing outside ``app.cli`` and
``app.__main__`` imports this package (an import-linter contract).

Command modules import only light modules at their top: building the parser for any command must not load the
service, the card stack, the WES checker or Qt.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from types import ModuleType

from app import __version__
from app.cli import card, desktop, login, selftest, service, wes

# 3 is a command's own verdict (wes check could not run, audit chain broken); 4: a service refused to start because
# its configuration is unsafe to serve (production without TLS), nothing was started.
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 4


@dataclass(frozen=True)
class Command:
    name: str
    module: ModuleType  # has add_parser(sub) and run(args, settings, *, stdout, stdin) -> int
    subcommand: bool = True  # False: reached without one (the client) or by a top-level option (--self-test)
    error_exit: int = EXIT_ERROR  # the exit status when it fails with an AppError
    needs_settings: bool = True  # False: runs before the site configuration is read (it checks it itself)
    private_files: bool = False  # everything it writes is its user's alone (umask 077)


COMMANDS: tuple[Command, ...] = (
    Command("card", card),
    Command("service", service, private_files=True),
    Command("login", login),
    Command("wes", wes, error_exit=wes.EXIT_COULD_NOT_RUN),  # wes check: 1 means "not compliant"; 3 could not run
    Command("desktop", desktop, subcommand=False),  # `spinedesk` alone
    Command("selftest", selftest, subcommand=False, needs_settings=False),  # `spinedesk --self-test`
)
_BY_NAME = {command.name: command for command in COMMANDS}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spinedesk", description="Spine Desk: NHS Spine smartcard client.")
    parser.add_argument("--version", action="version", version=f"spinedesk {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail to the log file")
    parser.add_argument("--self-test", action="store_true",
                        help="check this installation (Qt, pyscard, service, WES spec, site config) and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.module.add_parser(sub)
    return parser


def command_for(args: argparse.Namespace) -> Command:
    """The command the parsed ``args`` ask for."""
    if args.self_test:
        return _BY_NAME["selftest"]
    return _BY_NAME[args.command or "desktop"]
