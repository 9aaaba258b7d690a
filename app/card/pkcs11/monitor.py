"""Token insert/remove events from a PKCS#11 module's slots (see :class:`TokenMonitor`)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable

from pkcs11 import TokenFlag
from pkcs11 import exceptions as p11

from app.card.pcsc import CardEvent, EventKind
from app.card.pkcs11.loader import LoadedModule, load_module
from app.errors import CardError

log = logging.getLogger(__name__)


class TokenMonitor:
    """Token insert/remove in one module's slots, reported like :class:`app.card.pcsc.CardMonitor` does: the first
    events describe the current state (SERVICE_UP, READER_ADDED per slot, CARD_INSERTED per token); then changes.
    A module that cannot be loaded is reported as SERVICE_DOWN (and retried). ``reader`` in events is the slot
    description. Start with :meth:`start`, end with :meth:`stop`."""

    poll = 0.3  # seconds between slot scans for modules without C_WaitForSlotEvent
    event_poll = 0.1  # seconds between non-blocking C_WaitForSlotEvent calls

    def __init__(self, module_path: str | os.PathLike[str], callback: Callable[[CardEvent], None]) -> None:
        self.module_path = os.fspath(module_path)
        self._callback = callback
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.uses_slot_events: bool | None = None  # known once the monitor has run

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="token-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _emit(self, kind: EventKind, reader: str | None = None) -> None:
        try:
            self._callback(CardEvent(kind, reader))
        except Exception:  # a broken listener must not kill the monitor
            log.exception("token event listener failed")

    def _scan(self, module: LoadedModule) -> tuple[dict[int, str], set[int]]:
        with module.lock:
            slots = {s.slot_id: s.slot_description.strip() for s in module.lib.get_slots()}
            present = set()
            for s in module.lib.get_slots(token_present=True):
                with contextlib.suppress(p11.PKCS11Error):  # a token pulled between the two calls
                    if s.get_token().flags & TokenFlag.TOKEN_INITIALIZED:
                        present.add(s.slot_id)
        return slots, present

    def _slot_event(self, module: LoadedModule) -> bool:
        """Whether C_WaitForSlotEvent reports an event now (True also for modules without it: then always scan)."""
        if self.uses_slot_events is False:
            return True
        with module.lock:
            try:
                module.lib.wait_for_slot_event(blocking=False)
            except p11.NoEvent:
                self.uses_slot_events = True
                return False
            except TypeError:  # python-pkcs11 0.10.1 fails to wrap the slot it reports: an event all the same
                self.uses_slot_events = True
                return True
            except p11.PKCS11Error:  # CKR_FUNCTION_NOT_SUPPORTED and the like
                self.uses_slot_events = False
                return True
        self.uses_slot_events = True
        return True

    def _run(self) -> None:
        slots: dict[int, str] = {}
        present: set[int] = set()
        up = None
        while not self._stop.is_set():
            try:
                module = load_module(self.module_path)
                if up is not True:
                    up = True
                    self._emit(EventKind.SERVICE_UP)
                event = self._slot_event(module)
                now_slots, now_present = self._scan(module) if (event or not slots) else (slots, present)
            except CardError as exc:
                if up is not False:
                    log.warning("token monitor: %s", exc)
                    for sid in present:
                        self._emit(EventKind.CARD_REMOVED, slots.get(sid))
                    slots, present, up = {}, set(), False
                    self._emit(EventKind.SERVICE_DOWN)
                self._stop.wait(2.0)
                continue
            except Exception as exc:  # whatever happens, the thread lives on until stopped
                log.warning("token monitor: the module failed (%s); retrying", type(exc).__name__)
                self._stop.wait(self.poll)
                continue
            for sid in [s for s in present if s not in now_present]:
                self._emit(EventKind.CARD_REMOVED, slots.get(sid, now_slots.get(sid)))
            for sid in [s for s in slots if s not in now_slots]:
                self._emit(EventKind.READER_REMOVED, slots[sid])
            for sid in [s for s in now_slots if s not in slots]:
                self._emit(EventKind.READER_ADDED, now_slots[sid])
            for sid in sorted(s for s in now_present if s not in present):
                self._emit(EventKind.CARD_INSERTED, now_slots.get(sid))
            slots, present = now_slots, now_present
            self._stop.wait(self.event_poll if self.uses_slot_events else self.poll)
