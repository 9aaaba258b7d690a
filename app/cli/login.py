"""``spinedesk login``: a full card sign-in through PC/SC; prints the session token (for scripts and API tools)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from app.cli import wiring
from app.config import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    login = sub.add_parser("login", help="log in with the card in the reader; prints the session token")
    login.add_argument("--service-url", help="the service (default: the site's, or https://127.0.0.1:8443 in "
                       "training)")
    login.add_argument("--role", help="role profile id (URID) or role code (default: the only one)")
    login.add_argument("--pin-stdin", action="store_true", required=True, help="read the PIN from stdin")
    login.add_argument("--reader", help="PC/SC reader name or prefix, or a PKCS#11 slot description")
    login.add_argument("--ca", type=Path, help="CA certificate to trust for the service's TLS")


def run(args: argparse.Namespace, settings: Settings, *, stdout: TextIO | None = None,
        stdin: TextIO | None = None) -> int:
    import httpx

    from app.card.chooser import open_login_token, refuse_retired
    from app.client.client import SpineClient
    from app.client.login import card_login, choose_role, select_role

    stdout, stdin = stdout or sys.stdout, stdin or sys.stdin
    url = args.service_url or settings.service_url or "http://127.0.0.1:8443"
    verify: bool | str = str(args.ca) if args.ca else (str(settings.service_ca) if settings.service_ca else True)
    pin = stdin.readline().rstrip("\r\n")
    with httpx.Client(verify=verify, timeout=15) as http:
        client = SpineClient(url, http)
        # the first configured back-end that recognises the card (PIV over PC/SC, a PKCS#11 module) serves the login
        card = refuse_retired(open_login_token(wiring.card_backends(settings, reset_on_close=True), args.reader,
                                               wiring.pcsc_atr(args.reader)), datetime.now(UTC).date())
        try:
            login = card_login(card, client, pin)
        finally:
            card.close()  # the card forgets the PIN when the login is done (PIV: reset; PKCS#11: logout)
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
