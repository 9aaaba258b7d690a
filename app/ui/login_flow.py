"""Card status, login, role choice, lock and logout: the session's life, driven by card monitor events.

One worker thread owns the card (every APDU runs there); the service calls of the login run there too, so a
login is one ordered sequence. Pulling the card ends the session at once (``session_ended``), before anything
else runs: the main window clears every patient view in that slot. In lock mode the same card and its PIN resume
the same role; any other card starts a new login with none of the previous user's context.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from app.client.login import card_login, select_role
from app.client.models import Auth, Login, Role
from app.error_text import user_text
from app.errors import InvalidPinFormat, NoRoleAvailable, PinBlocked, PinIncorrect, ServiceUnreachable
from app.ui import ports
from app.ui.dialogs import PinDialog, RolePicker
from app.ui.format import format_date
from app.ui.signals import emit
from app.ui.tasks import Background

if TYPE_CHECKING:
    from app.card.backend import LoginToken

log = logging.getLogger(__name__)
RENEWAL_DAYS = 90


@dataclass(frozen=True)
class CardReady:
    reader: str | None
    card: LoginToken  # whichever back-end opened it (PIV, PKCS#11); closing it makes the card forget the PIN
    fingerprint: str
    days_left: int | None
    blocked: bool


@dataclass(frozen=True)
class SessionInfo:
    login: Login
    role: Role
    auth: Auth
    fingerprint: str

    # what the role may do is the client model's to say (app.client.models.Role); these read it for the window

    @property
    def can_search(self) -> bool:
        return self.role.can_search

    @property
    def privacy_officer(self) -> bool:
        return self.role.privacy_officer

    @property
    def clinical(self) -> bool:
        return self.role.clinical


def read_card(cards: ports.CardAccess, reader: str | None) -> CardReady:
    """On the card worker: open the card through the configured back-ends, read the certificate, check trust and the
    PIN counter. (The card modules, and ``cryptography`` with them, load here, off the way to the first window.)"""
    card = cards.open(reader)
    try:
        pin = card.pin_status()
        der = card.certificate_der()
        days = cards.check_certificate(der)
    except BaseException:
        card.close()
        raise
    return CardReady(reader, card, hashlib.sha256(der).hexdigest(), days, pin.blocked)


class LoginFlow(QObject):
    status_changed = Signal(str)
    logged_in = Signal(object)  # SessionInfo
    session_ended = Signal(str)  # why: "removed", "logout", "lock"
    error = Signal(object)  # an exception for the message area
    card_present_changed = Signal(bool)
    _event = Signal(object)

    def __init__(self, deps: ports.ClientDeps, window: QWidget) -> None:
        super().__init__(window)
        self._deps, self._window = deps, window
        self.card_worker = Background(self, threads=1, name="card")
        self._event.connect(self._on_event)
        self._stop_monitor: Callable[[], None] | None = None
        self.service_up: bool | None = None
        self.readers: set[str] = set()
        self.cards: set[str] = set()
        self.session: SessionInfo | None = None
        self.locked: tuple[str, str, str] | None = None  # fingerprint, user name, urid
        self.enabled = False  # the WES gate opens it
        self._ready: CardReady | None = None
        self._active_reader: str | None = None
        self.card_days_left: int | None = None  # the last card read: days until its certificate expires
        self.pin_dialog: PinDialog | None = None
        self.role_picker: RolePicker | None = None
        self.status = ""

    @property
    def active_reader(self) -> str | None:
        """The reader of the card being logged in with, or of the session's card."""
        return self._active_reader

    # --- monitor ----------------------------------------------------------------------------------------

    def start(self) -> None:
        self._stop_monitor = self._deps.cards.start_monitor(lambda event: emit(self._event, event))
        self._update_status()

    def stop(self) -> None:
        if self._stop_monitor is not None:
            self._stop_monitor()
            self._stop_monitor = None
        self._drop_card()
        self.card_worker.wait(5000)
        self.card_worker.shutdown()

    def _on_event(self, event: ports.ReaderEvent) -> None:
        if event.kind == ports.SERVICE_UP:
            self.service_up = True
        elif event.kind == ports.SERVICE_DOWN:
            self.service_up = False
            self.readers.clear()
            self.cards.clear()
            self.card_gone()
        elif event.kind == ports.READER_ADDED and event.reader:
            self.readers.add(event.reader)
        elif event.kind == ports.READER_REMOVED and event.reader:
            self.readers.discard(event.reader)
            self._card_removed(event.reader)
        elif event.kind == ports.CARD_INSERTED and event.reader:
            self.cards.add(event.reader)
            emit(self.card_present_changed, True)
            if self.session is None and self._ready is None:
                self.begin_login(event.reader)
        elif event.kind == ports.CARD_REMOVED and event.reader:
            self._card_removed(event.reader)
        self._update_status()

    def _card_removed(self, reader: str) -> None:
        self.cards.discard(reader)
        emit(self.card_present_changed, bool(self.cards))
        active = self._ready.reader if self._ready else (self._active_reader if self.session else None)
        if active is None or active == reader:
            self.card_gone()

    # --- login --------------------------------------------------------------------------------------------

    def begin_login(self, reader: str | None = None) -> None:
        """Read the card in ``reader`` (or the first with a card) and ask for the PIN."""
        if not self.enabled:
            self._update_status()
            return
        reader = reader or next(iter(sorted(self.cards)), None)
        self._active_reader = reader
        self._set_status("Card: reading your smartcard…")
        self.card_worker.run(lambda: read_card(self._deps.cards, reader), self._card_ready, self._card_failed)

    def _card_failed(self, exc: BaseException) -> None:
        self._ready = None
        emit(self.error, exc)
        self._update_status()

    def _card_ready(self, ready: CardReady) -> None:
        self._ready = ready
        self.card_days_left = ready.days_left
        if ready.blocked:
            self._drop_card()
            emit(self.error, PinBlocked())
            self._update_status()
            return
        locked = self.locked
        resuming = locked is not None and locked[0] == ready.fingerprint
        if locked is not None and not resuming:
            log.info("a different card was inserted: the locked session is discarded")
            self.locked = None
        reminder = ""
        if ready.days_left is not None and ready.days_left <= RENEWAL_DAYS:
            expiry = self._deps.now() + timedelta(days=ready.days_left)
            reminder = (f"Your smartcard certificate expires in {ready.days_left} days ({format_date(expiry)}). "
                        "Ask your registration authority to renew it before then.")
            if self._deps.renewable is not None:
                reminder += " Or renew it yourself once logged in: Session menu, Renew certificate."
        if locked is not None and resuming:
            title, intro = "Unlock Spine Desk", f"Spine Desk is locked for {locked[1]}. Enter your PIN to resume."
        else:
            title, intro = "Log in to Spine Desk", "Enter your smartcard PIN to log in."
        dialog = PinDialog(self._window, title=title, intro=intro, reminder=reminder)
        dialog.submitted.connect(self._submit_pin)
        dialog.rejected.connect(self._pin_cancelled)
        self.pin_dialog = dialog
        dialog.open()
        self._update_status()

    def _pin_cancelled(self) -> None:
        self.pin_dialog = None
        self._drop_card()
        self._update_status()

    def _submit_pin(self, pin: str) -> None:
        ready = self._ready
        if ready is None:
            return
        self.card_worker.run(lambda: card_login(ready.card, self._deps.spine, pin), self._login_ok, self._login_failed)

    def _login_failed(self, exc: BaseException) -> None:
        dialog = self.pin_dialog
        if dialog is not None and isinstance(exc, PinIncorrect | InvalidPinFormat | ServiceUnreachable):
            dialog.show_problem(user_text(exc))
            return
        self._close_dialogs()
        self._drop_card()
        emit(self.error, exc)
        self._update_status()

    def _login_ok(self, login: Login) -> None:
        ready = self._ready
        self._close_dialogs()
        self._drop_card()
        if ready is None:
            return
        wanted = self.locked[2] if self.locked else None
        if not login.roles:
            self._discard_login(login)
            emit(self.error, NoRoleAvailable(f"{login.user_name} has no role profiles on this service"))
            return
        role = next((r for r in login.roles if r.urid == wanted), None)
        if role is None and len(login.roles) == 1:
            role = login.roles[0]
        if role is not None:
            self._bind(login, role, ready.fingerprint)
            return
        picker = RolePicker(self._window, login.user_name, login.roles)
        picker.chosen.connect(lambda chosen: self._bind(login, chosen, ready.fingerprint))
        picker.rejected.connect(lambda: self._discard_login(login))
        self.role_picker = picker
        picker.open()

    def _bind(self, login: Login, role: Role, fingerprint: str) -> None:
        """Bind the session to the chosen role at the service (once: the token then works for that role only)."""
        self.role_picker = None
        spine = self._deps.spine
        self.card_worker.run(lambda: select_role(spine, login, role),
                             lambda bound: self._start(bound, role, fingerprint),
                             lambda exc: self._bind_failed(login, exc))

    def _bind_failed(self, login: Login, exc: BaseException) -> None:
        self._discard_login(login)
        emit(self.error, exc)

    def _start(self, login: Login, role: Role, fingerprint: str) -> None:
        self.role_picker = None
        self.locked = None
        self.session = SessionInfo(login, role, Auth(login.token, role.urid), fingerprint)
        log.info("logged in: user %s, role profile %s", login.user_id, role.urid)
        emit(self.logged_in, self.session)
        self._update_status()

    def _discard_login(self, login: Login) -> None:
        self.role_picker = None
        self._logout_token(login.token)
        self._update_status()

    def card_renewed(self, certificate_der: bytes, days_left: int | None) -> None:
        """The session's card now holds a new certificate: the session (and a lock it ends in) knows the card by it."""
        self.card_days_left = days_left
        if self.session is not None:
            self.session = dataclasses.replace(self.session, fingerprint=hashlib.sha256(certificate_der).hexdigest())

    # --- ending -------------------------------------------------------------------------------------------

    def card_gone(self) -> None:
        """The card left (or pcscd went away): end the session now; lock or log out by configuration."""
        self.card_worker.invalidate()
        self._close_dialogs()
        self._drop_card()
        if self.session is not None:
            self._end("removed", lock=self._deps.removal == "lock")
        self._update_status()

    def logout(self) -> None:
        if self.session is not None:
            self._end("logout", lock=False)
        self.locked = None
        self._update_status()

    def lock(self) -> None:
        """Lock by hand: the session ends (views cleared); with the card still in, the PIN unlocks at once."""
        if self.session is not None:
            self._end("lock", lock=True)
            if self._active_reader in self.cards:
                self.begin_login(self._active_reader)
        self._update_status()

    def _end(self, why: str, *, lock: bool) -> None:
        session, self.session = self.session, None
        assert session is not None
        self.locked = (session.fingerprint, session.login.user_name, session.role.urid) if lock else None
        emit(self.session_ended, why)  # views clear synchronously, before anything else
        log.info("session ended (%s); %s", why, "locked" if lock else "logged out")
        self._logout_token(session.login.token)

    def _logout_token(self, token: str) -> None:
        spine = self._deps.spine
        self.card_worker.run(lambda: spine.logout(token), None, lambda _exc: None, session_bound=False)

    def _drop_card(self) -> None:
        ready, self._ready = self._ready, None
        if ready is not None:
            self.card_worker.run(ready.card.close, None, lambda _exc: None, session_bound=False)

    def _close_dialogs(self) -> None:
        for dialog in (self.pin_dialog, self.role_picker):
            if dialog is not None:
                dialog.blockSignals(True)
                dialog.done(0)
                dialog.deleteLater()
        self.pin_dialog = self.role_picker = None

    # --- status -------------------------------------------------------------------------------------------

    def _set_status(self, text: str) -> None:
        self.status = text
        emit(self.status_changed, text)

    def _update_status(self) -> None:
        if self.session is not None:
            role = self.session.role
            text = f"Logged in as {self.session.login.user_name}, {role.role_name} ({role.org_name})"
        elif self.locked is not None:
            text = f"Locked for {self.locked[1]}: insert your smartcard and enter your PIN to resume"
        elif self.pin_dialog is not None or self.role_picker is not None:
            text = "Card inserted: logging in"
        elif self.service_up is False:
            text = "Card: the smart card service (pcscd) is not running"
        elif not self.readers:
            text = "Card: no smartcard reader"
        elif self.cards:
            text = "Card: card inserted" + ("" if self.enabled else " (clinical use is disabled on this workstation)")
        else:
            text = "Card: reader ready, no card"
        self._set_status(text)
