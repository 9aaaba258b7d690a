"""What the record's controllers (clinical tabs, flag editing) are given by the window, and nothing more: the open
record's view, the network worker, the session and the client as they are now, and the window's one error and
notice paths. The window builds it; the controllers never see the window itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtWidgets import QWidget

from app.client.api import SpineApi
from app.client.pds_models import Patient
from app.ui.login_flow import SessionInfo
from app.ui.record_view import RecordView
from app.ui.tasks import Background


@dataclass(frozen=True)
class RecordScope:
    parent: QWidget  # what the controllers' dialogs belong to
    record: RecordView
    net: Background
    spine: Callable[[], SpineApi]  # the client as it is now (set once start-up has finished)
    session: Callable[[], SessionInfo | None]
    report_error: Callable[..., None]  # (exc, action=None): the one error path
    notify: Callable[[str], None]

    def current(self) -> tuple[Patient, SessionInfo] | tuple[None, None]:
        """The open patient and the session, or ``(None, None)`` when either is missing."""
        patient, session = self.record.patient, self.session()
        return (patient, session) if patient is not None and session is not None else (None, None)

    def for_patient(self, nhs_number: str, show: Callable[[Any], None]) -> Callable[[Any], None]:
        """``show`` only while the same patient's record is still the one open: an answer about one patient never
        lands under another patient's banner."""

        def guarded(result: Any) -> None:
            patient = self.record.patient
            if patient is not None and patient.nhs_number == nhs_number:
                show(result)

        return guarded
