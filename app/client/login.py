"""The login use case: card certificate → challenge → PIN → card signature → session → role (bound once).

``app.client`` never imports ``app.card``: the card comes in as a :class:`LoginCard`.
"""

from __future__ import annotations

from typing import Protocol

from app.client.api import SpineApi
from app.client.models import Login, Role
from app.errors import AudienceMismatch, NoRoleAvailable
from app.protocol import canonical_audience, login_message


class LoginCard(Protocol):
    def certificate_der(self) -> bytes: ...

    def verify_pin(self, pin: str) -> None: ...

    def sign(self, message: bytes) -> bytes: ...

    def forget_pin(self) -> None: ...


def card_login(card: LoginCard, client: SpineApi, pin: str) -> Login:
    """The card signs a login only for the service the client is talking to: the audience in the challenge must be
    the client's own service URL, else the PIN is not used (``AudienceMismatch``). The card forgets the PIN after
    signing. The service says whether this card may log in only after the signature (the challenge tells nothing).
    """
    cert = card.certificate_der()
    challenge = client.challenge(cert)
    expected = canonical_audience(client.base_url)
    try:
        named = canonical_audience(challenge.audience)
    except ValueError:
        named = None
    if named != expected:
        raise AudienceMismatch(client.base_url, challenge.audience)
    card.verify_pin(pin)
    try:
        signature = card.sign(login_message(challenge.nonce, expected))
    finally:
        card.forget_pin()
    return client.complete(challenge.nonce, signature, cert)


def select_role(client: SpineApi, login: Login, role: Role) -> Login:
    """Bind the session to ``role`` (once; the service refuses any other role for this token afterwards)."""
    bound = client.select_role(login.token, role.urid)
    return Login(login.token, login.expires_at, login.user_id, login.user_name, login.roles, bound)


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
