"""The main window: TRAINING banner, card status, the WES gate, login, search and the patient record.

Patient data lives only in the search view, the record view, their models and ``self.cache``; ``clear_patient_data``
empties all of them, and runs synchronously when the session ends (card pulled, lock, logout), before any other
event. Network answers still in flight for the old session are dropped by ``Background.invalidate``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.client.pds import Pds
from app.client.pds_models import Patient, SearchQuery
from app.error_text import user_text
from app.errors import PinBlocked, RecordChanged, ServiceRejected, WesCheckUnavailable
from app.ui import ports
from app.ui.alerts_view import AlertsView
from app.ui.card_self_service import CardSelfService
from app.ui.clinical import ClinicalController
from app.ui.dialogs import MessageArea, accessible, heading
from app.ui.login_flow import LoginFlow, SessionInfo
from app.ui.record_scope import RecordScope
from app.ui.record_view import EditContactDialog, RecordView
from app.ui.search_view import SearchView
from app.ui.signals import emit
from app.ui.tasks import Background
from app.ui.wes_view import WesProgressPage, WesReportView

log = logging.getLogger(__name__)
T = TypeVar("T")
TRAINING_TEXT = ("TRAINING MODE — synthetic patients only. Nothing here is a real patient and nothing real is "
                 "reachable.")


class LoginPage(QWidget):
    def __init__(self, parent: QWidget | None, training_pin: str | None) -> None:
        super().__init__(parent)
        self.setObjectName("loginPage")
        layout = QVBoxLayout(self)
        self.heading = heading("Insert your smartcard to log in.", self, 1.4)
        self.heading.setWordWrap(True)
        layout.addWidget(self.heading)
        self.hint = QLabel("", self)
        self.hint.setWordWrap(True)
        if training_pin:
            self.hint.setText(f"Training: the training smartcard is inserted for you. Its PIN is {training_pin} "
                              "(a training card only: never use a real PIN here).")
        layout.addWidget(self.hint)
        self.login_button = QPushButton("&Log in with the card in the reader", self)
        accessible(self.login_button, "Log in with the card in the reader")
        self.login_button.setEnabled(False)
        layout.addWidget(self.login_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addStretch(1)


class MainWindow(QMainWindow):
    wes_progress = Signal(object)
    startup_step = Signal(str)
    start_finished = Signal(bool)  # the service is up and the WES gate has answered: clinical use open or not

    def __init__(self, deps: ports.ClientDeps) -> None:
        super().__init__()
        self.deps = deps
        self.setObjectName("mainWindow")
        self.setWindowTitle("Spine Desk" + (" — TRAINING" if deps.training else ""))
        self.net = Background(self, threads=2, name="network")
        self.cache: dict[str, Patient] = {}
        self.pds: Pds | None = None
        self.session: SessionInfo | None = None
        self.wes_report: Any = None
        self.clinical_enabled = False
        self.started = deps.startup is None  # the service and the card side are ready
        self.startup_error: BaseException | None = None
        self.edit_dialog: EditContactDialog | None = None
        self._asked: dict[str, int] = {}  # the latest request of each kind (answers to earlier ones are dropped)
        self.last_clear_ms: float | None = None
        self._build()
        scope = RecordScope(parent=self, record=self.record, net=self.net, spine=lambda: self.deps.spine,
                            session=lambda: self.session, report_error=self.report_error,
                            notify=self.messages.show_notice)
        self.clinical = ClinicalController(scope, self.alerts)
        self.flow = LoginFlow(deps, self)
        self.flow.status_changed.connect(self._card_status)
        self.flow.logged_in.connect(self._logged_in)
        self.flow.session_ended.connect(self._session_ended)
        self.flow.error.connect(self._flow_error)
        self.flow.card_present_changed.connect(self._card_present)
        self.self_service = CardSelfService(self, self.flow, deps, notify=self.messages.show_notice,
                                            report_error=self.report_error)
        self.self_service.changed.connect(self._update_actions)
        self._update_actions()
        self.wes_progress.connect(self.progress_page.add)
        self.startup_step.connect(self.progress_page.set_step)

    # --- layout -------------------------------------------------------------------------------------------

    def _build(self) -> None:
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 6)
        self.training_banner = QLabel(TRAINING_TEXT, central)
        self.training_banner.setObjectName("trainingBanner")
        self.training_banner.setWordWrap(True)
        self.training_banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        accessible(self.training_banner, TRAINING_TEXT)
        self.training_banner.setVisible(self.deps.training)
        layout.addWidget(self.training_banner)
        self.messages = MessageArea(central)
        layout.addWidget(self.messages)
        self.stack = QStackedWidget(central)
        self.progress_page = WesProgressPage(self.stack)
        pin = self.deps.training_card.pin if self.deps.training_card else self.deps.training_pin
        self.login_page = LoginPage(self.stack, pin if self.deps.training else None)
        self.login_page.login_button.clicked.connect(lambda: self.flow.begin_login())
        self.search = SearchView(self.deps.today, self.stack)
        self.record: RecordView = RecordView(self.deps.today, self.stack)
        self.alerts: AlertsView = AlertsView(self.stack)
        for page in (self.progress_page, self.login_page, self.search, self.record, self.alerts):
            self.stack.addWidget(page)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self.search.search_nhs.connect(self.open_patient)
        self.search.open_patient.connect(self.open_patient)
        self.search.search_details.connect(self.search_patients)
        self.record.back.connect(self._back_to_search)
        self.record.demographics.edit_requested.connect(self.edit_contact)
        self.card_status = QLabel("Card: starting", self)
        self.card_status.setObjectName("cardStatus")
        self.card_status.setTextFormat(Qt.TextFormat.PlainText)  # names come from the service
        self.statusBar().addPermanentWidget(self.card_status, 1)
        self.busy = QProgressBar(self)
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(120)
        accessible(self.busy, "Working")
        self.busy.hide()
        self.statusBar().addPermanentWidget(self.busy)
        self.net.busy_changed.connect(self.busy.setVisible)
        self._menus()

    def _menus(self) -> None:
        session = self.menuBar().addMenu("&Session")
        self.login_action = self._action(session, "&Log in with card", "Ctrl+L", lambda: self.flow.begin_login())
        self.lock_action = self._action(session, "Loc&k", "Ctrl+Shift+L", lambda: self.flow.lock())
        self.logout_action = self._action(session, "Log &out", "Ctrl+Shift+Q", lambda: self.flow.logout())
        session.addSeparator()
        # card self-service: the card work runs on the login flow's card worker (app/ui/card_self_service.py)
        self.change_pin_action = self._action(session, "Change &PIN…", None, lambda: self.self_service.change_pin())
        self.unblock_action = self._action(session, "&Unblock card…", None, lambda: self.self_service.unblock())
        self.renew_action = self._action(session, "Re&new certificate…", None, lambda: self.self_service.renew())
        session.addSeparator()
        self.search_action = self._action(session, "Patient &search", "Ctrl+F", self._back_to_search)
        self.alerts_action = self._action(session, "Privacy &alerts", "Ctrl+Shift+A", self.show_alerts)
        session.addSeparator()
        self._action(session, "E&xit", QKeySequence.StandardKey.Quit, self.close)
        workstation = self.menuBar().addMenu("&Workstation")
        self.wes_action = self._action(workstation, "&WES report…", "Ctrl+Shift+W", self.show_wes_report)
        self._action(workstation, "&Run WES check again", None, self.run_wes_gate)
        if self.deps.training_card is not None or (self.deps.startup is not None and self.deps.training):
            training = self.menuBar().addMenu("&Training")
            self._action(training, "&Remove training card", None, lambda: self._training_card("remove"))
            self._action(training, "&Insert training card", None, lambda: self._training_card("insert"))
        self._update_actions()

    def _action(self, menu: Any, text: str, shortcut: Any, slot: Any) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _training_card(self, verb: str) -> None:
        card = self.deps.training_card
        if card is None:
            self.messages.show_notice("The training card is not ready yet: Spine Desk is still starting.")
            return
        self.net.run(getattr(card, verb), session_bound=False)

    def _update_actions(self) -> None:
        logged_in = self.session is not None
        officer = logged_in and self.session is not None and self.session.privacy_officer
        self.alerts_action.setEnabled(officer)
        self.search_action.setEnabled(logged_in and self.session is not None and self.session.can_search)
        self.lock_action.setEnabled(logged_in)
        self.logout_action.setEnabled(logged_in)
        self.login_action.setEnabled(not logged_in and self.clinical_enabled and bool(self.flow.cards)
                                     if hasattr(self, "flow") else False)
        service = getattr(self, "self_service", None)
        card = service is not None and self.started and service.card_present and service.dialog is None
        self.change_pin_action.setEnabled(card)
        self.unblock_action.setEnabled(card)
        self.renew_action.setEnabled(card and service is not None and service.renewal_due())

    # --- start and the WES gate ---------------------------------------------------------------------------

    def start(self) -> None:
        """Called once the window is shown. With a ``startup`` (the real client), the service, the training card
        and the card side start in the background with their steps shown; the WES gate runs after them (its card
        checks look at the card the start-up inserted). Clinical use opens only when both have succeeded."""
        startup = self.deps.startup
        if startup is None:
            self._begin()
            return
        self.stack.setCurrentWidget(self.progress_page)
        self.progress_page.set_step("Starting Spine Desk…")
        self.net.run(lambda: startup(lambda text: emit(self.startup_step, text)), self._started,
                     self._startup_failed, session_bound=False)

    def _started(self, started: ports.Started) -> None:
        self.deps.apply(started)
        self.started = True
        self.progress_page.set_step("Started." if self.deps.training else "Connected to the card side.")
        self._begin()

    def _startup_failed(self, exc: BaseException) -> None:
        log.info("start-up failed: %s", type(exc).__name__)
        self.startup_error = exc
        self.progress_page.set_step("Spine Desk could not start: see the message above.")
        self.report_error(exc)  # the one error path; clinical use stays closed
        self._set_clinical(False)
        self._card_status("Card: not available (Spine Desk could not start)")
        emit(self.start_finished, False)

    def _begin(self) -> None:
        self.flow.start()
        self.run_wes_gate()

    def run_wes_gate(self) -> None:
        if not self.started:
            self.messages.show_notice("Spine Desk is still starting: the workstation check follows.")
            return
        self.progress_page.reset()
        if self.session is None:
            self.stack.setCurrentWidget(self.progress_page)
        gate = self.deps.wes_gate
        if gate is None:
            self._wes_failed(WesCheckUnavailable("the WES checker is not part of this build"))
            return
        self.net.run(lambda: gate(lambda result: emit(self.wes_progress, result)), self._wes_done, self._wes_failed,
                     session_bound=False)

    def _wes_done(self, report: Any) -> None:
        self.wes_report = report
        self._set_clinical(bool(report.compliant) and self.started)
        emit(self.start_finished, self.clinical_enabled)
        if not report.compliant:
            self.show_wes_report()

    def _wes_failed(self, exc: BaseException) -> None:
        # training machines carry on (and say so); a production workstation stays closed to clinical use
        self.report_error(exc)
        self._set_clinical(self.deps.training and self.started)
        emit(self.start_finished, self.clinical_enabled)

    def _set_clinical(self, enabled: bool) -> None:
        self.clinical_enabled = enabled
        self.flow.enabled = enabled
        self.flow._update_status()
        if self.session is None:
            self.stack.setCurrentWidget(self.login_page)
            if enabled:
                heading = "Insert your smartcard to log in."
            elif not self.started:
                heading = "Clinical use is disabled: Spine Desk could not start (see the message above)."
            else:
                heading = ("Clinical use is disabled: this workstation does not meet the WES. "
                           "See the report (Workstation menu, WES report).")
            self.login_page.heading.setText(heading)
        self._card_present(bool(self.flow.cards))
        if enabled and self.flow.cards and self.session is None:
            self.flow.begin_login()

    def show_wes_report(self) -> None:
        report = self.wes_report
        if report is None:
            self.messages.show_notice("The workstation check has not finished yet.")
            return
        view = WesReportView(None, report, export_dir=self.deps.export_dir, write_pdf=self.deps.write_pdf,
                             render_html=self.deps.wes_html)
        view.setWindowTitle("WES report — Spine Desk")
        view.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        view.closed.connect(view.close)
        view.resize(760, 600)
        self.wes_view = view
        view.show()
        view.verdict.setFocus()

    # --- session ------------------------------------------------------------------------------------------

    def _card_status(self, text: str) -> None:
        self.card_status.setText(text)
        accessible(self.card_status, f"Card status: {text}")
        self._update_actions()

    def _card_present(self, present: bool) -> None:
        self.login_page.login_button.setEnabled(present and self.clinical_enabled and self.session is None)
        self._update_actions()

    def _logged_in(self, session: SessionInfo) -> None:
        self.clear_patient_data()  # never the previous user's context
        self.session = session
        self.pds = Pds(self.deps.spine, session.auth, self.deps.today)
        self.messages.clear()
        self.activateWindow()  # the login dialogs had the focus; give it back to the working window
        if session.can_search:
            self.stack.setCurrentWidget(self.search)
            QTimer.singleShot(0, self.search.nhs.setFocus)
        elif session.privacy_officer:
            self.show_alerts()
        self._update_actions()

    def _session_ended(self, why: str) -> None:
        started = time.perf_counter()
        self.clear_patient_data()
        self.session = None
        self.stack.setCurrentWidget(self.login_page)
        self.last_clear_ms = (time.perf_counter() - started) * 1000
        self.login_page.heading.setText("Spine Desk is locked. Insert your smartcard to resume."
                                        if self.flow.locked else "Insert your smartcard to log in.")
        self._card_present(bool(self.flow.cards))
        log.info("patient data cleared (%s) in %.1f ms", why, self.last_clear_ms)

    def clear_patient_data(self) -> None:
        """Every patient view, model and cache emptied; answers still in flight are dropped."""
        self.net.invalidate()
        self.pds = None
        if self.edit_dialog is not None:
            self.edit_dialog.blockSignals(True)
            self.edit_dialog.done(0)
            self.edit_dialog.deleteLater()
            self.edit_dialog = None
        self.search.clear()
        self.record.clear()
        self.alerts.clear()
        self.clinical.clear()
        self.cache.clear()
        self.messages.clear()

    def patient_data_present(self) -> list[str]:
        """What still holds patient data (empty after a clear): for tests and the benchmark."""
        held = []
        if self.cache:
            held.append("cache")
        if self.search.model.rowCount():
            held.append("search results")
        if self.record.patient is not None or self.record.banner.texts():
            held.append("record")
        if any(v.text() for v in self.record.demographics.values.values()):
            held.append("demographics")
        if self.record.cpis.body.toPlainText():
            held.append("child protection")
        if self.record.flags.body.toPlainText():
            held.append("reasonable adjustments")
        if self.record.scr.body.toPlainText() or self.clinical.scr_index is not None:
            held.append("summary care record")
        if any(e.text() for e in (self.search.nhs, self.search.family, self.search.given, self.search.dob,
                                  self.search.postcode)):
            held.append("search fields")
        if self.edit_dialog is not None or self.clinical.flag_flow.dialog is not None:
            held.append("edit dialog")
        if self.alerts.alerts or self.alerts.table.rowCount():
            held.append("privacy alerts")
        return held

    # --- PDS ----------------------------------------------------------------------------------------------

    def _flow_error(self, exc: BaseException) -> None:
        """The login flow's errors; a blocked card comes with the way to unblock it."""
        if isinstance(exc, PinBlocked) and self.flow.cards:
            self.report_error(exc, ("Unblock card…", self.self_service.unblock))
        else:
            self.report_error(exc)

    def report_error(self, exc: BaseException, action: Any = None) -> None:
        log.info("error shown to the user: %s", type(exc).__name__)
        if isinstance(exc, ServiceRejected) and exc.status == 401 and self.session is not None:
            self.flow.logout()  # the service no longer accepts this session (expired, revoked): log in again
        self.messages.show_error(exc, action)

    def open_patient(self, nhs_number: str) -> None:
        pds = self.pds
        if pds is not None:
            self._latest("patient", lambda: pds.read(nhs_number), self._show_patient)

    def search_patients(self, query: SearchQuery) -> None:
        pds = self.pds
        if pds is not None:
            self._latest("search", lambda: pds.search(query), self.search.show_results)

    def _latest(self, kind: str, call: Callable[[], T], show: Callable[[T], None]) -> None:
        """Run ``call`` on the network thread and show its answer only if it is still the latest request of its
        kind: a slower, earlier answer (another patient, an older search) never replaces the latest one's."""
        self.messages.clear()
        ticket = self._asked[kind] = self._asked.get(kind, 0) + 1

        def answered(result: T) -> None:
            if ticket == self._asked[kind]:
                show(result)

        self.net.run(call, answered, self.report_error)

    def _show_patient(self, patient: Patient) -> None:
        if self.session is None:
            return
        opened = self.record.patient is None or self.record.patient.nhs_number != patient.nhs_number
        self.cache[patient.nhs_number] = patient
        self.record.show_patient(patient, self.session.role)
        self.stack.setCurrentWidget(self.record)
        QTimer.singleShot(0, self.record.banner.name.setFocus)
        if opened:
            self.clinical.opened()

    def show_alerts(self) -> None:
        if self.session is None or not self.session.privacy_officer:
            return
        self.stack.setCurrentWidget(self.alerts)
        self.clinical.refresh_alerts(self.alerts.status.currentData())

    def _back_to_search(self) -> None:
        self.record.clear()
        self.clinical.clear()
        self.stack.setCurrentWidget(self.search)
        self.search.nhs.setFocus()

    def edit_contact(self) -> None:
        patient = self.record.patient
        if patient is None or self.pds is None:
            return
        dialog = EditContactDialog(self, patient)
        dialog.saved.connect(lambda address, phones: self._save_contact(dialog, patient, address, phones))
        dialog.rejected.connect(lambda: setattr(self, "edit_dialog", None))
        self.edit_dialog = dialog
        dialog.open()

    def _save_contact(self, dialog: EditContactDialog, patient: Patient, address: Any, phones: Any) -> None:
        pds = self.pds
        if pds is None:
            return

        def saved(updated: Patient) -> None:
            self.edit_dialog = None
            dialog.accept()
            self._show_patient(updated)
            self.messages.show_notice("Changes saved to the patient's demographic record.")

        def failed(exc: BaseException) -> None:
            if isinstance(exc, RecordChanged):  # never overwrite: offer a reload instead
                self.edit_dialog = None
                dialog.done(0)
                self.report_error(exc, ("Reload record", lambda: self.open_patient(patient.nhs_number)))
            else:
                dialog.show_problem(user_text(exc))

        self.net.run(lambda: pds.update_contact(patient, address=address, phones=phones), saved, failed)

    # --- shutdown -----------------------------------------------------------------------------------------

    def shutdown(self) -> None:
        self.flow.logout()
        self.flow.stop()
        self.net.wait(5000)
        self.net.shutdown()

    def closeEvent(self, event: Any) -> None:
        self.shutdown()
        super().closeEvent(event)
