"""Renew the card's certificate: what will happen, the PIN, each step as it runs, and the new expiry.

``submitted`` carries a :class:`app.ui.card_dialogs.Secrets` with the PIN in ``old_pin`` (its ``repr`` shows no
digits). The card and the service work is the controller's, on the card worker.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QWidget

from app.ui.card_dialogs import CardDialog, Secrets
from app.ui.dialogs import accessible, plain_text
from app.ui.signals import emit


class RenewDialog(CardDialog):
    submitted = Signal(object)  # Secrets

    def __init__(self, parent: QWidget | None, *, holder: str, expiry: str) -> None:
        intro = (f"Your smartcard certificate expires {expiry}. Renewing it makes a new key on your card (the key "
                 "never leaves the card), sends the service a certificate request the card signs with that key, and "
                 "stores the new certificate on the card; the old certificate is then revoked. Your PIN stays the "
                 "same. Keep the card in the reader until this finishes.")
        super().__init__(parent, name="renewDialog", title="Renew your smartcard certificate", holder=holder,
                         intro=intro, primary="&Renew certificate", primary_name="Renew the certificate on this card",
                         cancel_name="Cancel renewal")
        self.pin = self.add_field("&PIN", "Smartcard PIN", "Your PIN, to let the card sign; what you type is hidden")
        self.steps = plain_text("", self)  # each step as it runs, kept in view
        self.steps.setObjectName("renewSteps")
        self.steps.hide()
        self.side.addWidget(self.steps)
        self.outcome = plain_text("", self)
        self.outcome.setObjectName("renewResult")
        self.outcome.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.outcome.hide()
        self.side.addWidget(self.outcome)
        self.pin.setFocus()

    def _submit(self) -> None:
        if self.busy:
            return
        if self.outcome.isVisible():  # finished: the primary button now closes
            self.accept()
            return
        if not self.pin.text():
            self.messages.show_notice("Type your PIN first.")
            self.pin.setFocus()
            return
        secrets = Secrets(old_pin=self.pin.text())
        self.clear_fields()
        self.messages.clear()
        self.steps.clear()
        self.set_busy(True, "Starting the renewal…")
        emit(self.submitted, secrets)

    def step(self, text: str) -> None:
        """One step of the renewal, as it happens (no secrets in it)."""
        self.progress_text.setText(f"{text}…")
        self.progress_text.show()
        done = self.steps.text()
        self.steps.setText(f"{done}\n• {text}" if done else f"• {text}")
        accessible(self.steps, "Renewal steps", self.steps.text())
        self.steps.show()

    def renewed(self, message: str) -> None:
        self.set_busy(False)
        self.field_row_visible(self.pin, False)
        self.outcome.setText(message)
        accessible(self.outcome, "Renewal result", message)
        self.outcome.show()
        self.ok.setText("&Close")
        accessible(self.ok, "Close")
        self.buttons.button(self.buttons.StandardButton.Cancel).hide()
        self.outcome.setFocus()
