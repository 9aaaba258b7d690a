"""What the use cases (login, PDS) and the UI need of the service client: a protocol with no HTTP library in it.

:class:`app.client.client.SpineClient` (httpx) implements it; the composition root constructs that and injects it,
so ``app.ui`` never imports httpx, not even indirectly.
"""

from __future__ import annotations

from typing import Any, Protocol

from app.client.models import Auth, Challenge, Login, Role


class SpineApi(Protocol):
    base_url: str

    def challenge(self, certificate_der: bytes) -> Challenge: ...

    def complete(self, nonce: str, signature: bytes, certificate_der: bytes, urid: str | None = None) -> Login: ...

    def select_role(self, token: str, urid: str) -> Role: ...

    def logout(self, token: str) -> None: ...

    def fhir(self, method: str, path: str, auth: Auth, *, params: list[tuple[str, str]] | None = None,
             body: Any = None, headers: dict[str, str] | None = None) -> tuple[Any, str | None]: ...
