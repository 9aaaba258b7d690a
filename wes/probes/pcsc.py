"""Smartcard probes through the application's PC/SC adapter (``app.card.pcsc``: the only pyscard user)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.card.pcsc import PcscSystem
from app.card.piv import PivSession
from app.errors import NoReader, PcscUnavailable
from wes.probes.facts import CardCertificate, PcscFacts, Reader

if TYPE_CHECKING:  # cryptography is imported only when a card certificate is read
    from cryptography.x509 import Certificate


def pcsc_facts(system: PcscSystem | None = None) -> PcscFacts:
    """Whether pcscd (or the OS smart card service) answers, and its readers with card presence and ATR."""
    system = system or PcscSystem()
    try:
        states = system.reader_states()
    except PcscUnavailable as exc:
        return PcscFacts(False, (), detail=str(exc), source="SCardEstablishContext")
    except NoReader:
        states = []
    readers = tuple(Reader(s.name, s.card_present, s.atr) for s in states)
    return PcscFacts(True, readers, source="SCardEstablishContext, SCardListReaders, SCardGetStatusChange")


def read_card_certificate(reader: str, system: PcscSystem | None = None) -> CardCertificate:
    """The PIV Authentication certificate (slot 9A) from the card in ``reader``; no PIN is involved."""
    system = system or PcscSystem()
    connection = system.connect(reader)
    try:
        session = PivSession(connection)
        app = session.select()
        cert = session.read_certificate()
    finally:
        connection.close()
    der = None if cert is None else _der(cert)
    return CardCertificate(reader, der, app.label)


def _der(cert: Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.DER)
