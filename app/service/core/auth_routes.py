"""POST /auth/challenge, POST /auth/session, POST /auth/session/role, DELETE /auth/session — card login (see
app.service.core.auth)."""

from __future__ import annotations

import math

from app.protocol import AUTH_CHALLENGE_PATH, AUTH_ROLE_PATH, AUTH_SESSION_PATH
from app.service.core.auth import AuthError
from app.service.core.context import ServiceContext, access_denied
from app.service.core.http import Request, Response
from app.service.core.outcome import FhirError
from app.service.core.routes import Route
from app.service.store import RoleProfile


def _body(request: Request) -> dict[str, object]:
    try:
        doc = request.json()
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise FhirError("INVALID_VALUE", "the request body must be a JSON object") from exc
    if not isinstance(doc, dict):
        raise FhirError("INVALID_VALUE", "the request body must be a JSON object")
    return doc


def _throttle(ctx: ServiceContext, request: Request) -> None:
    """429 with Retry-After when this client address has used up its login requests (``HttpLimits.auth_*``)."""
    if ctx.login_limiter is None:
        return
    wait = ctx.login_limiter.take((request.path, request.client))
    if wait > 0:
        raise FhirError("TOO_MANY_REQUESTS", "Too many login requests from this address; retry after the time in "
                        "the Retry-After header.", retry_after=max(1, math.ceil(wait)))


def _role(r: RoleProfile) -> dict[str, object]:
    return {"urid": r.id, "org_ods": r.org_ods, "org_name": r.org_name, "role_code": r.role_code,
            "role_name": r.role_name, "activities": list(r.activity_codes)}


def challenge(ctx: ServiceContext, request: Request) -> Response:
    _throttle(ctx, request)
    try:
        issued = ctx.auth.challenge(_body(request).get("certificate"))  # type: ignore[arg-type]  # checked in auth
    except AuthError as exc:
        raise access_denied(exc) from exc
    return Response.json(200, {"nonce": issued.nonce, "expires_at": issued.expires_at.isoformat(),
                               "audience": issued.audience}, content_type="application/json",
                         headers=[("cache-control", "no-store")])


def session(ctx: ServiceContext, request: Request) -> Response:
    _throttle(ctx, request)
    body = _body(request)
    nonce, signature, certificate, urid = (body.get(k) for k in ("nonce", "signature", "certificate", "urid"))
    try:
        issued = ctx.auth.complete(nonce, signature, certificate, urid)  # type: ignore[arg-type]  # checked in auth
    except AuthError as exc:
        raise access_denied(exc) from exc
    ctx.audit_login(request, issued)  # committed before the token leaves: no session without its record
    user = issued.user
    return Response.json(201, {
        "token": issued.token, "token_type": "Bearer", "expires_at": issued.expires_at.isoformat(),
        "user": {"id": user.id, "name": user.name},
        "role": _role(issued.role) if issued.role else None,
        "role_profiles": [_role(r) for r in user.role_profiles],
    }, content_type="application/json", headers=[("cache-control", "no-store")])


def select_role(ctx: ServiceContext, request: Request) -> Response:
    """Bind the session to one of its user's role profiles, once (when the login did not name one)."""
    try:
        principal = ctx.auth.select_role(request.header("authorization"), _body(request).get("urid"))
    except AuthError as exc:
        raise access_denied(exc) from exc
    return Response.json(200, {"role": _role(principal.role)}, content_type="application/json",
                         headers=[("cache-control", "no-store")])


def logout(ctx: ServiceContext, request: Request) -> Response:
    if not ctx.auth.logout(request.header("authorization")):
        raise FhirError("ACCESS_DENIED", "no live session for this token", status=401)
    return Response(204)


ROUTES: tuple[Route, ...] = (
    ("POST", AUTH_CHALLENGE_PATH, challenge),
    ("POST", AUTH_SESSION_PATH, session),
    ("POST", AUTH_ROLE_PATH, select_role),
    ("DELETE", AUTH_SESSION_PATH, logout),
)
