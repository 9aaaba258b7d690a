"""One training CA and one RSA-2048 and one P-256 card per session (RSA key generation is slow); every test
gets its own copy of a card, because the applet changes counters and PINs in place."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from app.card.virtual import CardFile, PivApplet, issue_card

PIN = "123456"
PUK = "87654321"


@pytest.fixture(scope="session")
def ca(tmp_path_factory):
    from app.pki import TrainingCA

    return TrainingCA.load_or_create(tmp_path_factory.mktemp("training-ca"))


@pytest.fixture(scope="session")
def rsa_master(ca) -> CardFile:
    card, _ = issue_card(ca, name="Dr Ada Training", algorithm="rsa2048", pin=PIN, puk=PUK)
    return card


@pytest.fixture(scope="session")
def p256_master(ca) -> CardFile:
    card, _ = issue_card(ca, name="Nurse Grace Training", algorithm="p256", pin=PIN, puk=PUK)
    return card


@pytest.fixture
def rsa_card(rsa_master) -> CardFile:
    return copy.copy(rsa_master)  # counters and hashes are rebound, never mutated in place


@pytest.fixture
def p256_card(p256_master) -> CardFile:
    return copy.copy(p256_master)


class Saved(list):
    """The persist callback: records a snapshot of the counters each time it is called."""

    def __call__(self, card: CardFile) -> None:
        self.append((card.pin_tries_left, card.puk_tries_left))


@pytest.fixture
def persisted() -> Saved:
    return Saved()


@pytest.fixture
def make_applet(persisted) -> Callable[[CardFile], PivApplet]:
    def _make(card: CardFile) -> PivApplet:
        applet = PivApplet(card, persisted)
        applet.power_on()
        return applet

    return _make
