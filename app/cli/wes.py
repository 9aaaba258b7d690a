"""``spinedesk wes check``: run the WES checker and print or write its report.

Exit codes (documented in docs/wes.md and README): 0 compliant, 1 not compliant, 2 bad usage, 3 the check could
not run (invalid spec or waivers file, unreadable site configuration, report not writable).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from app.cli import wiring
from app.config import Mode, Settings
from app.error_text import user_text
from app.errors import AppError

if TYPE_CHECKING:  # the parser is built for every spinedesk command: the checker is imported only to run it
    from wes.model import Report

EXIT_COMPLIANT, EXIT_NOT_COMPLIANT, EXIT_USAGE, EXIT_COULD_NOT_RUN = 0, 1, 2, 3
FORMATS = ("text", "json", "html", "pdf")
WAIVERS_FILE = "wes-waivers.toml"  # the same name as wes.waivers.WAIVERS_FILE (kept import-free for --help)
log = logging.getLogger(__name__)

PdfWriter = wiring.PdfWriter


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    wes = sub.add_parser("wes", help="Warrantied Environment Specification checks").add_subparsers(
        dest="wes_command", metavar="ACTION")
    wes.required = True
    check = wes.add_parser("check", help="check this workstation against the WES",
                           description="Exit status: 0 compliant, 1 not compliant, 2 bad usage, 3 could not run.")
    check.add_argument("--format", choices=FORMATS, default="text", help="report format (default text)")
    check.add_argument("--out", type=Path, help="write the report to FILE (required for pdf)")
    check.add_argument("--silent", action="store_true", help="print nothing; the exit status tells the verdict")
    check.add_argument("--spec", metavar="VERSION", help="WES spec version (default: the site's, else the newest)")
    check.add_argument("--service-url", help="the Spine service to check (default: the site's)")
    check.add_argument("--mode", choices=("training", "production"),
                       help="check as training or production (default: this machine's mode; a production "
                       "machine cannot be checked as training)")
    check.add_argument("--waivers", type=Path, help=f"waivers file (default: {WAIVERS_FILE} beside the site "
                       "configuration, if present)")


def run(args: argparse.Namespace, settings: Settings, *, stdout: TextIO | None = None,
        stdin: TextIO | None = None) -> int:
    stdout = stdout or sys.stdout
    if problem := usage_problem(args, settings.mode is Mode.PRODUCTION):
        print(f"spinedesk wes check: {problem}", file=sys.stderr)
        return EXIT_USAGE

    def run_checks() -> Report:
        from wes import run_checks
        from wes.probes import default_probes
        from wes.spec import load_spec

        spec = load_spec(args.spec or settings.wes_spec_version)
        return run_checks(mode=args.mode or settings.mode.value, service_url=args.service_url,
                          waivers_path=args.waivers, settings=settings, spec=spec,
                          probes=default_probes(settings, network_timeout=spec.timeouts.network_seconds))

    return check(run_checks, fmt=args.format, out=args.out, silent=args.silent, stdout=stdout,
                 pdf_writer=wiring.pdf_writer)


def usage_problem(args: argparse.Namespace, production: bool) -> str | None:
    if args.format == "pdf" and args.out is None:
        return "--format pdf needs --out FILE"
    if args.mode == "training" and production:
        return "this is a production workstation (site configuration present): it cannot be checked as training"
    return None


def check(run: Callable[[], Report], *, fmt: str, out: Path | None, silent: bool, stdout: TextIO,
          pdf_writer: Callable[[], PdfWriter | None] | None = None) -> int:
    """Run the checks via ``run`` and emit the report; returns the exit status."""
    try:
        report = run()
    except AppError as exc:
        log.info("WES check could not run: %s", type(exc).__name__)
        print(f"The WES check could not run: {user_text(exc)}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    try:
        _emit(report, fmt, out, silent, stdout, pdf_writer)
    except OSError as exc:
        print(f"The WES report could not be written: {user_text(exc)}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    return EXIT_COMPLIANT if report.compliant else EXIT_NOT_COMPLIANT


def _emit(report: Report, fmt: str, out: Path | None, silent: bool, stdout: TextIO,
          pdf_writer: Callable[[], PdfWriter | None] | None) -> None:
    from wes.report.html import render_html
    from wes.report.text import render_text

    if fmt == "pdf":
        write = pdf_writer() if pdf_writer is not None else None
        if write is None or out is None:
            raise OSError("PDF output needs an output file and Qt")
        write(render_html(report), out, f"WES compliance report — {report.hostname}")
    else:
        body = {"text": lambda: render_text(report), "html": lambda: render_html(report),
                "json": lambda: json.dumps(report.to_json(), indent=2) + "\n"}[fmt]()
        if out is None:
            if not silent:
                stdout.write(body)
            return
        out.write_text(body, encoding="utf-8")
    if not silent:
        state = "compliant" if report.compliant else f"NOT compliant ({', '.join(r.id for r in report.failures)})"
        print(f"WES check: {state}; {fmt} report written to {out}", file=stdout)
