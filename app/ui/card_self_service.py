"""Card self-service from the Session menu: change the PIN, unblock the card, renew its certificate.

Every card and service call runs on the login flow's card worker (the one thread that owns the card), never on the
UI thread; the dialogs (``change_pin_dialog``, ``unblock_dialog``, ``renew_dialog``) only gather input and show
answers. The card is opened for the dialog (certificate read and checked, holder named, PIN tries read) and
closed with a reset when the dialog closes, so the card forgets any PIN it was shown. Pulling the card, or the
session ending, closes the dialog at once. The use cases are ``app.client.selfservice``'s; a PIN travels only
from a masked field to the card (renewal: also to the card only — the service never sees it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from app.errors import PinBlocked, PinIncorrect
from app.ui import ports
from app.ui.format import format_date
from app.ui.login_flow import RENEWAL_DAYS, CardReady, LoginFlow, read_card
from app.ui.signals import emit

if TYPE_CHECKING:
    from app.card.piv import PinStatus
    from app.ui.card_dialogs import CardDialog, PinCheck, Secrets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenedCard:
    ready: CardReady
    holder: str
    status: PinStatus

    @property
    def reader(self) -> str | None:
        return self.ready.reader


def holder_name(certificate_der: bytes) -> str:
    """The card holder as the certificate names them (its common name)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    names = x509.load_der_x509_certificate(certificate_der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else "not named in the card's certificate"


def close_card(ready: CardReady) -> None:
    """On the card worker: close the card; closing a login token resets the card, so it forgets any PIN it was
    shown."""
    ready.card.close()


def open_card(cards: ports.CardAccess, reader: str | None) -> OpenedCard:
    """On the card worker: the card read and checked as for a login, its holder and its PIN counter."""
    ready = read_card(cards, reader)
    try:
        return OpenedCard(ready, holder_name(ready.card.certificate_der()), ready.card.pin_status())
    except BaseException:
        close_card(ready)
        raise


@dataclass(frozen=True)
class UseCases:
    """The self-service use cases (``app.client.selfservice``), a seam the fast GUI tests may fill in part."""

    change_pin: Callable[..., Any]
    unblock_with_puk: Callable[..., Any]
    unblock_via_service: Callable[..., Any]
    renew_certificate: Callable[..., Any]

    @classmethod
    def real(cls) -> UseCases:
        from app.client import selfservice

        return cls(selfservice.change_pin, selfservice.unblock_with_puk, selfservice.unblock_via_service,
                   selfservice.renew_certificate)


def pin_rules(*, changing: bool) -> tuple[list[str], PinCheck]:
    """NHS's rules for a new PIN in words (``changing``: the current PIN is known, so the new one must differ),
    and the check that enforces them (``app.card.pin_rules``)."""
    from app.card.pin_rules import MAX_LENGTH, MIN_LENGTH, check_new_pin

    rules = [f"{MIN_LENGTH} to {MAX_LENGTH} numbers (0-9), nothing else", "not one number repeated, such as 111111",
             "not a run counting up or down, such as 123456 or 876543"]
    if changing:
        rules.append("not the same as your current PIN")
    return [*rules, "typed the same twice"], check_new_pin


def may_unblock_others(session: Any) -> bool:
    """Whether the session's role holds the Local Smartcard Unlocker activity (the service decides again)."""
    return session is not None and bool(session.role.can_unblock_cards)


class CardSelfService(QObject):
    step = Signal(str)  # a renewal step, from the card worker (no secrets in it)
    changed = Signal()  # what the menu may offer changed (a dialog opened or closed)

    def __init__(self, window: QWidget, flow: LoginFlow, deps: ports.ClientDeps, *,
                 notify: Callable[[str], None], report_error: Callable[[BaseException], None],
                 use_cases: UseCases | None = None) -> None:
        super().__init__(window)
        self._window, self._flow, self._deps = window, flow, deps
        self._notify, self._report = notify, report_error
        self._use_cases = use_cases
        self.dialog: CardDialog | None = None
        self.opened: OpenedCard | None = None
        self.opening: str | None = None  # the reader of a card being opened for a dialog
        self.step.connect(self._step)
        flow.card_present_changed.connect(self._cards_changed)
        flow.session_ended.connect(lambda _why: self.close())

    @property
    def use_cases(self) -> UseCases:
        if self._use_cases is None:
            self._use_cases = UseCases.real()
        return self._use_cases

    # --- what the menu offers -----------------------------------------------------------------------------

    @property
    def card_present(self) -> bool:
        """A card is in a reader and the workstation is open for card use (the WES gate passed): a workstation
        closed to clinical use reads no card, for self-service neither."""
        return self._flow.enabled and bool(self._flow.cards)

    def renewal_due(self) -> bool:
        """Renewal is offered to a session whose card certificate is in its renewal window, where this client may
        replace the card's key (``ClientDeps.renewable``: training cards)."""
        days = self._flow.card_days_left
        return (self._deps.renewable is not None and self._flow.session is not None and days is not None
                and days <= RENEWAL_DAYS)

    def _reader(self, *, someone_else: bool = False) -> str | None:
        cards, own = sorted(self._flow.cards), self._flow.active_reader
        if someone_else and self._flow.session is not None:
            other = next((r for r in cards if r != own), None)
            if other is not None:
                return other
        if own in self._flow.cards:
            return own
        return next(iter(cards), None)

    # --- opening ------------------------------------------------------------------------------------------

    def change_pin(self) -> None:
        self._open(self._reader(), self._show_change)

    def unblock(self) -> None:
        self._open(self._reader(someone_else=may_unblock_others(self._flow.session)), self._show_unblock)

    def renew(self) -> None:
        if self._deps.renewable is None:
            self._notify("Spine Desk cannot renew this card's certificate here: your registration authority "
                         "renews it.")
            return
        if not self.renewal_due():
            self._notify("Your smartcard certificate is not due for renewal yet: it can be renewed in the "
                         f"{RENEWAL_DAYS} days before it expires.")
            return
        self._open(self._reader(), self._show_renew)

    def _open(self, reader: str | None, show: Callable[[OpenedCard], None]) -> None:
        if self.dialog is not None:
            self.dialog.raise_()
            self.dialog.activateWindow()
            return
        if self.opening is not None:
            return
        if not self._flow.enabled:
            self._notify("Card use is closed on this workstation until it passes the workstation check (WES).")
            return
        if reader is None:
            self._notify("Insert your smartcard first.")
            return
        self.opening = reader
        cards = self._deps.cards
        self._flow.card_worker.run(lambda: open_card(cards, reader), lambda opened: self._opened(opened, show),
                                   self._open_failed)

    def _opened(self, opened: OpenedCard, show: Callable[[OpenedCard], None]) -> None:
        self.opening = None
        if opened.reader not in self._flow.cards:  # pulled while it was read
            self._release(opened)
            return
        self.opened = opened
        show(opened)
        emit(self.changed)

    def _open_failed(self, exc: BaseException) -> None:
        self.opening = None
        self._report(exc)

    def _keep(self, dialog: CardDialog) -> None:
        dialog.finished.connect(lambda _result, dialog=dialog: self._closed(dialog))
        self.dialog = dialog
        dialog.open()

    # --- change PIN ---------------------------------------------------------------------------------------

    def _show_change(self, opened: OpenedCard) -> None:
        from app.ui.change_pin_dialog import ChangePinDialog

        rules, check = pin_rules(changing=True)
        dialog = ChangePinDialog(self._window, holder=opened.holder, rules=rules, check=check)
        dialog.show_tries(opened.status)
        if opened.status.blocked:
            dialog.show_problem(PinBlocked(), self._unblock_action())
        dialog.submitted.connect(self._change)
        self._keep(dialog)

    def _change(self, secrets: Secrets) -> None:
        opened, change = self.opened, self.use_cases.change_pin
        if opened is None:
            return
        card = opened.ready.card
        self._flow.card_worker.run(lambda: change(card, secrets.old_pin, secrets.new_pin, secrets.repeat),
                                   self._pin_done, self._pin_failed)

    # --- unblock ------------------------------------------------------------------------------------------

    def _show_unblock(self, opened: OpenedCard) -> None:
        from app.ui.unblock_dialog import UnblockDialog

        rules, check = pin_rules(changing=False)
        session = self._flow.session
        someone_else = session is not None and opened.ready.fingerprint != session.fingerprint
        dialog = UnblockDialog(self._window, holder=opened.holder, rules=rules, check=check,
                               service_allowed=may_unblock_others(session), someone_else=someone_else)
        dialog.show_tries(opened.status)
        dialog.submitted.connect(self._unblock)
        self._keep(dialog)

    def _unblock(self, secrets: Secrets, via_service: bool) -> None:
        opened, session = self.opened, self._flow.session
        if opened is None:
            return
        card, cases = opened.ready.card, self.use_cases
        if via_service and session is not None:
            spine, auth = self._deps.spine, session.auth
            target = card.certificate_der()

            def work() -> Any:
                return cases.unblock_via_service(card, spine, target, secrets.new_pin, secrets.repeat,
                                                 token=auth.token, urid=auth.urid)
        else:
            def work() -> Any:
                return cases.unblock_with_puk(card, secrets.puk, secrets.new_pin, secrets.repeat)
        self._flow.card_worker.run(work, self._pin_done, self._pin_failed)

    # --- PIN answers (change and unblock) -----------------------------------------------------------------

    def _pin_done(self, result: Any) -> None:
        opened = self.opened
        self.close()
        self._notify(getattr(result, "message", "Done."))
        if self._flow.session is None and opened is not None and self._flow.enabled:
            self._flow.begin_login(opened.reader)  # the new PIN logs in at once

    def _pin_failed(self, exc: BaseException) -> None:
        dialog, opened = self.dialog, self.opened
        if dialog is None or opened is None:
            return
        if isinstance(exc, PinBlocked) and not isinstance(dialog, _unblock_dialog_type()):
            dialog.show_problem(exc, self._unblock_action())
        else:
            dialog.show_problem(exc)
        if isinstance(exc, PinIncorrect | PinBlocked):
            card = opened.ready.card
            self._flow.card_worker.run(card.pin_status, self._tries)

    def _tries(self, status: PinStatus) -> None:
        if self.dialog is not None:
            self.dialog.show_tries(status)

    def _unblock_action(self) -> tuple[str, Callable[[], None]]:
        return ("Unblock card…", self._switch_to_unblock)

    def _switch_to_unblock(self) -> None:
        self.close()
        self.unblock()

    # --- renew --------------------------------------------------------------------------------------------

    def _show_renew(self, opened: OpenedCard) -> None:
        from app.ui.renew_dialog import RenewDialog

        days = opened.ready.days_left
        expiry = "soon" if days is None else (
            f"in {days} days, on {format_date(self._deps.now() + timedelta(days=days))}")
        dialog = RenewDialog(self._window, holder=opened.holder, expiry=expiry)
        dialog.submitted.connect(self._renew)
        self._keep(dialog)

    def _renew(self, secrets: Secrets) -> None:
        opened, session, renew = self.opened, self._flow.session, self.use_cases.renew_certificate
        if opened is None or session is None:
            return
        card, spine, token, renewable = opened.ready.card, self._deps.spine, session.auth.token, self._deps.renewable
        if renewable is None:
            return

        def work() -> tuple[Any, bytes]:
            # the PIN proven first: the card's key is replaced before the renewal needs the PIN to sign, and a
            # wrong PIN must cost a try, not the key
            card.verify_pin(secrets.old_pin)
            card.forget_pin()
            renewing = renewable(card)
            result = renew(renewing, spine, secrets.old_pin, token=token, on_step=lambda text: emit(self.step, text))
            return result, renewing.certificate_der()

        self._flow.card_worker.run(work, self._renewed, self._renew_failed)

    def _step(self, text: str) -> None:
        from app.ui.renew_dialog import RenewDialog

        if isinstance(self.dialog, RenewDialog):
            self.dialog.step(text)

    def _renewed(self, renewed: tuple[Any, bytes]) -> None:
        from app.ui.renew_dialog import RenewDialog

        result, certificate_der = renewed
        not_after = getattr(result, "not_after", None)
        days = None if not_after is None else max(0, (not_after - self._deps.now()).days)
        self._flow.card_renewed(certificate_der, days)
        log.info("card certificate renewed")
        if isinstance(self.dialog, RenewDialog):
            self.dialog.renewed(getattr(result, "message", "Your card has a new certificate."))
        emit(self.changed)

    def _renew_failed(self, exc: BaseException) -> None:
        if self.dialog is not None:
            self.dialog.show_problem(exc)

    # --- closing ------------------------------------------------------------------------------------------

    def _cards_changed(self, _present: bool) -> None:
        if self.opening is not None and self.opening not in self._flow.cards:
            self.opening = None  # pulled while it was opened: that answer is dropped (Background.invalidate)
        opened = self.opened
        if opened is not None and opened.reader not in self._flow.cards:
            self.close()

    def close(self) -> None:
        """Close the dialog (its fields emptied) and the card (reset: it forgets any PIN it was shown)."""
        dialog, self.dialog = self.dialog, None
        if dialog is not None:
            dialog.blockSignals(True)
            dialog.done(0)
            dialog.deleteLater()
        self._release(self.opened)
        self.opened = None
        emit(self.changed)

    def _closed(self, dialog: CardDialog) -> None:
        if dialog is self.dialog:
            self.dialog = None
            dialog.deleteLater()
            self._release(self.opened)
            self.opened = None
            emit(self.changed)

    def _release(self, opened: OpenedCard | None) -> None:
        if opened is not None:
            ready = opened.ready
            self._flow.card_worker.run(lambda: close_card(ready), None, lambda _exc: None, session_bound=False)


def _unblock_dialog_type() -> type:
    from app.ui.unblock_dialog import UnblockDialog

    return UnblockDialog
