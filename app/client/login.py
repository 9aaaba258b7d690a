"""The login use case: card certificate → challenge → PIN → card signature → session → role.

``app.client`` never imports ``app.card``: the card comes in as a :class:`LoginCard`.
"""

from __future__ import annotations

from typing import Protocol

from app.client.api import SpineApi
from app.client.models import Login, Role
from app.errors import NoRoleAvailable
from app.protocol import login_message


class LoginCard(Protocol):
    def certificate_der(self) -> bytes: ...

    def verify_pin(self, pin: str) -> None: ...

    def sign(self, message: bytes) -> bytes: ...

    def forget_pin(self) -> None: ...


def card_login(card: LoginCard, client: SpineApi, pin: str) -> Login:
    """The service checks the certificate before the PIN is asked of the card; the card forgets the PIN after."""
    cert = card.certificate_der()
    challenge = client.challenge(cert)
    card.verify_pin(pin)
    try:
        signature = card.sign(login_message(challenge.nonce))
    finally:
        card.forget_pin()
    return client.complete(challenge.nonce, signature, cert)


def choose_role(login: Login, wanted: str | None = None) -> Role:
    """The role named (by URID, or by role code), or the only one; otherwise a clear refusal."""
    if not login.roles:
        raise NoRoleAvailable(f"{login.user_name} has no role profiles on this service")
    if wanted:
        for role in login.roles:
            if wanted in (role.urid, role.role_code):
                return role
        raise NoRoleAvailable(f"{login.user_name} has no role {wanted!r}; available: "
                              + ", ".join(f"{r.urid} ({r.role_name} at {r.org_name})" for r in login.roles))
    if len(login.roles) == 1:
        return login.roles[0]
    raise NoRoleAvailable("several roles are available, choose one with --role: "
                          + ", ".join(f"{r.urid} ({r.role_name} at {r.org_name})" for r in login.roles))
