"""``spinedesk card issue | insert | status`` (and the self-service actions of :mod:`app.cli.card_selfservice`)."""

from __future__ import annotations

import argparse
import getpass
import signal
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from app.cli import card_selfservice, wiring
from app.config import DEFAULT_VPCD_PORT, Settings
from app.errors import CardError, CertificateRejected, InvalidPinFormat

if TYPE_CHECKING:  # the parser is built for every spinedesk command: the card stack loads only to run one
    from cryptography import x509

    from app.card.backend import LoginToken
    from app.card.virtual import CardFile
    from app.pki import IdentityPolicy, TrainingCA, TrustStore


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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

    card_selfservice.add_parsers(card)

    status = card.add_parser("status", help="back-end, card family, certificate, trust and PIN tries left")
    status.add_argument("--reader", help="PC/SC reader name or prefix, or a PKCS#11 slot description (default: the "
                        "first card found)")


def run(args: argparse.Namespace, settings: Settings, *, stdout: TextIO | None = None,
        stdin: TextIO | None = None) -> int:
    stdout, stdin = stdout or sys.stdout, stdin or sys.stdin
    if args.card_command in card_selfservice.COMMANDS:
        return card_selfservice.run(args, settings, stdout, stdin)
    if args.card_command == "issue":
        from app.pki import TrainingCA

        pin = _read_pin(args, stdin)
        puk = stdin.readline().rstrip("\r\n") if args.puk_stdin else args.puk
        ca = TrainingCA.load_or_create(settings.paths.pki_dir)
        return issue(ca, args.out, name=args.name, card_uuid=args.uuid, algorithm=args.alg, pin=pin,
                     puk=puk, days=args.days, stream=stdout)
    if args.card_command == "insert":
        return insert(args.file, port=args.port, host=args.host, stream=stdout)
    if args.card_command == "status":
        from app.card.chooser import open_login_token

        # status never presents the PIN: the card is left as it is (no reset), so other programs keep theirs
        backends = wiring.card_backends(settings, reset_on_close=False)
        return status(lambda: open_login_token(backends, args.reader, wiring.pcsc_atr(args.reader)),
                      wiring.client_trust(settings), stdout, identity=wiring.client_identity(settings))
    raise AssertionError(args.card_command)


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


def issue(ca: TrainingCA, out: Path, *, name: str, card_uuid: uuid.UUID | None, algorithm: str, pin: str,
          puk: str | None, days: int, stream: TextIO) -> int:
    from app.card.virtual import issue_card

    card, used_puk = issue_card(ca, name=name, card_uuid=card_uuid, algorithm=algorithm, pin=pin, puk=puk, days=days)
    card.save(out)
    _record_unblock_code(ca, card.card_uuid, used_puk)
    cert = card.certificate
    print(f"Training card written to {out}", file=stream)
    print(f"  holder      {name}", file=stream)
    print(f"  card UUID   {card.card_uuid}", file=stream)
    print(f"  algorithm   {algorithm}", file=stream)
    print(f"  valid until {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC", file=stream)
    print(f"  issuer      {cert.issuer.rfc4514_string()}", file=stream)
    if puk is None:
        print(f"  PUK         {used_puk}   (write it down: it unblocks the PIN; it is not shown again)", file=stream)
    return 0


def _record_unblock_code(ca: TrainingCA, card_uuid: uuid.UUID, puk: str) -> None:
    """The training registration authority keeps the PUK (0600, beside the CA) so that a Local Smartcard Unlocker
    can have the service release it (``card unblock --via-service``)."""
    from app.pki.card_records import CardRecords

    CardRecords(ca.directory).record_unblock_code(card_uuid, puk)


def insert(path: Path, *, port: int, host: str, stream: TextIO, install_signals: bool = True) -> int:
    """Serve the card to pcscd's virtual reader until SIGTERM/SIGINT (which pull the card)."""
    from app.card.virtual import CardFile, exclusive_use

    with exclusive_use(path):
        return _serve(path, CardFile.load(path), port=port, host=host, stream=stream, install_signals=install_signals)


def _serve(path: Path, card: CardFile, *, port: int, host: str, stream: TextIO, install_signals: bool) -> int:
    from app.card.virtual import PivApplet, VpcdLink

    applet = PivApplet(card, persist=lambda c: c.save(path))
    link = VpcdLink(applet, host=host, port=port)
    stop = threading.Event()
    if install_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    link.start()
    try:
        if link.inserted.wait(2.0):
            print(f"Card {card.card_uuid} ({card.holder_name}) inserted into the virtual reader on port {port}.",
                  file=stream, flush=True)
        else:
            print(f"Waiting for pcscd's virtual reader on {host}:{port} (is pcscd running with vsmartcard-vpcd, "
                  "and is no other card in that slot?) …", file=stream, flush=True)
            while not stop.is_set() and not link.inserted.wait(0.2):
                pass
            if link.inserted.is_set():
                print(f"Card {card.card_uuid} inserted.", file=stream, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        link.stop()
    print("Card removed.", file=stream, flush=True)
    return 0


@dataclass(frozen=True)
class CardStatus:
    reader: str
    atr: bytes
    label: str | None
    card_uuid: uuid.UUID | None
    subject: str | None
    not_after: datetime | None
    verdict: str | None
    verdict_detail: str
    days_until_expiry: int | None
    renewal_due: bool
    pin_tries_left: int | None
    pin_blocked: bool
    notes: tuple[str, ...] = ()
    backend: str = "PIV"
    module: str | None = None
    family: str = "unknown"
    pin_verified: bool = False
    nhs_uuid: str | None = None  # the NHS user UUID in the subject attribute the certificate's trust anchor names


def subject_text(cert: x509.Certificate) -> str:
    """The certificate's subject in RFC 4514 form, with ``serialNumber`` (where NHS certificates carry the NHS user
    UUID) named rather than shown as its OID, 2.5.4.5."""
    from cryptography.x509.oid import NameOID

    return cert.subject.rfc4514_string({NameOID.SERIAL_NUMBER: "serialNumber"})


def _nhs_identity(cert: x509.Certificate, anchor: x509.Certificate | None,
                  identity: IdentityPolicy | None) -> tuple[str | None, str | None]:
    """(the NHS user UUID, a note when the certificate lacks the one its anchor's policy names)."""
    from app.errors import CertificateIdentityMissing
    from app.pki import IdentityAttribute, subject_identity

    if identity is None:
        return None, None
    attribute = identity.attribute_for(anchor)
    if attribute is IdentityAttribute.SAN_UUID:  # a training card: its card UUID is shown already
        return None, None
    try:
        found = subject_identity(cert, attribute)
    except CertificateIdentityMissing as exc:
        problem = exc.problem
    else:
        if found is not None:
            return found, None
        problem = f"has no {attribute.label}"
    return None, (f"its certificate {problem}, so the service can tell who holds it only if this very certificate "
                  "is registered there")


def read_status(token: LoginToken, trust: TrustStore, now: datetime | None = None, *,
                identity: IdentityPolicy | None = None) -> CardStatus:
    """Everything ``card status`` shows of a card opened by any back-end; the PIN is never presented. ``identity``:
    which subject attribute names the holder per trust anchor (the site's ``[trust] identity``), so the NHS user UUID
    is shown, or its absence warned about."""
    from app.card.family import blocked_by_nhs
    from app.card.piv import algorithm_for
    from app.pki import card_uuid, load_certificate, validate

    info = token.info
    now = now or datetime.now(UTC)
    cert = load_certificate(token.certificate_der())
    pin = token.pin_status()
    verdict = validate(cert, trust, now=now)
    notes = []
    nhs_uuid, missing = _nhs_identity(cert, verdict.anchor, identity)
    if missing:
        notes.append(missing)
    try:
        algorithm_for(cert.public_key())
    except CardError:
        notes.append(f"its key type ({type(cert.public_key()).__name__}) cannot be used to log in here")
    cert_uuid = card_uuid(cert)
    uuid_shown = cert_uuid
    session = getattr(token, "session", None)  # a PIV card also carries a CHUID (PKCS#11 tokens have none)
    if session is not None:
        chuid = session.read_chuid()
        uuid_shown = chuid.guid
        if chuid.guid is not None and cert_uuid is not None and cert_uuid != chuid.guid:
            # the CHUID is unsigned on training cards: identity always comes from the certificate
            notes.append(f"the card's CHUID UUID {chuid.guid} differs from its certificate's {cert_uuid}")
    if blocked_by_nhs(info.family, now.date()):
        notes.append(f"this is an {info.family.value} card: NHS England blocked logins with series 4 cards on "
                     "1 April 2026 and with series 5 and 6 cards on 7 May 2026; ask your registration authority "
                     "for a new card")
    return CardStatus(
        reader=info.reader or "", atr=info.atr, label=info.token_label, card_uuid=uuid_shown,
        subject=subject_text(cert), not_after=cert.not_valid_after_utc,
        verdict=verdict.status.value, verdict_detail=verdict.detail,
        days_until_expiry=verdict.days_until_expiry, renewal_due=verdict.renewal_due,
        pin_tries_left=pin.tries_left, pin_blocked=pin.blocked, notes=tuple(notes),
        backend=info.backend.value, module=info.module, family=info.family.value, pin_verified=pin.verified,
        nhs_uuid=nhs_uuid,
    )


def _printable(text: str) -> str:
    """Card-supplied text (labels, certificate names) with control characters escaped: a hostile card must
    not be able to drive the terminal."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def _pin_text(st: CardStatus) -> str:
    if st.pin_blocked:
        return "BLOCKED (unblock with the PUK)"
    if st.pin_tries_left is not None:
        return f"{st.pin_tries_left} {'try' if st.pin_tries_left == 1 else 'tries'} left"
    if st.backend == "PIV" or st.pin_verified:
        return "verified in this card session"
    return "tries left not reported by the module"


def status(open_token: Callable[[], LoginToken], trust: TrustStore, stream: TextIO, *,
           identity: IdentityPolicy | None = None) -> int:
    token = open_token()
    try:
        st = read_status(token, trust, identity=identity)
    finally:
        token.close()
    show = _printable
    print(f"Reader        {show(st.reader) or 'not reported'}", file=stream)
    print(f"ATR           {st.atr.hex(' ').upper() or 'not reported by the module'}", file=stream)
    print(f"Back-end      {st.backend}{f' ({show(st.module)})' if st.module else ''}", file=stream)
    print(f"Card family   {st.family}", file=stream)
    if st.backend == "PIV":
        print(f"Application   PIV{f' ({show(st.label)})' if st.label else ''}", file=stream)
    else:
        print(f"Token label   {show(st.label) if st.label else 'none'}", file=stream)
    print(f"Card UUID     {st.card_uuid or 'not set'}", file=stream)
    if st.nhs_uuid:
        print(f"NHS user UUID {st.nhs_uuid}", file=stream)
    print(f"Certificate   {show(st.subject) if st.subject else 'none'}", file=stream)
    if st.not_after:
        print(f"Expires       {st.not_after:%Y-%m-%d %H:%M} UTC ({st.days_until_expiry} days)"
              + ("  — renewal due" if st.renewal_due else ""), file=stream)
    print(f"Trust         {st.verdict or 'unknown'}{f' — {show(st.verdict_detail)}' if st.verdict_detail else ''}",
          file=stream)
    print(f"PIN           {_pin_text(st)}", file=stream)
    for note in st.notes:
        print(f"Warning       {show(note)}", file=stream)
    if st.verdict is not None and st.verdict != "trusted":
        raise CertificateRejected(st.verdict, st.verdict_detail)
    return 0


__all__ = ["CardError", "CardStatus", "add_parser", "insert", "issue", "read_status", "run", "status"]
