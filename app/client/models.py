"""Typed results of the Spine service calls the client makes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Role:
    urid: str  # the role profile id, sent as NHSD-Session-URID
    org_ods: str
    org_name: str
    role_code: str
    role_name: str
    activities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Login:
    token: str
    expires_at: datetime
    user_id: str
    user_name: str
    roles: tuple[Role, ...]
    role: Role | None = None  # the role the session is bound to (named at login); None: select one, once


@dataclass(frozen=True, slots=True)
class Challenge:
    nonce: str
    expires_at: datetime
    audience: str  # the service the card's signature will name


@dataclass(frozen=True, slots=True)
class Auth:
    """What every clinical call carries: the session's bearer token and the selected role (URID)."""

    token: str
    urid: str

    def __repr__(self) -> str:  # never print the token (logs, tracebacks)
        return f"Auth(token=<hidden>, urid={self.urid!r})"
