"""Who is calling the gateway, and CSRF.

Browsers log in with a password; the gateway keeps the server's session token in an HttpOnly, SameSite=Strict cookie
(Secure over TLS) and never stores it itself: the gateway is stateless, any replica can serve any browser. Scripts
send a personal token as `Authorization: Bearer smu_...`. Either way the token is forwarded to the server, which
checks it and the role.

CSRF: a request authenticated by the cookie that is not GET/HEAD/OPTIONS must carry `X-CSRF-Token` equal to a
value derived from the session token (readable by the page from the `skymesh_csrf` cookie or `/api/v1/me`). A
cross-site page can neither read the cookie nor compute the value. Bearer requests are not cookie-borne and need no
CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response

from skymesh.core.errors import PermissionDenied, Unauthenticated

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "Caller",
    "caller",
    "clear_session",
    "csrf_for",
    "set_session",
]

SESSION_COOKIE = "skymesh_session"
CSRF_COOKIE = "skymesh_csrf"
CSRF_HEADER = "X-CSRF-Token"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Caller:
    token: str
    via_cookie: bool


def csrf_for(session_token: str) -> str:
    return hashlib.sha256(b"skymesh-csrf\0" + session_token.encode()).hexdigest()[:40]


def _secure(request: Request, configured: bool | None) -> bool:
    return configured if configured is not None else request.url.scheme == "https"


def set_session(response: Response, request: Request, token: str, max_age_s: int, secure: bool | None) -> str:
    csrf = csrf_for(token)
    flags: dict[str, Any] = {
        "max_age": max_age_s,
        "samesite": "strict",
        "secure": _secure(request, secure),
        "path": "/",
    }
    response.set_cookie(SESSION_COOKIE, token, httponly=True, **flags)
    response.set_cookie(CSRF_COOKIE, csrf, httponly=False, **flags)
    return csrf


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


def caller(request: Request) -> Caller:
    """FastAPI dependency: the caller's token, or 401; 403 for a cookie request without the right CSRF token."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return Caller(value.strip(), via_cookie=False)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise Unauthenticated("log in first, or send 'Authorization: Bearer <personal token>'")
    if request.method not in _SAFE:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not hmac.compare_digest(sent, csrf_for(cookie)):
            raise PermissionDenied(f"missing or wrong {CSRF_HEADER} header", field=CSRF_HEADER, reason="CSRF")
    return Caller(cookie, via_cookie=True)
