"""pcscd stopped under us: a clear PcscUnavailable, a monitor that reports it, a card that comes back."""

from __future__ import annotations

import threading

import pytest

from app.card.pcsc import CardMonitor, EventKind, PcscSystem
from app.card.piv import PivSession
from app.error_text import user_text
from app.errors import PcscUnavailable

from .conftest import READER0, spinedesk, start_pcscd, stop_pcscd, wait_card_state

pytestmark = pytest.mark.pcsc


def test_pcscd_stopped_then_restarted(pcscd, rsa_card, insert):
    card = insert(rsa_card)
    events: list = []
    cond = threading.Condition()

    def on_event(e):
        with cond:
            events.append(e.kind)
            cond.notify_all()

    monitor = CardMonitor(on_event, poll_ms=200)
    monitor.start()
    try:
        with cond:
            assert cond.wait_for(lambda: EventKind.CARD_INSERTED in events, 5)
        stop_pcscd()
        try:
            with pytest.raises(PcscUnavailable) as err:
                PcscSystem().readers()
            assert "pcscd" in user_text(err.value) and "start" in user_text(err.value)
            with cond:
                assert cond.wait_for(lambda: EventKind.SERVICE_DOWN in events, 5)
            result = spinedesk("card", "status")
            assert result.returncode == 1
            assert "smart card service (pcscd) is not running" in result.stderr
            assert "Traceback" not in result.stderr
        finally:
            start_pcscd()
        # the card process reconnects with backoff: the card is back without re-inserting it by hand
        assert wait_card_state(pcscd, READER0, True, timeout=10)
        with cond:
            assert cond.wait_for(lambda: events.count(EventKind.SERVICE_UP) >= 2, 10)
            assert cond.wait_for(lambda: events.count(EventKind.CARD_INSERTED) >= 2, 10)
            # a client tracking sessions by insert/remove must see the card go before it comes back
            second_insert = [i for i, kind in enumerate(events) if kind is EventKind.CARD_INSERTED][1]
            first_insert = events.index(EventKind.CARD_INSERTED)
            assert EventKind.CARD_REMOVED in events[first_insert:second_insert], events
            assert EventKind.SERVICE_DOWN in events[first_insert:second_insert], events
            removed = events.index(EventKind.CARD_REMOVED, first_insert)
            assert removed < events.index(EventKind.SERVICE_DOWN, first_insert), events
        with pcscd.connect(READER0) as conn:
            session = PivSession(conn)
            session.select()
            assert session.read_chuid().guid == card.card.card_uuid
    finally:
        monitor.stop()
