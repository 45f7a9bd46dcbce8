"""The control API's verified-token cache: a token revoked, logged out, demoted or deleted through this server is
refused (or re-checked) on its very next call, a wrong secret is never accepted because a good one is cached, and
a revocation made elsewhere (another replica, the CLI on the database) takes effect within the cache's TTL."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from skymesh.api.control.v1 import auth_pb2, auth_pb2_grpc, users_pb2, users_pb2_grpc
from skymesh.core.errors import Unauthenticated
from skymesh.server.auth import VerifiedTokenCache
from skymesh.server.db.records import Role
from tests.server.conftest import StartServer


def _bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


async def _code(call: Any, request: Any, token: str) -> grpc.StatusCode | None:
    try:
        await call(request, metadata=_bearer(token))
    except grpc.aio.AioRpcError as err:
        return err.code()
    return None


async def test_revoked_logged_out_and_demoted_take_effect_at_once(start_server: StartServer) -> None:
    server = await start_server(control_auth=True)
    repo = server.repo
    admin = server.config.admin_token_path.read_text().strip()
    channel = grpc.aio.insecure_channel(server.address)
    try:
        users = users_pb2_grpc.UserServiceStub(channel)
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        await repo.create_user("bob", Role.ADMIN)
        await repo.create_user("olga", Role.OPERATOR)
        bob, olga = await repo.issue_user_token("bob"), await repo.issue_user_token("olga")
        listing = users_pb2.ListUsersRequest()
        assert await _code(users.ListUsers, listing, bob) is None  # now cached as an admin
        assert await _code(auth.WhoAmI, auth_pb2.WhoAmIRequest(), olga) is None  # cached

        bob_token_id = bob.split("_")[1]
        await users.RevokeUserToken(users_pb2.RevokeUserTokenRequest(token_id=bob_token_id), metadata=_bearer(admin))
        assert await _code(users.ListUsers, listing, bob) == grpc.StatusCode.UNAUTHENTICATED

        bob2 = await repo.issue_user_token("bob")
        assert await _code(users.ListUsers, listing, bob2) is None  # cached as an admin
        demote = users_pb2.UpdateUserRequest(user_id="bob", role=users_pb2.ROLE_OBSERVER)
        await users.UpdateUser(demote, metadata=_bearer(admin))
        assert await _code(users.ListUsers, listing, bob2) == grpc.StatusCode.PERMISSION_DENIED

        await users.DeleteUser(users_pb2.DeleteUserRequest(user_id="bob"), metadata=_bearer(admin))
        assert await _code(auth.WhoAmI, auth_pb2.WhoAmIRequest(), bob2) == grpc.StatusCode.UNAUTHENTICATED

        await auth.Logout(auth_pb2.LogoutRequest(), metadata=_bearer(olga))
        assert await _code(auth.WhoAmI, auth_pb2.WhoAmIRequest(), olga) == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await channel.close()


async def test_a_wrong_secret_is_never_accepted_and_other_replicas_within_the_ttl(start_server: StartServer) -> None:
    server = await start_server()
    repo = server.repo
    await repo.create_user("eve", Role.OPERATOR)
    token = await repo.issue_user_token("eve")
    now = [100.0]
    cache = VerifiedTokenCache(repo, ttl_s=5.0, max_size=2, clock=lambda: now[0])
    assert (await cache.authenticate(token)).user_id == "eve"
    kind, token_id, secret = token.split("_", 2)
    prefix = f"{kind}_{token_id}"
    for wrong in (f"{prefix}_{secret[:-1]}", f"{prefix}_{secret}x", f"{prefix}_{'A' * len(secret)}", token + " "):
        with pytest.raises(Unauthenticated):
            await cache.authenticate(wrong)
    assert len(cache) == 1  # failures are never cached

    await repo.revoke_user_token(token_id)  # as another replica would: this cache is not told
    now[0] += 4.9
    assert (await cache.authenticate(token)).user_id == "eve"  # the documented bound: up to the TTL late
    now[0] += 0.2
    with pytest.raises(Unauthenticated):
        await cache.authenticate(token)

    tokens = [await repo.issue_user_token("eve") for _ in range(3)]
    for t in tokens:
        await cache.authenticate(t)
    assert len(cache) == 2  # bounded
