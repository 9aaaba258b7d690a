"""The record's clinical tabs (SCR, child protection, reasonable adjustments) and their calls, off the GUI thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject

from app.client.cpis import Cpis
from app.client.flags import Flags
from app.client.scr import CONSENT_PREFERENCES, LEGAL_REASONS, Scr, ScrIndex, ScrRecord
from app.ui.alerts_view import AlertsView
from app.ui.flag_flow import FlagFlow
from app.ui.record_scope import RecordScope


class ClinicalController(QObject):
    """Answers the clinical tabs' and the privacy officer's queue's requests with client calls, and shows the
    answers while the same record is open. Given only its :class:`RecordScope` and the alerts view."""

    def __init__(self, scope: RecordScope, alerts: AlertsView) -> None:
        super().__init__(scope.parent)
        self.scope, self.alerts = scope, alerts
        record = scope.record
        record.cpis.view_requested.connect(self.view_cpis)
        record.flags.load_requested.connect(self.load_flags)
        record.scr.check_requested.connect(self.find_scr)
        record.scr.permission.connect(self.scr_permission)
        record.scr.emergency.connect(self.scr_emergency)
        record.scr.legal.connect(self.scr_legal)
        record.scr.consent_preference.connect(self.scr_consent)
        alerts.refresh_requested.connect(self.refresh_alerts)
        alerts.acknowledge_requested.connect(self.acknowledge_alert)
        self.scr_index: ScrIndex | None = None
        self.flag_flow = FlagFlow(scope, reload_flags=self.load_flags)

    def _about(self, nhs_number: str, call: Callable[[], Any], show: Callable[[Any], None]) -> None:
        """``call`` off the GUI thread; its answer shown only while that patient's record is still open."""
        self.scope.net.run(call, self.scope.for_patient(nhs_number, show), self.scope.report_error)

    def opened(self) -> None:
        """A new patient's record is open: prepare the tabs; load what everyone with access may see."""
        patient, session = self.scope.current()
        if patient is None:
            return
        self.scr_index = None
        role = session.role
        self.scope.record.scr.prepare(role, registered_here=self.registered_here(), org=role.org_ods)
        self.load_flags()

    def registered_here(self) -> bool:
        patient, session = self.scope.current()
        return bool(patient and session and patient.gp_ods and patient.gp_ods.upper() == session.role.org_ods.upper())

    def clear(self) -> None:
        self.scr_index = None
        self.flag_flow.clear()

    # --- child protection ----------------------------------------------------------------------------------

    def view_cpis(self, unscheduled: bool) -> None:
        patient, session = self.scope.current()
        if patient is None:
            return
        cpis = Cpis(self.scope.spine(), session.auth)
        self._about(patient.nhs_number, lambda: cpis.view(patient.nhs_number, unscheduled=unscheduled),
                    self.scope.record.cpis.show_result)

    # --- reasonable adjustments ----------------------------------------------------------------------------

    def load_flags(self) -> None:
        patient, session = self.scope.current()
        if patient is None:
            return
        flags = Flags(self.scope.spine(), session.auth)
        self._about(patient.nhs_number, lambda: flags.reasonable_adjustments(patient.nhs_number),
                    self.scope.record.flags.show_flags)

    # --- Summary Care Record -------------------------------------------------------------------------------

    def _scr(self) -> Scr | None:
        _, session = self.scope.current()
        return Scr(self.scope.spine(), session.auth) if session is not None else None

    def find_scr(self) -> None:
        patient, scr = self.scope.record.patient, self._scr()
        if patient is None or scr is None:
            return

        def found(index: ScrIndex) -> None:
            self.scr_index = index
            self.scope.record.scr.show_index(index)

        self._about(patient.nhs_number, lambda: scr.index(patient.nhs_number), found)

    def scr_permission(self, given: bool) -> None:
        patient, scr, index = self.scope.record.patient, self._scr(), self.scr_index
        if patient is None or scr is None or index is None or index.scr_id is None:
            return
        nhs, tab, here, scr_id = patient.nhs_number, self.scope.record.scr, self.registered_here(), index.scr_id
        if not given:
            self._about(nhs, lambda: scr.record_permission(nhs, False), lambda _: tab.show_refused())
            return
        self._about(nhs, lambda: scr.open_with_permission(nhs, scr_id, registered_here=here),
                    lambda record: self._show(record, "with the patient's permission"))

    def scr_emergency(self, reason: str) -> None:
        patient, scr, index = self.scope.record.patient, self._scr(), self.scr_index
        if patient is None or scr is None or index is None or index.scr_id is None:
            return
        nhs, here, scr_id = patient.nhs_number, self.registered_here(), index.scr_id
        self._about(nhs, lambda: scr.open_in_emergency(nhs, scr_id, reason, registered_here=here),
                    lambda record: self._show(record, "under emergency access; your privacy officer has been alerted"))

    def scr_legal(self, basis: int, reason: str) -> None:
        patient, scr, index = self.scope.record.patient, self._scr(), self.scr_index
        if patient is None or scr is None or index is None or index.scr_id is None:
            return
        nhs, here, scr_id = patient.nhs_number, self.registered_here(), index.scr_id
        why = LEGAL_REASONS.get(basis, "").lower()
        self._about(nhs, lambda: scr.open_under_legal_override(nhs, scr_id, basis, reason, registered_here=here),
                    lambda record: self._show(
                        record, f"under a legal override ({why}); your privacy officer has been alerted"))

    def scr_consent(self, code: str) -> None:
        """Record the patient's consent preference (B0020), then look the record up again under it."""
        patient, scr = self.scope.record.patient, self._scr()
        if patient is None or scr is None:
            return
        nhs = patient.nhs_number

        def recorded(_: object) -> None:
            self.scope.notify(f"The patient's consent preference is recorded: {CONSENT_PREFERENCES[code]}.")
            session = self.scope.session()
            if session is not None:  # look the record up again, under the new preference
                self.scr_index = None
                self.scope.record.scr.prepare(session.role, registered_here=self.registered_here(),
                                              org=session.role.org_ods)
                self.find_scr()

        # registered elsewhere: a relationship is self-claimed first (an opted-out patient cannot be claimed)
        claim = not self.registered_here() and not (self.scr_index is not None and self.scr_index.consent == "No")
        self._about(nhs, lambda: scr.set_consent_preference(nhs, code, self_claim=claim), recorded)

    def _show(self, record: ScrRecord, basis: str) -> None:
        self.scope.record.scr.show_record(record, basis)
        self.scope.record.banner.set_allergies([a.description for a in record.allergies])

    # --- privacy officer's queue ---------------------------------------------------------------------------

    def refresh_alerts(self, status: str) -> None:
        scr = self._session_scr()
        if scr is not None:
            self.scope.net.run(lambda: scr.alerts(status or "open"), self.alerts.show_alerts, self.scope.report_error)

    def acknowledge_alert(self, alert_id: str, note: str) -> None:
        scr = self._session_scr()
        if scr is None:
            return
        status = self.alerts.status.currentData()
        self.scope.net.run(lambda: (scr.acknowledge(alert_id, note), scr.alerts(status))[1], self.alerts.show_alerts,
                           self.scope.report_error)

    def _session_scr(self) -> Scr | None:
        session = self.scope.session()
        return Scr(self.scope.spine(), session.auth) if session is not None else None
