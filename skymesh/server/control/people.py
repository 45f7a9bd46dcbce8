"""AuthService (password login for session tokens, logout, who am I, personal tokens, setting passwords) and
AuditService (the audit log, newest first, for admins).

Login is the one control method the interceptor lets through without a token (`skymesh.server.auth`); the others
authenticate the bearer token themselves as well, so they answer for the real caller even on a server whose control
API runs without authentication (loopback development).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import grpc
from google.protobuf import struct_pb2

from skymesh.api.control.v1 import auth_pb2, auth_pb2_grpc
from skymesh.api.convert import timestamp_from_datetime
from skymesh.api.errors import grpc_errors
from skymesh.core.errors import InvalidArgument, PermissionDenied
from skymesh.server.auth import bearer_token
from skymesh.server.control.paging import page_request
from skymesh.server.db import Repository
from skymesh.server.db.records import Role, UserRecord

__all__ = ["AuditServicer", "AuthServicer"]

Ctx = grpc.aio.ServicerContext[Any, Any]
DEFAULT_SESSION_TTL_S = 8 * 3600.0
MAX_SESSION_TTL_S = 7 * 24 * 3600.0
_MAX_AUDIT_PAGE = 500


async def _caller(repo: Repository, context: Ctx) -> tuple[UserRecord, str]:
    token = bearer_token(context)
    return await repo.authenticate_user(token), token


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, repo: Repository) -> None:
        self._repo = repo

    @grpc_errors
    async def Login(self, request: auth_pb2.LoginRequest, context: Ctx) -> auth_pb2.LoginResponse:
        if not request.username:
            raise InvalidArgument("must not be empty", field="username")
        if not request.password:
            raise InvalidArgument("must not be empty", field="password")
        if request.ttl_s < 0 or request.ttl_s != request.ttl_s:
            raise InvalidArgument("must be a non-negative number of seconds", field="ttl_s")
        ttl = min(request.ttl_s or DEFAULT_SESSION_TTL_S, MAX_SESSION_TTL_S)
        session = await self._repo.login(request.username, request.password, ttl)
        out = auth_pb2.LoginResponse(token=session.token, user_id=session.user_id, role=session.role.name.lower())
        if session.expires_at is not None:
            out.expires_at.CopyFrom(timestamp_from_datetime(session.expires_at))
        return out

    @grpc_errors
    async def Logout(self, request: auth_pb2.LogoutRequest, context: Ctx) -> auth_pb2.LogoutResponse:
        user, token = await _caller(self._repo, context)
        await self._repo.revoke_token(token, actor=f"user:{user.user_id}")
        return auth_pb2.LogoutResponse()

    @grpc_errors
    async def WhoAmI(self, request: auth_pb2.WhoAmIRequest, context: Ctx) -> auth_pb2.WhoAmIResponse:
        user, _token = await _caller(self._repo, context)
        return auth_pb2.WhoAmIResponse(user_id=user.user_id, role=user.role.name.lower())

    @grpc_errors
    async def CreatePersonalToken(
        self, request: auth_pb2.CreatePersonalTokenRequest, context: Ctx
    ) -> auth_pb2.CreatePersonalTokenResponse:
        if len(request.label) > 100:
            raise InvalidArgument("must be at most 100 characters", field="label")
        user, _token = await _caller(self._repo, context)
        issued = await self._repo.issue_personal_token(user.user_id, request.label)
        return auth_pb2.CreatePersonalTokenResponse(token_id=issued.token_id, token=issued.token)

    @grpc_errors
    async def SetPassword(self, request: auth_pb2.SetPasswordRequest, context: Ctx) -> auth_pb2.SetPasswordResponse:
        user, _token = await _caller(self._repo, context)
        if user.role < Role.ADMIN:
            raise PermissionDenied("SetPassword needs role admin")
        if not request.user_id:
            raise InvalidArgument("must not be empty", field="user_id")
        await self._repo.set_password(request.user_id, request.password, actor=f"user:{user.user_id}")
        return auth_pb2.SetPasswordResponse()


class AuditServicer(auth_pb2_grpc.AuditServiceServicer):
    def __init__(self, repo: Repository) -> None:
        self._repo = repo

    @grpc_errors
    async def ListAuditEntries(
        self, request: auth_pb2.ListAuditEntriesRequest, context: Ctx
    ) -> auth_pb2.ListAuditEntriesResponse:
        user, _token = await _caller(self._repo, context)
        if user.role < Role.ADMIN:
            raise PermissionDenied("ListAuditEntries needs role admin")
        if request.before_id < 0:
            raise InvalidArgument("must not be negative", field="before_id")
        page = page_request(request.page_size, request.page_token, f"audit|{request.actor}", what="entries", default=50)
        page = dataclasses.replace(page, limit=min(page.limit, _MAX_AUDIT_PAGE))
        before_id = request.before_id
        if page.after:
            if not page.after[0].isdigit():
                raise InvalidArgument("is not a page token this server issued", field="page_token")
            before_id = int(page.after[0])
        rows, token = page.finish(
            await self._repo.list_audit(limit=page.fetch, before_id=before_id, actor=request.actor),
            lambda r: (str(r.id),),
        )
        entries = []
        for r in rows:
            detail = struct_pb2.Struct()
            detail.update({k: v if isinstance(v, (str, int, float, bool)) else str(v) for k, v in r.detail.items()})
            entries.append(
                auth_pb2.AuditEntry(
                    id=r.id,
                    at=timestamp_from_datetime(r.at),
                    actor=r.actor,
                    action=r.action,
                    subject=r.subject,
                    detail=detail,
                )
            )
        next_before = rows[-1].id if token else 0
        return auth_pb2.ListAuditEntriesResponse(entries=entries, next_before_id=next_before, next_page_token=token)
