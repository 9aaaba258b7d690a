"""The fake ports keep the fast tier honest: no made-up answers, the card's signature really checked."""

from __future__ import annotations

import pytest

from app.client.models import Auth
from app.client.pds import Pds
from app.errors import ServiceRejected, ServiceUnreachable
from tests.gui.conftest import ALEX, PIN
from tests.gui.fakes import AppletLink, FakeSpine, UnexpectedRequest

pytestmark = pytest.mark.gui_fast


def test_an_unrecorded_request_fails_loudly_and_is_named(exchanges):
    spine = FakeSpine(exchanges)
    with pytest.raises(UnexpectedRequest, match="9000000033"):
        Pds(spine, Auth("token", "training-clinical")).read("9000000033")
    assert spine.unexpected == [{"method": "GET", "path": "/personal-demographics/FHIR/R4/Patient/9000000033",
                                 "urid": "training-clinical"}]


def test_a_recorded_refusal_comes_back_as_the_clients_typed_error(exchanges):
    from app.client.scr import SCR_BASE, SCR_TYPE

    spine = FakeSpine(exchanges)
    with pytest.raises(ServiceRejected) as refused:
        spine.fhir("GET", f"{SCR_BASE}/DocumentReference", Auth("token", "training-clinical"), params=[
            ("patient", "https://fhir.nhs.uk/Id/nhs-number|9000000017"), ("type", SCR_TYPE)])
    assert refused.value.status == 403 and "opted out" in refused.value.message


def test_a_dead_service_raises_the_clients_connection_error(exchanges):
    spine = FakeSpine(exchanges)
    spine.dead = True
    with pytest.raises(ServiceUnreachable):
        Pds(spine, Auth("token", "training-clinical")).read("9000000009")
    assert spine.requests == []


def test_a_login_is_answered_only_for_a_signature_the_card_made(exchanges, card, cards):
    from app.card.login_card import PivLoginCard
    from app.card.piv import PivSession
    from app.client.login import card_login

    applet = card(ALEX)
    cards.insert(applet)
    login_card = PivLoginCard(PivSession(AppletLink(cards, "Virtual PCD 00 00", applet)))
    spine = FakeSpine(exchanges)
    assert card_login(login_card, spine, PIN).user_name == "Dr Alex Training"
    nonce = spine.challenge(login_card.certificate_der()).nonce
    with pytest.raises(UnexpectedRequest, match="signature over the challenge does not verify"):
        spine.complete(nonce, b"\x30\x06\x02\x01\x01\x02\x01\x01", login_card.certificate_der())
