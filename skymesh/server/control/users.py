"""UserService: people and tools with a role, and their API tokens (admin only, enforced by `skymesh.server.auth`);
a user's role changes (UpdateUser) and users are removed with their tokens (DeleteUser), never the last admin.

Token secrets are returned once, when issued; only their SHA-256 is stored, and listings show token ids and times.
The `skymesh keys` command does the same against the database directly, for bootstrap and recovery.
"""

from __future__ import annotations

from typing import Any

import grpc

from skymesh.api.control.v1 import users_pb2, users_pb2_grpc
from skymesh.api.convert import timestamp_from_datetime
from skymesh.api.errors import grpc_errors
from skymesh.core.errors import InvalidArgument
from skymesh.core.ids import check_id
from skymesh.server.auth import current_actor
from skymesh.server.control.paging import page_request
from skymesh.server.db import Repository
from skymesh.server.db.records import Role, UserListing
from skymesh.server.db.registry import USER_TOKEN_PREFIX, split_credential

__all__ = ["UserServicer"]

Ctx = grpc.aio.ServicerContext[Any, Any]


def _user_msg(user: UserListing) -> users_pb2.User:
    msg = users_pb2.User(
        user_id=user.user_id,
        role=users_pb2.Role.ValueType(int(user.role)),
        create_time=timestamp_from_datetime(user.created_at),
    )
    for t in user.tokens:
        token = msg.tokens.add(token_id=t.token_id, create_time=timestamp_from_datetime(t.created_at))
        if t.revoked_at is not None:
            token.revoke_time.CopyFrom(timestamp_from_datetime(t.revoked_at))
    return msg


class UserServicer(users_pb2_grpc.UserServiceServicer):
    def __init__(self, repo: Repository) -> None:
        self._repo = repo

    async def _issue(self, user_id: str) -> tuple[str, str]:
        token = await self._repo.issue_user_token(user_id, actor=current_actor())
        token_id, _secret = split_credential(token, USER_TOKEN_PREFIX)
        return token_id, token

    async def _listing(self, user_id: str) -> UserListing:
        return next(iter(await self._repo.list_users(user_id=user_id)))

    @grpc_errors
    async def CreateUser(self, request: users_pb2.CreateUserRequest, context: Ctx) -> users_pb2.CreateUserResponse:
        check_id(request.user_id, field="user_id")
        try:
            role = Role(request.role)
        except ValueError:
            raise InvalidArgument("must be ROLE_OBSERVER, ROLE_OPERATOR or ROLE_ADMIN", field="role") from None
        await self._repo.create_user(request.user_id, role, actor=current_actor())
        token_id, token = await self._issue(request.user_id)
        return users_pb2.CreateUserResponse(
            user=_user_msg(await self._listing(request.user_id)), token_id=token_id, token=token
        )

    @grpc_errors
    async def ListUsers(self, request: users_pb2.ListUsersRequest, context: Ctx) -> users_pb2.ListUsersResponse:
        page = page_request(request.page_size, request.page_token, "users", what="users")
        users, token = page.finish(
            await self._repo.list_users(after=page.after[0] if page.after else "", limit=page.fetch),
            lambda u: (u.user_id,),
        )
        return users_pb2.ListUsersResponse(users=[_user_msg(u) for u in users], next_page_token=token)

    @grpc_errors
    async def IssueUserToken(
        self, request: users_pb2.IssueUserTokenRequest, context: Ctx
    ) -> users_pb2.IssueUserTokenResponse:
        check_id(request.user_id, field="user_id")
        token_id, token = await self._issue(request.user_id)
        return users_pb2.IssueUserTokenResponse(token_id=token_id, token=token)

    @grpc_errors
    async def RevokeUserToken(
        self, request: users_pb2.RevokeUserTokenRequest, context: Ctx
    ) -> users_pb2.RevokeUserTokenResponse:
        if not request.token_id:
            raise InvalidArgument("must not be empty", field="token_id")
        user_id = await self._repo.revoke_user_token(request.token_id, actor=current_actor())
        return users_pb2.RevokeUserTokenResponse(user_id=user_id)

    @grpc_errors
    async def UpdateUser(self, request: users_pb2.UpdateUserRequest, context: Ctx) -> users_pb2.UpdateUserResponse:
        check_id(request.user_id, field="user_id")
        try:
            role = Role(request.role)
        except ValueError:
            raise InvalidArgument("must be ROLE_OBSERVER, ROLE_OPERATOR or ROLE_ADMIN", field="role") from None
        await self._repo.set_user_role(request.user_id, role, actor=current_actor())
        return users_pb2.UpdateUserResponse(user=_user_msg(await self._listing(request.user_id)))

    @grpc_errors
    async def DeleteUser(self, request: users_pb2.DeleteUserRequest, context: Ctx) -> users_pb2.DeleteUserResponse:
        check_id(request.user_id, field="user_id")
        revoked = await self._repo.delete_user(request.user_id, actor=current_actor())
        return users_pb2.DeleteUserResponse(revoked_token_count=revoked)
