"""Unblock a card: its PUK and a new PIN twice; or, for a Local Smartcard Unlocker, another person's card unblocked
with the code the service releases (the unlocker never sees it).

``submitted`` carries ``(Secrets, via_service)``; the secrets' ``repr`` shows no digits.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QWidget

from app.ui.card_dialogs import CardDialog, PinCheck, RulesPanel, Secrets
from app.ui.dialogs import accessible
from app.ui.signals import emit

PUK_LENGTH = 8


class UnblockDialog(CardDialog):
    submitted = Signal(object, bool)  # Secrets, through the service

    def __init__(self, parent: QWidget | None, *, holder: str, rules: Sequence[str], check: PinCheck,
                 service_allowed: bool = False, someone_else: bool = False) -> None:
        intro = ("Type the card's PUK (the 8-digit unblocking code that came with the card), then a new PIN twice. "
                 "A PUK also has a few tries only: if it is blocked too, only a new card helps.")
        super().__init__(parent, name="unblockDialog", title="Unblock a smartcard", holder=holder, intro=intro,
                         primary="Un&block card", primary_name="Unblock this card and set the new PIN",
                         cancel_name="Cancel unblocking")
        self.via_service = accessible(
            QCheckBox("Unblock another person's card through the &service (local smartcard unlocker)", self),
            "Unblock through the service",
            "The service checks your role, records who unblocked whose card and unblocks it: no PUK needed")
        self.via_service.setVisible(service_allowed)
        self.via_service.setChecked(service_allowed and someone_else)
        self.fields.addWidget(self.via_service, 0, 0, 1, 2)
        self.puk = self.add_field("P&UK", "PUK", "8 digits from the card's letter; what you type is hidden",
                                  max_length=PUK_LENGTH)
        self.new = self.add_field("&New PIN", "New PIN", "6 to 8 numbers; what you type is hidden")
        self.repeat = self.add_field("Re&peat new PIN", "Repeat new PIN", "The new PIN again")
        self.rules = RulesPanel(self, rules, check)
        self.side.addWidget(self.rules)
        for edit in (self.new, self.repeat):
            edit.textChanged.connect(self._check)
        self.via_service.toggled.connect(self._mode)
        self._mode()
        self._check()

    def _mode(self) -> None:
        service = self.via_service.isChecked()
        self.field_row_visible(self.puk, not service)
        if service:
            self.puk.clear()
        (self.new if service else self.puk).setFocus()

    def _check(self) -> bool:
        return self.rules.update_verdict(self.new.text(), self.repeat.text())

    def _submit(self) -> None:
        if self.busy:
            return
        service = self.via_service.isChecked()
        puk = self.puk.text()
        if not service and (len(puk) != PUK_LENGTH or not puk.isdigit()):
            self.messages.show_notice(f"Type the card's PUK: {PUK_LENGTH} digits.")
            self.puk.setFocus()
            return
        broken = self.rules.problem(self.new.text(), self.repeat.text())
        if broken is not None:
            self.messages.show_error(broken)
            self.new.setFocus()
            return
        secrets = Secrets(puk="" if service else puk, new_pin=self.new.text(), repeat=self.repeat.text())
        self.clear_fields()
        self.messages.clear()
        self.set_busy(True, "Asking the service and unblocking the card…" if service else "Unblocking the card…")
        emit(self.submitted, secrets, service)
