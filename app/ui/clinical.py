"""The record's clinical tabs (SCR, child protection, reasonable adjustments) and their calls, off the GUI thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject

from app.client.cpis import Cpis
from app.client.flags import Flags
from app.client.scr import CONSENT_PREFERENCES, LEGAL_REASONS, Scr, ScrIndex, ScrRecord
from app.ui.flag_flow import FlagFlow

if TYPE_CHECKING:
    from app.ui.main_window import MainWindow


class ClinicalTabs(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.w = window
        record = window.record
        record.cpis.view_requested.connect(self.view_cpis)
        record.flags.load_requested.connect(self.load_flags)
        record.scr.check_requested.connect(self.find_scr)
        record.scr.permission.connect(self.scr_permission)
        record.scr.emergency.connect(self.scr_emergency)
        record.scr.legal.connect(self.scr_legal)
        record.scr.consent_preference.connect(self.scr_consent)
        window.alerts.refresh_requested.connect(self.refresh_alerts)
        window.alerts.acknowledge_requested.connect(self.acknowledge_alert)
        self.scr_index: ScrIndex | None = None
        self.flag_flow = FlagFlow(self)

    def _for(self, nhs_number: str, show: Callable[[Any], None]) -> Callable[[Any], None]:
        """``show`` only while the same patient's record is still the one open: an answer about one patient never
        lands under another patient's banner."""

        def guarded(result: Any) -> None:
            patient = self.w.record.patient
            if patient is not None and patient.nhs_number == nhs_number:
                show(result)

        return guarded

    def _context(self):  # type: ignore[no-untyped-def]
        patient, session = self.w.record.patient, self.w.session
        return (patient, session) if patient is not None and session is not None else (None, None)

    def opened(self) -> None:
        """A new patient's record is open: prepare the tabs; load what everyone with access may see."""
        patient, session = self._context()
        if patient is None:
            return
        self.scr_index = None
        role = session.role
        self.w.record.scr.prepare(role.activities, registered_here=self.registered_here(), org=role.org_ods)
        self.load_flags()

    def registered_here(self) -> bool:
        patient, session = self._context()
        return bool(patient and session and patient.gp_ods and patient.gp_ods.upper() == session.role.org_ods.upper())

    def clear(self) -> None:
        self.scr_index = None
        self.flag_flow.clear()

    # --- child protection ----------------------------------------------------------------------------------

    def view_cpis(self, unscheduled: bool) -> None:
        patient, session = self._context()
        if patient is None:
            return
        cpis = Cpis(self.w.deps.spine, session.auth)
        self.w.net.run(lambda: cpis.view(patient.nhs_number, unscheduled=unscheduled),
                       self._for(patient.nhs_number, self.w.record.cpis.show_result), self.w.report_error)

    # --- reasonable adjustments ----------------------------------------------------------------------------

    def load_flags(self) -> None:
        patient, session = self._context()
        if patient is None:
            return
        flags = Flags(self.w.deps.spine, session.auth)
        self.w.net.run(lambda: flags.reasonable_adjustments(patient.nhs_number),
                       self._for(patient.nhs_number, self.w.record.flags.show_flags), self.w.report_error)

    # --- Summary Care Record -------------------------------------------------------------------------------

    def _scr(self) -> Scr | None:
        _, session = self._context()
        return Scr(self.w.deps.spine, session.auth) if session is not None else None

    def find_scr(self) -> None:
        patient, scr = self.w.record.patient, self._scr()
        if patient is None or scr is None:
            return

        def found(index: ScrIndex) -> None:
            self.scr_index = index
            self.w.record.scr.show_index(index)

        self.w.net.run(lambda: scr.index(patient.nhs_number), self._for(patient.nhs_number, found), self.w.report_error)

    def scr_permission(self, given: bool) -> None:
        patient, scr, index = self.w.record.patient, self._scr(), self.scr_index
        if patient is None or scr is None or index is None or index.scr_id is None:
            return
        tab, here, scr_id = self.w.record.scr, self.registered_here(), index.scr_id
        if not given:
            self.w.net.run(lambda: scr.record_permission(patient.nhs_number, False),
                           self._for(patient.nhs_number, lambda _: tab.show_refused()), self.w.report_error)
            return
        self.w.net.run(lambda: scr.open_with_permission(patient.nhs_number, scr_id, registered_here=here),
                       self._for(patient.nhs_number,
                                 lambda record: self._show(record, "with the patient's permission")),
                       self.w.report_error)

    def scr_emergency(self, reason: str) -> None:
        patient, scr, index = self.w.record.patient, self._scr(), self.scr_index
        if patient is None or scr is None or index is None or index.scr_id is None:
            return
        here, scr_id = self.registered_here(), index.scr_id
        self.w.net.run(lambda: scr.open_in_emergency(patient.nhs_number, scr_id, reason, registered_here=here),
                       self._for(patient.nhs_number, lambda record: self._show(
                           record, "under emergency access; your privacy officer has been alerted")),
                       self.w.report_error)

    def scr_legal(self, basis: int, reason: str) -> None:
        patient, scr, index = self.w.record.patient, self._scr(), self.scr_index
        if patient is None or scr is None or index is None or index.scr_id is None:
            return
        here, scr_id, why = self.registered_here(), index.scr_id, LEGAL_REASONS.get(basis, "").lower()
        self.w.net.run(lambda: scr.open_under_legal_override(patient.nhs_number, scr_id, basis, reason,
                                                             registered_here=here),
                       self._for(patient.nhs_number, lambda record: self._show(
                           record, f"under a legal override ({why}); your privacy officer has been alerted")),
                       self.w.report_error)

    def scr_consent(self, code: str) -> None:
        """Record the patient's consent preference (B0020), then look the record up again under it."""
        patient, scr = self.w.record.patient, self._scr()
        if patient is None or scr is None:
            return
        nhs = patient.nhs_number

        def recorded(_: object) -> None:
            self.w.messages.show_notice(f"The patient's consent preference is recorded: {CONSENT_PREFERENCES[code]}.")
            session = self.w.session
            if session is not None:  # look the record up again, under the new preference
                self.scr_index = None
                self.w.record.scr.prepare(session.role.activities, registered_here=self.registered_here(),
                                          org=session.role.org_ods)
                self.find_scr()

        # registered elsewhere: a relationship is self-claimed first (an opted-out patient cannot be claimed)
        claim = not self.registered_here() and not (self.scr_index is not None and self.scr_index.consent == "No")
        self.w.net.run(lambda: scr.set_consent_preference(nhs, code, self_claim=claim), self._for(nhs, recorded),
                       self.w.report_error)

    def _show(self, record: ScrRecord, basis: str) -> None:
        self.w.record.scr.show_record(record, basis)
        self.w.record.banner.set_allergies([a.description for a in record.allergies])

    # --- privacy officer's queue ---------------------------------------------------------------------------

    def refresh_alerts(self, status: str) -> None:
        scr = self._session_scr()
        if scr is not None:
            self.w.net.run(lambda: scr.alerts(status or "open"), self.w.alerts.show_alerts, self.w.report_error)

    def acknowledge_alert(self, alert_id: str, note: str) -> None:
        scr = self._session_scr()
        if scr is None:
            return
        status = self.w.alerts.status.currentData()
        self.w.net.run(lambda: (scr.acknowledge(alert_id, note), scr.alerts(status))[1], self.w.alerts.show_alerts,
                       self.w.report_error)

    def _session_scr(self) -> Scr | None:
        session = self.w.session
        return Scr(self.w.deps.spine, session.auth) if session is not None else None
