"""Recording, changing and removing a reasonable adjustment flag from the record's tab, off the GUI thread.

Change and remove read the flag afresh first and are sent against that version (``If-Match``); a change made by
someone else meanwhile closes the dialog, saves nothing, and offers "Reload flag" through the one error path.
Other refusals are shown inside the dialog, which stays open. Pulling the card closes any dialog (``clear``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QDialog

from app.client.flag_edit import EditableFlag, FlagDraft, FlagEditClient
from app.error_text import user_text
from app.errors import RecordChanged
from app.flag_rules import load_codes
from app.ui.flag_dialog import FlagEditDialog, RemoveFlagDialog
from app.ui.format import format_name
from app.ui.record_scope import RecordScope


def patient_name(patient: Any) -> str:
    name = patient.usual_name
    return format_name(name.family, name.given, name.prefix) if name else format_name(None)


class FlagFlow(QObject):
    """The flag dialogs and their writes; ``reload_flags`` shows the record's flags afresh after a change."""

    def __init__(self, scope: RecordScope, *, reload_flags: Callable[[], None]) -> None:
        super().__init__(scope.parent)
        self.scope, self._reload_flags = scope, reload_flags
        tab = scope.record.flags
        tab.create_requested.connect(self.create)
        tab.edit_requested.connect(self.edit)
        tab.remove_requested.connect(self.remove)
        self.dialog: QDialog | None = None

    def _editor(self) -> tuple[Any, FlagEditClient | None]:
        patient, session = self.scope.current()
        if patient is None or session is None:
            return None, None
        return patient, FlagEditClient(self.scope.spine(), session.auth, load_codes())

    def _open(self, dialog: QDialog) -> None:
        self.clear()
        self.dialog = dialog
        dialog.rejected.connect(lambda: self._closed(dialog))
        dialog.open()

    def _closed(self, dialog: QDialog) -> None:
        if self.dialog is dialog:
            self.dialog = None

    def _finish(self, dialog: QDialog, notice: str) -> None:
        self._closed(dialog)
        dialog.accept()
        self._reload_flags()
        self.scope.notify(notice)

    def _failed(self, dialog: Any, exc: BaseException) -> None:
        if isinstance(exc, RecordChanged):  # never overwrite: close, and offer the flag as it is now
            self._closed(dialog)
            dialog.done(0)
            self.scope.report_error(exc, ("Reload flag", self._reload_flags))
        else:
            dialog.show_problem(user_text(exc))

    def create(self) -> None:
        patient, editor = self._editor()
        if editor is None:
            return
        dialog = FlagEditDialog(self.scope.parent, editor.codes, patient_name=patient_name(patient))
        nhs, guard = patient.nhs_number, self.scope.for_patient

        def save(draft: FlagDraft) -> None:
            self.scope.net.run(lambda: editor.create(nhs, draft),
                           guard(nhs, lambda _flag: self._finish(dialog, "Reasonable adjustment flag recorded.")),
                           lambda exc: self._failed(dialog, exc))

        dialog.saved.connect(save)
        self._open(dialog)

    def _read_then(self, flag_id: str, then: Any) -> None:
        patient, editor = self._editor()
        if editor is None or not flag_id:
            return
        self.scope.net.run(lambda: editor.read(flag_id, patient.nhs_number),
                       self.scope.for_patient(patient.nhs_number, lambda flag: then(patient, editor, flag)),
                       self.scope.report_error)

    def edit(self, flag_id: str) -> None:
        self._read_then(flag_id, self._edit)

    def _edit(self, patient: Any, editor: FlagEditClient, flag: EditableFlag) -> None:
        dialog = FlagEditDialog(self.scope.parent, editor.codes, patient_name=patient_name(patient), draft=flag.draft)
        guard = self.scope.for_patient

        def save(draft: FlagDraft) -> None:
            self.scope.net.run(lambda: editor.update(flag, draft),
                           guard(flag.nhs_number, lambda _f: self._finish(dialog, "Changes to the flag saved.")),
                           lambda exc: self._failed(dialog, exc))

        dialog.saved.connect(save)
        self._open(dialog)

    def remove(self, flag_id: str) -> None:
        self._read_then(flag_id, self._remove)

    def _remove(self, patient: Any, editor: FlagEditClient, flag: EditableFlag) -> None:
        dialog = RemoveFlagDialog(self.scope.parent, editor.codes)
        guard = self.scope.for_patient

        def confirmed(reason: str, comment: str) -> None:
            self.scope.net.run(lambda: editor.remove(flag, reason, comment),
                           guard(flag.nhs_number, lambda _r: self._finish(
                               dialog, "Reasonable adjustment flag removed (kept in its history).")),
                           lambda exc: self._failed(dialog, exc))

        dialog.confirmed.connect(confirmed)
        self._open(dialog)

    def clear(self) -> None:
        """Close any open flag dialog without a word (card pulled, patient closed)."""
        dialog, self.dialog = self.dialog, None
        if dialog is not None:
            dialog.blockSignals(True)
            dialog.done(0)
            dialog.deleteLater()
