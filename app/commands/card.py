"""``spinedesk card issue | insert | status``."""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from app.card.connection import CardConnection
from app.card.piv import PivSession, algorithm_for
from app.card.virtual import CardFile, PivApplet, VpcdLink, exclusive_use, issue_card
from app.errors import CardError, CertificateRejected
from app.pki import TrainingCA, TrustStore, card_uuid, validate


def issue(ca: TrainingCA, out: Path, *, name: str, card_uuid: uuid.UUID | None, algorithm: str, pin: str,
          puk: str | None, days: int, stream: TextIO) -> int:
    card, used_puk = issue_card(ca, name=name, card_uuid=card_uuid, algorithm=algorithm, pin=pin, puk=puk, days=days)
    card.save(out)
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


def insert(path: Path, *, port: int, host: str, stream: TextIO, install_signals: bool = True) -> int:
    """Serve the card to pcscd's virtual reader until SIGTERM/SIGINT (which pull the card)."""
    with exclusive_use(path):
        return _serve(path, CardFile.load(path), port=port, host=host, stream=stream, install_signals=install_signals)


def _serve(path: Path, card: CardFile, *, port: int, host: str, stream: TextIO, install_signals: bool) -> int:
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


def read_status(connection: CardConnection, reader: str, atr: bytes, trust: TrustStore,
                now: datetime | None = None) -> CardStatus:
    """Everything ``card status`` shows; the PIN is never presented (VERIFY without data)."""
    session = PivSession(connection)
    app = session.select()
    chuid = session.read_chuid()
    cert = session.read_certificate()
    pin = session.pin_status()
    verdict = validate(cert, trust, now=now or datetime.now(UTC)) if cert is not None else None
    notes = []
    if cert is not None:
        try:
            algorithm_for(cert.public_key())
        except CardError:
            notes.append(f"its key type ({type(cert.public_key()).__name__}) cannot be used to log in here")
        cert_uuid = card_uuid(cert)
        if chuid.guid is not None and cert_uuid is not None and cert_uuid != chuid.guid:
            # the CHUID is unsigned on training cards: identity always comes from the certificate
            notes.append(f"the card's CHUID UUID {chuid.guid} differs from its certificate's {cert_uuid}")
    return CardStatus(
        reader=reader, atr=atr, label=app.label, card_uuid=chuid.guid,
        subject=cert.subject.rfc4514_string() if cert else None,
        not_after=cert.not_valid_after_utc if cert else None,
        verdict=verdict.status.value if verdict else None,
        verdict_detail=verdict.detail if verdict else "no PIV Authentication certificate on the card",
        days_until_expiry=verdict.days_until_expiry if verdict else None,
        renewal_due=verdict.renewal_due if verdict else False,
        pin_tries_left=pin.tries_left, pin_blocked=pin.blocked, notes=tuple(notes),
    )


def _printable(text: str) -> str:
    """Card-supplied text (labels, certificate names) with control characters escaped: a hostile card must
    not be able to drive the terminal."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def status(connect: Callable[[], tuple[CardConnection, str, bytes, Callable[[], None]]], trust: TrustStore,
           stream: TextIO) -> int:
    connection, reader, atr, close = connect()
    try:
        st = read_status(connection, reader, atr, trust)
    finally:
        close()
    show = _printable
    print(f"Reader        {show(st.reader)}", file=stream)
    print(f"ATR           {st.atr.hex(' ').upper()}", file=stream)
    print(f"Application   PIV{f' ({show(st.label)})' if st.label else ''}", file=stream)
    print(f"Card UUID     {st.card_uuid or 'not set'}", file=stream)
    print(f"Certificate   {show(st.subject) if st.subject else 'none'}", file=stream)
    if st.not_after:
        print(f"Expires       {st.not_after:%Y-%m-%d %H:%M} UTC ({st.days_until_expiry} days)"
              + ("  — renewal due" if st.renewal_due else ""), file=stream)
    print(f"Trust         {st.verdict or 'unknown'}{f' — {show(st.verdict_detail)}' if st.verdict_detail else ''}",
          file=stream)
    if st.pin_blocked:
        pin = "BLOCKED (unblock with the PUK)"
    elif st.pin_tries_left is None:
        pin = "verified in this card session"
    else:
        pin = f"{st.pin_tries_left} tries left"
    print(f"PIN           {pin}", file=stream)
    for note in st.notes:
        print(f"Warning       {show(note)}", file=stream)
    if st.verdict not in (None, "trusted"):
        raise CertificateRejected(st.verdict, st.verdict_detail)
    return 0


__all__ = ["CardError", "CardStatus", "insert", "issue", "read_status", "status"]
