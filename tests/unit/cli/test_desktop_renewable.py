"""The desktop's training composition makes a training PIV card renewable (its card management key); other cards
are refused with a typed error."""

from __future__ import annotations

import dataclasses

import pytest

from app.card.backend import BackendKind
from app.card.login_card import PivLoginCard
from app.card.piv import PivSession
from app.card.renewal import PivRenewableCard
from app.card.virtual import PivApplet, issue_card
from app.cli.desktop import training_renewable
from app.error_text import user_text
from app.errors import CardManagementRefused
from app.pki import TrainingCA
from tests.support.card import AppletLink


@pytest.fixture(scope="module")
def login_card(tmp_path_factory) -> PivLoginCard:
    ca = TrainingCA.load_or_create(tmp_path_factory.mktemp("ca"))
    card, _ = issue_card(ca, name="Dr Ada Training", algorithm="p256", pin="24681357", puk="12345678")
    applet = PivApplet(card, lambda _card: None)
    applet.power_on()
    return PivLoginCard(PivSession(AppletLink(applet)))


def test_a_training_piv_card_becomes_renewable_with_its_management_key(login_card):
    renewable = training_renewable(login_card)
    assert isinstance(renewable, PivRenewableCard)
    assert renewable.certificate_der() == login_card.certificate_der()


def test_a_card_of_another_back_end_is_refused_in_words(login_card):
    class Token:
        info = dataclasses.replace(login_card.info, backend=BackendKind.PKCS11)

    with pytest.raises(CardManagementRefused) as refused:
        training_renewable(Token())
    assert "registration authority" in user_text(refused.value)
