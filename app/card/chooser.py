"""Choosing the back-end that serves an inserted card, and merging the card events of several monitors.

The site configuration names the back-ends in order (``[cards] backends``, default PIV then PKCS#11) and the PKCS#11
modules; the composition root builds one :class:`app.card.backend.CardBackend` per way of reaching a card (PIV
through PC/SC, one PKCS#11 back-end per module) and :func:`open_login_token` asks them in that order. The first
that recognises the card serves it. A back-end that does not recognise the card answers None and the next is asked;
a back-end that recognises it but cannot use it (a module path that does not exist, a card pulled, a card in use)
raises, and that error is what the user sees: it is not hidden behind the next back-end.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from typing import Any, Protocol

from app.card.backend import BackendKind, CardBackend, LoginToken
from app.card.family import blocked_by_nhs
from app.card.login_card import PivLoginCard
from app.card.piv import PivSession
from app.errors import CardError, CardNotRecognised, CardRetired, NoCard, NoReader, NotPiv, PcscUnavailable

# "No card here for this back-end": PC/SC sees no reader, no card, or is not running. A PKCS#11 token may still be
# there (SoftHSM, or a middleware that reaches its readers without pcscd), so the next back-end is asked; when none
# recognises a card, this error (not "card not recognised") is what the user sees.
_ABSENT = (NoReader, NoCard, PcscUnavailable)


class PivConnection(Protocol):
    """What :class:`PivBackend` needs of a PC/SC connection (``app.card.pcsc.PcscConnection``)."""

    def transmit(self, apdu: bytes) -> tuple[bytes, int]: ...

    def close(self, reset: bool = False) -> None: ...


class PivBackend:
    """Cards that answer the PIV application, over PC/SC. ``connect(reader)`` opens the card in ``reader`` (a name
    or prefix; None: the first reader holding a card) and may raise ``NoReader``/``NoCard``/``PcscUnavailable``.

    ``reset_on_close``: closing the token resets the card, so a PIN verified through it is forgotten (logins);
    ``card status``, which never presents a PIN, leaves the card as it is."""

    kind = BackendKind.PIV
    module: str | None = None

    def __init__(self, connect: Callable[[str | None], PivConnection], *, reset_on_close: bool = True) -> None:
        self._connect = connect
        self._reset = reset_on_close

    def open(self, reader: str | None, atr: bytes) -> LoginToken | None:
        connection = self._connect(reader)
        reader_name = getattr(connection, "reader", None) or reader
        card_atr = getattr(connection, "atr", None) or atr
        try:
            return PivLoginCard(PivSession(connection), reader=reader_name, atr=card_atr,
                                close=lambda: connection.close(reset=self._reset))
        except NotPiv:  # no PIV application (6A82 or similar to SELECT): not ours, the next back-end is asked
            with contextlib.suppress(Exception):
                connection.close()
            return None
        except BaseException:
            with contextlib.suppress(Exception):
                connection.close(reset=self._reset)
            raise


def backend_module(backend: object) -> str | None:
    """The PKCS#11 module a back-end loads (None for PIV), as text for messages."""
    module = getattr(backend, "module", None) or getattr(backend, "module_path", None)
    return None if module is None else str(module)


def open_login_token(backends: Sequence[CardBackend], reader: str | None = None, atr: bytes = b"") -> LoginToken:
    """The card in ``reader`` (a PC/SC reader, a PKCS#11 slot description or token label; None: the first card
    found) opened by the first of ``backends`` that recognises it.

    Raises the first back-end's error when one recognises the card but cannot use it; the "no reader / no card /
    no PC/SC" error when no back-end found a card at all; else ``CardNotRecognised`` listing what was tried."""
    tried: list[tuple[str, str | None]] = []
    absent: CardError | None = None
    for backend in backends:
        try:
            token = backend.open(reader, atr)
        except _ABSENT as exc:
            absent = absent or exc
            tried.append((backend.kind.value, backend_module(backend)))
            continue
        if token is not None:
            return token
        tried.append((backend.kind.value, backend_module(backend)))
    if absent is not None:
        raise absent
    raise CardNotRecognised(tuple(tried),
                            pkcs11_configured=any(b.kind is BackendKind.PKCS11 for b in backends))


def refuse_retired(token: LoginToken, today: date) -> LoginToken:
    """``token``, unless NHS England no longer accepts its card family for logging in on ``today`` (series 4-6 since
    2026): then the card is closed and ``CardRetired`` raised, before any PIN is asked for."""
    since = blocked_by_nhs(token.info.family, today)
    if since is None:
        return token
    with contextlib.suppress(Exception):
        token.close()
    raise CardRetired(token.info.family.value, since)


class _Event(Protocol):
    @property
    def kind(self) -> Any: ...

    @property
    def reader(self) -> str | None: ...


def _kind(event: _Event) -> str:
    return str(getattr(event.kind, "value", event.kind))


class EventMerger:
    """Merges the events of several card monitors (the PC/SC monitor, PKCS#11 token monitors) into one callback,
    de-duplicated: a card seen by two monitors (a PC/SC card a PKCS#11 module also reaches) is inserted once and
    removed once, by whichever monitor reports first, so removal reaches the client as fast as the fastest monitor.
    Events keep their own type; ``callback`` runs on the reporting monitor's thread."""

    def __init__(self, callback: Callable[[Any], None]) -> None:
        self._callback = callback
        self._lock = threading.Lock()
        self._readers: set[str] = set()
        self._cards: set[str] = set()

    def __call__(self, event: Any) -> None:
        kind, reader = _kind(event), event.reader
        with self._lock:
            if reader is not None and not self._changes(kind, reader):
                return
        self._callback(event)

    def _changes(self, kind: str, reader: str) -> bool:
        if kind == "card_inserted":
            self._readers.add(reader)
            if reader in self._cards:
                return False
            self._cards.add(reader)
        elif kind == "card_removed":
            if reader not in self._cards:
                return False
            self._cards.discard(reader)
        elif kind == "reader_added":
            if reader in self._readers:
                return False
            self._readers.add(reader)
        elif kind == "reader_removed":
            if reader not in self._readers:
                return False
            self._readers.discard(reader)
            self._cards.discard(reader)
        return True


def stop_all(stops: Iterable[Callable[[], None]]) -> Callable[[], None]:
    """One function that stops every monitor in ``stops`` (each stop runs even when another fails)."""
    stops = list(stops)

    def stop() -> None:
        for each in stops:
            with contextlib.suppress(Exception):
                each()

    return stop
