"""``spinedesk``: parse the command line, run the command ``app.cli`` names, and turn what went wrong into a
sentence and an exit status — here and nowhere else (the text comes from ``app.error_text.user_text``).

The commands and their wiring (the composition root) live in ``app.cli``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import TextIO

from app.cli import EXIT_ERROR, EXIT_REFUSED, build_parser, command_for
from app.cli.wiring import configure_logging
from app.config import load_settings
from app.error_text import user_text
from app.errors import AppError, PlainHttpRefused
from app.private_files import private_umask

__all__ = ["EXIT_ERROR", "EXIT_REFUSED", "build_parser", "main"]
log = logging.getLogger("spinedesk")


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stdin: TextIO | None = None) -> int:
    stdout = stdout or sys.stdout
    stdin = stdin or sys.stdin
    args = build_parser().parse_args(argv)  # usage errors: argparse's message and exit status 2
    command = command_for(args)
    try:
        settings = load_settings() if command.needs_settings else None
        if command.private_files:
            private_umask()  # the service's database, logs and anything else it writes are its user's alone
        if settings is not None:
            configure_logging(settings, args.verbose)
        return command.module.run(args, settings, stdout=stdout, stdin=stdin)
    except PlainHttpRefused as exc:
        log.warning("service refused to start: %s", exc)
        print(user_text(exc), file=sys.stderr)
        return EXIT_REFUSED
    except AppError as exc:
        log.info("command failed: %s", type(exc).__name__)
        print(user_text(exc), file=sys.stderr)
        return command.error_exit
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
