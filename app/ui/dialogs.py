"""The PIN prompt, the role picker and the message area (the one place errors are shown, via ``user_text``), and the
small widget helpers every view uses: accessible names, mnemonic labels, headings, text a keyboard user can reach,
row-selecting tables and the dialogs' button row."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from PySide6.QtCore import Qt, Signal, SignalInstance
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.client.models import Role
from app.error_text import user_text
from app.ui.signals import emit

W = TypeVar("W", bound=QWidget)


def accessible(widget: W, name: str, description: str = "") -> W:
    widget.setAccessibleName(name)
    if description:
        widget.setAccessibleDescription(description)
    return widget


def buddy(text: str, widget: QWidget, name: str, description: str = "") -> QLabel:
    """The label for ``widget``, beside it in the same parent, whose mnemonic (``&``) moves the focus to it; the
    widget gets its accessible name and description."""
    label = QLabel(text, widget.parentWidget())
    label.setBuddy(widget)
    accessible(widget, name, description)
    return label


def heading(text: str, parent: QWidget, scale: float) -> QLabel:
    """A heading: the label's own font, ``scale`` times larger."""
    label = QLabel(text, parent)
    font = label.font()
    font.setPointSizeF(font.pointSizeF() * scale)
    label.setFont(font)
    return label


def plain_text(text: str, parent: QWidget) -> QLabel:
    """Wrapped text shown as typed: never interpreted as markup (names and data from the service)."""
    label = QLabel(text, parent)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    return label


def modal(dialog: QDialog, name: str, title: str) -> QVBoxLayout:
    """Make ``dialog`` modal to its window, with its object name and title; returns its top-to-bottom layout."""
    dialog.setObjectName(name)
    dialog.setWindowTitle(title)
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    return QVBoxLayout(dialog)


def reachable_text(parent: QWidget, text: str = "") -> QLabel:
    """Wrapped text that Tab stops at, so that a keyboard or screen reader user meets it in order."""
    label = QLabel(text, parent)
    label.setWordWrap(True)
    label.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    return label


def button_row(parent: QWidget, signal: SignalInstance,
               *choices: tuple[str, str, str, object]) -> tuple[QHBoxLayout, list[QPushButton]]:
    """Buttons side by side from the left, one a ``(text, accessible name, description, value)`` choice; each emits
    ``signal`` with its value."""
    row = QHBoxLayout()
    buttons = []
    for text, name, description, value in choices:
        button = accessible(QPushButton(text, parent), name, description)
        button.clicked.connect(lambda *_, value=value: emit(signal, value))
        row.addWidget(button)
        buttons.append(button)
    row.addStretch(1)
    return row, buttons


def row_table(table: QTableView, name: str, description: str) -> None:
    """One row selected at a time, Tab leaves the table (arrows move inside), columns fit their contents."""
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setTabKeyNavigation(False)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    accessible(table, name, description)


def dialog_buttons(dialog: QDialog, primary: QDialogButtonBox.StandardButton, *, text: str | None, name: str,
                   cancel_name: str, on_accept: Callable[[], None]) -> tuple[QDialogButtonBox, QPushButton]:
    """The primary + Cancel button row every dialog here uses, with accessible names; Cancel rejects."""
    buttons = QDialogButtonBox(primary | QDialogButtonBox.StandardButton.Cancel, dialog)
    button = buttons.button(primary)
    if text is not None:
        button.setText(text)
    accessible(button, name)
    accessible(buttons.button(QDialogButtonBox.StandardButton.Cancel), cancel_name)
    buttons.accepted.connect(on_accept)
    buttons.rejected.connect(dialog.reject)
    return buttons, button


class MessageArea(QFrame):
    """An inline, dismissible message (errors and notices) above the working area: no hover, no flashing."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageArea")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QHBoxLayout(self)
        self.kind = QLabel(self)
        self.kind.setObjectName("messageKind")
        self.text = QLabel(self)
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                          | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.text.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.action = QPushButton("", self)
        self.action.hide()
        self.action.clicked.connect(self._act)
        self._callback: Callable[[], None] | None = None
        self.dismiss = QPushButton("Dismiss", self)
        accessible(self.dismiss, "Dismiss message")
        self.dismiss.clicked.connect(self.clear)
        layout.addWidget(self.kind)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.action)
        layout.addWidget(self.dismiss)
        self.hide()

    def show_error(self, error: BaseException, action: tuple[str, Callable[[], None]] | None = None) -> None:
        self._show("Problem", user_text(error), "error", action)

    def show_notice(self, text: str) -> None:
        self._show("Note", text, "notice")

    def _act(self) -> None:
        callback = self._callback
        self.clear()
        if callback is not None:
            callback()

    def _show(self, kind: str, text: str, level: str, action: tuple[str, Callable[[], None]] | None = None) -> None:
        self._callback = action[1] if action else None
        self.action.setText(action[0] if action else "")
        accessible(self.action, action[0] if action else "")
        self.action.setVisible(action is not None)
        self.setProperty("level", level)
        self.style().unpolish(self)
        self.style().polish(self)
        self.kind.setText(f"<b>{kind}</b>")  # the word says what it is: colour is never the only cue
        self.text.setText(text)
        accessible(self.text, f"{kind}: {text}")
        self.show()
        self.text.setFocus(Qt.FocusReason.OtherFocusReason)

    def clear(self) -> None:
        self.text.clear()
        self._callback = None
        self.action.hide()
        self.hide()

    @property
    def message(self) -> str:
        return self.text.text() if self.isVisible() else ""


class PinDialog(QDialog):
    """Masked PIN entry. ``submitted(pin)`` fires on OK; the field is emptied at once and never logged."""

    submitted = Signal(str)

    def __init__(self, parent: QWidget | None, *, title: str, intro: str, reminder: str = "") -> None:
        super().__init__(parent)
        layout = modal(self, "pinDialog", title)
        self.setMinimumWidth(420)
        self.intro = plain_text(intro, self)
        layout.addWidget(self.intro)
        self.reminder = QLabel(reminder, self)
        self.reminder.setWordWrap(True)
        self.reminder.setVisible(bool(reminder))
        accessible(self.reminder, "Certificate reminder", reminder)
        layout.addWidget(self.reminder)
        self.pin = QLineEdit(self)
        self.pin.setEchoMode(QLineEdit.EchoMode.Password)
        self.pin.setMaxLength(8)
        label = buddy("&PIN", self.pin, "Smartcard PIN", "6 to 8 digits; what you type is hidden")
        layout.addWidget(label)
        layout.addWidget(self.pin)
        self.problem = QLabel("", self)
        self.problem.setTextFormat(Qt.TextFormat.PlainText)
        self.problem.setWordWrap(True)
        self.problem.setObjectName("pinProblem")
        self.problem.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.problem.hide()
        layout.addWidget(self.problem)
        self.buttons, self.ok = dialog_buttons(self, QDialogButtonBox.StandardButton.Ok, text="Log in",
                                               name="Log in with this PIN", cancel_name="Cancel login",
                                               on_accept=self._submit)
        layout.addWidget(self.buttons)
        self.pin.setFocus()

    def _submit(self) -> None:
        pin = self.pin.text()
        self.pin.clear()
        self.set_busy(True)
        emit(self.submitted, pin)

    def set_busy(self, busy: bool) -> None:
        self.ok.setEnabled(not busy)
        self.pin.setEnabled(not busy)
        if not busy:
            self.pin.setFocus()

    def show_problem(self, text: str) -> None:
        self.problem.setText(text)
        accessible(self.problem, "PIN problem", text)
        self.problem.show()
        self.set_busy(False)


def role_label(role: Role) -> str:
    return f"{role.role_name} — {role.org_name} ({role.org_ods})"


class RolePicker(QDialog):
    """Choose one of several role profiles: organisation and role names, keyboard first."""

    chosen = Signal(object)  # Role

    def __init__(self, parent: QWidget | None, user_name: str, roles: Sequence[Role]) -> None:
        super().__init__(parent)
        layout = modal(self, "rolePicker", "Choose your role")
        self.setMinimumWidth(520)
        self._roles = list(roles)
        layout.addWidget(plain_text(f"{user_name}, you have {len(roles)} roles. Choose the one you are working in "
                                    "now.", self))
        self.list = QListWidget(self)
        accessible(self.list, "Your roles", "Role and organisation; press Enter to choose")
        for role in roles:
            item = QListWidgetItem(role_label(role))
            item.setData(Qt.ItemDataRole.AccessibleTextRole, role_label(role))
            self.list.addItem(item)
        self.list.setCurrentRow(0)
        self.list.itemActivated.connect(lambda _item: self._choose())
        layout.addWidget(self.list)
        buttons, _ = dialog_buttons(self, QDialogButtonBox.StandardButton.Ok, text="Use this role",
                                    name="Use the selected role", cancel_name="Cancel and log out",
                                    on_accept=self._choose)
        layout.addWidget(buttons)
        self.list.setFocus()

    def choose(self, index: int) -> None:
        self.list.setCurrentRow(index)
        self._choose()

    def _choose(self) -> None:
        row = self.list.currentRow()
        if 0 <= row < len(self._roles):
            emit(self.chosen, self._roles[row])
            self.accept()
