"""HTTP client of the Spine service layer (httpx). Every failure becomes a typed ``ServiceError``."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any

import httpx

from app.client.models import Auth, Challenge, Login, RenewalWindow, Role
from app.errors import ServiceRejected, ServiceUnreachable
from app.protocol import (
    AUTH_CHALLENGE_PATH,
    AUTH_ROLE_PATH,
    AUTH_SESSION_PATH,
    CARD_RENEWAL_CHECK_PATH,
    CARD_RENEWAL_CONFIRM_PATH,
    CARD_RENEWAL_PATH,
    CARD_UNBLOCK_PATH,
    HEADER_REQUEST_ID,
    HEADER_URID,
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _role(r: dict[str, Any]) -> Role:
    return Role(r["urid"], r["org_ods"], r["org_name"], r["role_code"], r["role_name"], tuple(r.get("activities", ())))


class SpineClient:
    """One service base URL; ``http`` is injected (tests and the UI share connection pools and TLS settings)."""

    def __init__(self, base_url: str, http: httpx.Client) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = http

    # --- login ---------------------------------------------------------------------------------------------

    def challenge(self, certificate_der: bytes) -> Challenge:
        doc = self._json("POST", AUTH_CHALLENGE_PATH, {"certificate": _b64(certificate_der)})
        try:
            return Challenge(str(doc["nonce"]), datetime.fromisoformat(str(doc["expires_at"])), str(doc["audience"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ServiceRejected(502, "BAD_RESPONSE", f"the login challenge is malformed ({exc})") from exc

    def complete(self, nonce: str, signature: bytes, certificate_der: bytes, urid: str | None = None) -> Login:
        body = {"nonce": nonce, "signature": _b64(signature), "certificate": _b64(certificate_der)}
        if urid is not None:
            body["urid"] = urid
        doc = self._json("POST", AUTH_SESSION_PATH, body)
        try:
            roles = tuple(map(_role, doc["role_profiles"]))
            return Login(doc["token"], datetime.fromisoformat(doc["expires_at"]), doc["user"]["id"],
                         doc["user"]["name"], roles, _role(doc["role"]) if doc.get("role") else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise ServiceRejected(502, "BAD_RESPONSE", f"the login answer is malformed ({exc})") from exc

    def select_role(self, token: str, urid: str) -> Role:
        """Bind the session to ``urid``, once: the service refuses another role for this token afterwards."""
        doc = self._json("POST", AUTH_ROLE_PATH, {"urid": urid}, headers={"Authorization": f"Bearer {token}"})
        try:
            return _role(doc["role"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ServiceRejected(502, "BAD_RESPONSE", f"the role selection answer is malformed ({exc})") from exc

    def logout(self, token: str) -> None:
        self._request("DELETE", AUTH_SESSION_PATH, headers={"Authorization": f"Bearer {token}"})

    # --- card self-service --------------------------------------------------------------------------------

    def renewal_check(self, token: str, certificate_der: bytes) -> RenewalWindow:
        doc = self._json("POST", CARD_RENEWAL_CHECK_PATH, {"certificate": _b64(certificate_der)},
                         headers={"Authorization": f"Bearer {token}"})
        try:
            return RenewalWindow(int(str(doc["serial"]), 16), datetime.fromisoformat(doc["not_after"]),
                                 datetime.fromisoformat(doc["renew_from"]), str(doc.get("nonce", "")),
                                 str(doc.get("audience", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ServiceRejected(502, "BAD_RESPONSE", f"the renewal answer is malformed ({exc})") from exc

    def renew_certificate(self, token: str, certificate_der: bytes, csr_der: bytes,
                          proof: tuple[str, bytes] | None = None) -> bytes:
        body: dict[str, object] = {"certificate": _b64(certificate_der), "csr": _b64(csr_der)}
        if proof is not None:
            body["proof"] = {"nonce": proof[0], "signature": _b64(proof[1])}
        doc = self._json("POST", CARD_RENEWAL_PATH, body, headers={"Authorization": f"Bearer {token}"})
        try:
            return base64.b64decode(doc["certificate"], validate=True)
        except (KeyError, TypeError, ValueError) as exc:
            raise ServiceRejected(502, "BAD_RESPONSE", f"the renewal answer is malformed ({exc})") from exc

    def confirm_renewal(self, token: str, certificate_der: bytes) -> None:
        self._json("POST", CARD_RENEWAL_CONFIRM_PATH, {"certificate": _b64(certificate_der)},
                   headers={"Authorization": f"Bearer {token}"})

    def unblock_code(self, token: str, urid: str, target_certificate_der: bytes) -> str:
        doc = self._json("POST", CARD_UNBLOCK_PATH, {"certificate": _b64(target_certificate_der)},
                         headers={"Authorization": f"Bearer {token}", HEADER_URID: urid})
        code = doc.get("unblock_code") if isinstance(doc, dict) else None
        if not isinstance(code, str) or not code.isdigit():
            raise ServiceRejected(502, "BAD_RESPONSE", "the unblock answer holds no unblock code")
        return code

    # --- FHIR calls ------------------------------------------------------------------------------------------

    def fhir(self, method: str, path: str, auth: Auth, *, params: list[tuple[str, str]] | None = None,
             body: Any = None, headers: dict[str, str] | None = None) -> tuple[Any, str | None]:
        """One authorised FHIR call: the JSON answer and its ETag. Errors are typed (``ServiceError``)."""
        sent = {"Authorization": f"Bearer {auth.token}", HEADER_URID: auth.urid, **(headers or {})}
        content = None
        if body is not None:
            content = json.dumps(body).encode("utf-8")
            sent.setdefault("Content-Type", "application/json")
        response = self._request(method, path, params=params, content=content, headers=sent)
        if not response.content:  # 201/204 without a body
            return None, response.headers.get("etag")
        try:
            doc = response.json()
        except ValueError as exc:
            raise ServiceRejected(response.status_code, "BAD_RESPONSE", "the service answered with invalid JSON") \
                from exc
        return doc, response.headers.get("etag")

    # --- plumbing ------------------------------------------------------------------------------------------

    def _json(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        response = self._request(method, path, json=body, headers=headers)
        try:
            return response.json()
        except ValueError as exc:
            raise ServiceRejected(response.status_code, "BAD_RESPONSE", "the service answered with invalid JSON") \
                from exc

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {HEADER_REQUEST_ID: str(uuid.uuid4()), **(kwargs.pop("headers", None) or {})}
        url = self.base_url + path
        try:
            response = self._http.request(method, url, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise ServiceUnreachable(self.base_url, "it did not answer in time") from exc
        except httpx.TransportError as exc:
            raise ServiceUnreachable(self.base_url, _transport_detail(exc)) from exc
        if response.status_code >= 400:
            raise _rejection(response)
        return response


def _transport_detail(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "its TLS certificate is not trusted by this computer"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or no route"
    return text


def _rejection(response: httpx.Response) -> ServiceRejected:
    """An OperationOutcome (FHIR) or an auth error body, turned into one typed error."""
    code, message = "HTTP_ERROR", response.reason_phrase or "error"
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict) and doc.get("resourceType") == "OperationOutcome":
        issue = (doc.get("issue") or [{}])[0]
        coding = ((issue.get("details") or {}).get("coding") or [{}])[0]
        code = coding.get("code") or issue.get("code") or code
        # the most specific text first: diagnostics, then details.text (SCR's "what happened, what to do"), then
        # the code's generic display
        message = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or coding.get("display") \
            or message
    return ServiceRejected(response.status_code, str(code), str(message))
