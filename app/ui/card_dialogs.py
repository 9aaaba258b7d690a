"""What the card self-service dialogs (change PIN, unblock, renew) share: the card holder's name, masked fields
that are emptied when the dialog closes, NHS's PIN rules beside the new PIN checked as it is typed, a message area
for problems (``app.error_text.user_text``) and a busy line while the card works.

Secrets leave a dialog only inside :class:`Secrets` values, whose ``repr`` shows no digits, so a signal argument or
a log line that prints one never carries a PIN or PUK.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from app.ui.dialogs import MessageArea, accessible, buddy, dialog_buttons, modal, plain_text

if TYPE_CHECKING:
    from app.card.piv import PinStatus  # the card modules load on the card worker, off the way to the window

PinCheck = Callable[[str, str, "str | None"], None]  # (new, repeat, old) -> None, or raises InvalidPinFormat


@dataclass(frozen=True, slots=True)
class Secrets:
    """What the person typed into one dialog: never shown by ``repr`` (so never in a log or a logged signal)."""

    new_pin: str = field(default="", repr=False)
    repeat: str = field(default="", repr=False)
    old_pin: str = field(default="", repr=False)  # change PIN: the current PIN; renew: the PIN
    puk: str = field(default="", repr=False)


def masked(parent: QWidget, max_length: int = 8) -> QLineEdit:
    edit = QLineEdit(parent)
    edit.setEchoMode(QLineEdit.EchoMode.Password)
    edit.setMaxLength(max_length)
    return edit


def tries_text(status: PinStatus | None) -> str:
    if status is None:
        return ""
    if status.blocked:
        return "PIN tries left: none. The PIN is blocked: unblock the card with its PUK."
    if status.tries_left is None:
        return "PIN tries left: the card does not say."
    if status.tries_left == 1:
        return "PIN tries left: 1. One more wrong PIN blocks the card."
    return f"PIN tries left: {status.tries_left}."


class RulesPanel(QWidget):
    """NHS's rules for a new PIN, listed beside the fields, and a line that says, as the person types, whether the
    new PIN and its repeat meet them (the first rule broken, in the rule check's own words)."""

    def __init__(self, parent: QWidget, rules: Sequence[str], check: PinCheck) -> None:
        super().__init__(parent)
        self.setObjectName("pinRules")
        self._check = check
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        title = QLabel("<b>Rules for a new PIN</b>", self)
        layout.addWidget(title)
        self.rules = plain_text("\n".join(f"• {rule}" for rule in rules), self)
        accessible(self.rules, "Rules for a new PIN", " ".join(rules))
        layout.addWidget(self.rules)
        self.verdict = plain_text("", self)
        self.verdict.setObjectName("pinRulesVerdict")
        self.verdict.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.verdict.setMinimumHeight(self.verdict.fontMetrics().lineSpacing() * 3)  # room for the longest verdict
        layout.addWidget(self.verdict)
        layout.addStretch(1)
        self.ok = False

    def problem(self, new: str, repeat: str, old: str | None = None) -> BaseException | None:
        """The first rule ``new`` (with ``repeat``) breaks, as the rule check's typed error; None when it meets them."""
        from app.errors import InvalidPinFormat

        try:
            self._check(new, repeat, old or None)
        except InvalidPinFormat as exc:
            return exc
        return None

    def update_verdict(self, new: str, repeat: str, old: str | None = None) -> bool:
        """Check as typed; the verdict never repeats any digit typed."""
        broken = self.problem(new, repeat, old) if new else None
        if not new:
            self.ok, text = False, "Type the new PIN."
        elif broken is not None:
            self.ok, text = False, f"Not yet: {getattr(broken, 'reason', broken)}."
        else:
            self.ok, text = True, "The new PIN meets the rules and both entries match."
        self.verdict.setText(text)
        accessible(self.verdict, "New PIN check", text)
        return self.ok


class CardDialog(QDialog):
    """The frame of every card self-service dialog: holder, intro, fields (a grid the subclass fills), rules beside
    them, the tries left, the message area, a busy line and the primary + Cancel buttons. Every field is emptied on
    close, whichever way it closes."""

    def __init__(self, parent: QWidget | None, *, name: str, title: str, holder: str, intro: str,
                 primary: str, primary_name: str, cancel_name: str) -> None:
        super().__init__(parent)
        layout = modal(self, name, title)
        self.setMinimumWidth(640)
        self.holder = plain_text(f"Card holder: {holder}", self)
        self.holder.setObjectName("cardHolder")
        self.holder.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        accessible(self.holder, f"Card holder: {holder}")
        layout.addWidget(self.holder)
        self.intro = plain_text(intro, self)
        layout.addWidget(self.intro)
        row = QHBoxLayout()
        self.fields = QGridLayout()
        row.addLayout(self.fields, 1)
        self.side = QVBoxLayout()
        row.addLayout(self.side, 1)
        layout.addLayout(row)
        self.tries = plain_text("", self)
        self.tries.setObjectName("pinTries")
        self.tries.hide()
        layout.addWidget(self.tries)
        self.messages = MessageArea(self)
        layout.addWidget(self.messages)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 0)
        accessible(self.progress, "Working on the card")
        self.progress.hide()
        self.progress_text = plain_text("", self)
        self.progress_text.hide()
        layout.addWidget(self.progress_text)
        layout.addWidget(self.progress)
        self.buttons, self.ok = dialog_buttons(self, QDialogButtonBox.StandardButton.Ok, text=primary,
                                               name=primary_name, cancel_name=cancel_name, on_accept=self._submit)
        layout.addWidget(self.buttons)
        self._secret_fields: list[QLineEdit] = []
        self.busy = False

    # --- building -----------------------------------------------------------------------------------------

    def add_field(self, text: str, name: str, description: str, max_length: int = 8) -> QLineEdit:
        edit = masked(self, max_length)
        label = buddy(text, edit, name, description)
        row = self.fields.rowCount()
        self.fields.addWidget(label, row, 0)
        self.fields.addWidget(edit, row, 1)
        self._secret_fields.append(edit)
        return edit

    def field_row_visible(self, edit: QLineEdit, visible: bool) -> None:
        """Show or hide ``edit`` with its label."""
        edit.setVisible(visible)
        for label in self.findChildren(QLabel):
            if label.buddy() is edit:
                label.setVisible(visible)

    # --- state --------------------------------------------------------------------------------------------

    def show_tries(self, status: PinStatus | None) -> None:
        text = tries_text(status)
        self.tries.setText(text)
        accessible(self.tries, text)
        self.tries.setVisible(bool(text))

    def show_problem(self, error: BaseException, action: tuple[str, Callable[[], None]] | None = None) -> None:
        self.set_busy(False)
        self.messages.show_error(error, action)

    def set_busy(self, busy: bool, text: str = "") -> None:
        self.busy = busy
        self.progress.setVisible(busy)
        self.progress_text.setText(text)
        self.progress_text.setVisible(busy and bool(text))
        self.ok.setEnabled(not busy)
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setEnabled(not busy)
        for edit in self._secret_fields:
            edit.setEnabled(not busy)

    def clear_fields(self) -> None:
        for edit in self._secret_fields:
            edit.clear()

    def _submit(self) -> None:  # pragma: no cover - every dialog has its own
        raise NotImplementedError

    def reject(self) -> None:
        """Cancel or Escape; ignored while the card works, so a change is never left half seen (pulling the card
        still closes the dialog: the controller closes it outright)."""
        if not self.busy:
            super().reject()

    def done(self, result: int) -> None:
        self.clear_fields()
        super().done(result)

    def closeEvent(self, event: Any) -> None:
        self.clear_fields()
        super().closeEvent(event)
