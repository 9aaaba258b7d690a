"""Change PIN: the current PIN, the new one twice, NHS's rules beside them checked as typed, the tries left.

The dialog only gathers and shows; the card work is the controller's (``app.ui.card_self_service``), on the card
worker. ``submitted`` carries a :class:`app.ui.card_dialogs.Secrets` (its ``repr`` shows no digits); the fields
are emptied the moment they are read and whenever the dialog closes.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QWidget

from app.ui.card_dialogs import CardDialog, PinCheck, RulesPanel, Secrets
from app.ui.signals import emit


class ChangePinDialog(CardDialog):
    submitted = Signal(object)  # Secrets

    def __init__(self, parent: QWidget | None, *, holder: str, rules: Sequence[str], check: PinCheck) -> None:
        super().__init__(parent, name="changePinDialog", title="Change your smartcard PIN", holder=holder,
                         intro="Type your current PIN, then the new PIN twice. The PIN goes only to the card: Spine "
                               "Desk never stores or logs it.",
                         primary="C&hange PIN", primary_name="Change the PIN on this card",
                         cancel_name="Cancel changing the PIN")
        self.old = self.add_field("&Current PIN", "Current PIN", "The PIN you use now; what you type is hidden")
        self.new = self.add_field("&New PIN", "New PIN", "6 to 8 numbers; what you type is hidden")
        self.repeat = self.add_field("Re&peat new PIN", "Repeat new PIN", "The new PIN again")
        self.rules = RulesPanel(self, rules, check)
        self.side.addWidget(self.rules)
        for edit in (self.old, self.new, self.repeat):
            edit.textChanged.connect(self._check)
        self._check()
        self.old.setFocus()

    def _check(self) -> bool:
        return self.rules.update_verdict(self.new.text(), self.repeat.text(), self.old.text())

    def _submit(self) -> None:
        if self.busy:
            return
        if not self.old.text():
            self.messages.show_notice("Type your current PIN first.")
            self.old.setFocus()
            return
        broken = self.rules.problem(self.new.text(), self.repeat.text(), self.old.text())
        if broken is not None:
            self.messages.show_error(broken)
            self.new.setFocus()
            return
        secrets = Secrets(old_pin=self.old.text(), new_pin=self.new.text(), repeat=self.repeat.text())
        self.clear_fields()  # read once; the card or the rules answer next
        self.messages.clear()
        self.set_busy(True, "Changing the PIN on the card…")
        emit(self.submitted, secrets)
