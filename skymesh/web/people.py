"""Login, logout, who am I, personal API tokens, and the audit log (admins) over HTTP. The password goes to the
server's AuthService.Login; the session token it returns lives only in the browser's HttpOnly cookie."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from skymesh.api.control.v1 import auth_pb2
from skymesh.web.api import Client, Who
from skymesh.web.config import WebConfig
from skymesh.web.models import LoginIn, TokenIn
from skymesh.web.session import clear_session, csrf_for, set_session
from skymesh.web.views import audit_json, iso

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["people"])


@router.post("/login", summary="Password login: sets the session cookie and returns the CSRF token")
async def login(body: LoginIn, request: Request, response: Response, c: Client) -> dict[str, Any]:
    config: WebConfig = request.app.state.config
    req = auth_pb2.LoginRequest(username=body.username, password=body.password, ttl_s=config.session_ttl_s)
    resp = await c.call(c.auth.Login, req, None)
    csrf = set_session(response, request, resp.token, int(config.session_ttl_s), config.secure_cookies)
    return {"user_id": resp.user_id, "role": resp.role, "expires_at": iso(resp.expires_at), "csrf_token": csrf}


@router.post("/logout", summary="End this session (the server revokes its token)")
async def logout(who: Who, response: Response, c: Client) -> dict[str, Any]:
    await c.call(c.auth.Logout, auth_pb2.LogoutRequest(), who.token)
    if who.via_cookie:
        clear_session(response)
    return {"logged_out": True}


@router.get("/me", summary="Who is calling (and the CSRF token for this session)")
async def me(who: Who, c: Client) -> dict[str, Any]:
    resp = await c.call(c.auth.WhoAmI, auth_pb2.WhoAmIRequest(), who.token)
    out: dict[str, Any] = {"user_id": resp.user_id, "role": resp.role}
    if who.via_cookie:
        out["csrf_token"] = csrf_for(who.token)
    return out


@router.post("/tokens", status_code=201, summary="A personal API token for scripts (shown once)")
async def create_token(body: TokenIn, who: Who, c: Client) -> dict[str, Any]:
    resp = await c.call(c.auth.CreatePersonalToken, auth_pb2.CreatePersonalTokenRequest(label=body.label), who.token)
    return {"token_id": resp.token_id, "token": resp.token}


@router.get("/audit", summary="The audit log, newest first (admin)")
async def audit(
    who: Who,
    c: Client,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
    page_token: Annotated[str, Query(max_length=20, pattern=r"^[0-9]*$")] = "",
    actor: Annotated[str, Query(max_length=100)] = "",
) -> dict[str, Any]:
    req = auth_pb2.ListAuditEntriesRequest(page_size=page_size, before_id=int(page_token or 0), actor=actor)
    resp = await c.call(c.audit.ListAuditEntries, req, who.token)
    return {
        "entries": [audit_json(e) for e in resp.entries],
        "next_page_token": str(resp.next_before_id) if resp.next_before_id else "",
    }
