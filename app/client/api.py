"""What the use cases (login, PDS) and the UI need of the service client: a protocol with no HTTP library in it.

:class:`app.client.client.SpineClient` (httpx) implements it; the composition root constructs that and injects it,
so ``app.ui`` never imports httpx, not even indirectly.
"""

from __future__ import annotations

from typing import Any, Protocol

from app.client.models import Auth, Challenge, Login, RenewalWindow, Role


class SpineApi(Protocol):
    base_url: str

    def challenge(self, certificate_der: bytes) -> Challenge: ...

    def complete(self, nonce: str, signature: bytes, certificate_der: bytes, urid: str | None = None) -> Login: ...

    def select_role(self, token: str, urid: str) -> Role: ...

    def logout(self, token: str) -> None: ...

    def fhir(self, method: str, path: str, auth: Auth, *, params: list[tuple[str, str]] | None = None,
             body: Any = None, headers: dict[str, str] | None = None) -> tuple[Any, str | None]: ...


class SelfServiceApi(SpineApi, Protocol):
    """The service calls card self-service needs (``app.client.selfservice``) besides the login ones;
    :class:`app.client.client.SpineClient` has them."""

    def renewal_check(self, token: str, certificate_der: bytes) -> RenewalWindow:
        """Whether the session's certificate (``certificate_der``, the one the session was opened with) may be
        renewed now; ``ServiceRejected`` (403/409) says why not."""
        ...

    def renew_certificate(self, token: str, certificate_der: bytes, csr_der: bytes,
                          proof: tuple[str, bytes] | None = None) -> bytes:
        """Send the session's certificate, a PKCS#10 request signed by the card's new key and ``proof``: the
        renewal nonce and the card's CURRENT key's signature over ``renewal_message`` (made before the key was
        replaced); the new certificate (DER)."""
        ...

    def confirm_renewal(self, token: str, certificate_der: bytes) -> None:
        """The card stores the new certificate ``certificate_der``: the service revokes the session's old one."""
        ...

    def unblock_code(self, token: str, urid: str, target_certificate_der: bytes) -> str:
        """The unblock code (training: the PUK) of the card holding ``target_certificate_der``, released to a Local
        Smartcard Unlocker role only (403 otherwise). Never log or keep it."""
        ...
