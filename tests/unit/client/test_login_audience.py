"""The client signs a login only for the service it is talking to: the challenge's audience must be the client's
own service URL (compared in canonical form), else the login stops before the PIN reaches the card."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.client.login import card_login, select_role
from app.client.models import Challenge, Login, Role
from app.error_text import user_text
from app.errors import AudienceMismatch
from app.protocol import LOGIN_CONTEXT, canonical_audience, login_message

ROLE = Role("r1", "A81001", "Surgery", "S8000:G8000:R8000", "Clinical", ("B0264",))


class Card:
    def __init__(self) -> None:
        self.pins: list[str] = []
        self.signed: list[bytes] = []

    def certificate_der(self) -> bytes:
        return b"cert"

    def verify_pin(self, pin: str) -> None:
        self.pins.append(pin)

    def sign(self, message: bytes) -> bytes:
        self.signed.append(message)
        return b"signature"

    def forget_pin(self) -> None:
        pass


class Api:
    def __init__(self, base_url: str, audience: str) -> None:
        self.base_url, self.audience = base_url, audience
        self.bound: list[tuple[str, str]] = []

    def challenge(self, certificate_der: bytes) -> Challenge:
        return Challenge("n" * 43, datetime.now(UTC), self.audience)

    def complete(self, nonce: str, signature: bytes, certificate_der: bytes, urid: str | None = None) -> Login:
        return Login("token", datetime.now(UTC), "u1", "Dr One", (ROLE,))

    def select_role(self, token: str, urid: str) -> Role:
        self.bound.append((token, urid))
        return ROLE


@pytest.mark.parametrize(("client_url", "audience"), [
    ("https://spine.example.nhs.uk", "https://spine.example.nhs.uk"),
    ("https://spine.example.nhs.uk/", "HTTPS://Spine.Example.NHS.uk:443"),
    ("http://127.0.0.1:8443", "http://127.0.0.1:8443/"),
])
def test_the_card_signs_for_the_service_the_client_talks_to(client_url, audience):
    card = Card()
    card_login(card, Api(client_url, audience), "24681357")
    assert card.signed == [login_message("n" * 43, client_url)]
    assert card.signed[0].startswith(LOGIN_CONTEXT) and canonical_audience(client_url).encode() in card.signed[0]


@pytest.mark.parametrize("audience", ["https://rogue.example.com", "http://spine.example.nhs.uk",
                                      "https://spine.example.nhs.uk:8443", "", "not a url"])
def test_a_challenge_for_another_service_is_refused_before_the_pin_is_used(audience):
    card = Card()
    with pytest.raises(AudienceMismatch) as err:
        card_login(card, Api("https://spine.example.nhs.uk", audience), "24681357")
    assert card.pins == [] and card.signed == []
    assert "impersonating" in user_text(err.value)


def test_selecting_the_role_binds_it_at_the_service():
    api = Api("https://spine.example.nhs.uk", "https://spine.example.nhs.uk")
    login = card_login(Card(), api, "24681357")
    bound = select_role(api, login, ROLE)
    assert api.bound == [("token", "r1")] and bound.role == ROLE
