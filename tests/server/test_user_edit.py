"""UserService.UpdateUser and DeleteUser over real gRPC with authentication on, on SQLite and PostgreSQL, and
`skymesh users update|delete` on top: admins only (an operator cannot promote itself), never the last admin, never
your own account, a deleted user's tokens stop working at once, every change audit logged, bad input names the
field and changes nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest

from skymesh.api.control.v1 import users_pb2, users_pb2_grpc
from skymesh.cli.main import main
from skymesh.core.errors import FailedPrecondition
from skymesh.server.db.records import Role
from tests.server.conftest import StartServer


def _bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


async def _code(call: Any, request: Any, metadata: list[tuple[str, str]]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(request, metadata=metadata)
    return err.value.code(), err.value.details() or ""


async def test_update_and_delete_users(start_server: StartServer) -> None:
    server = await start_server(control_auth=True)
    repo = server.repo
    admin = _bearer(server.config.admin_token_path.read_text().strip())
    await repo.create_user("bob", Role.OPERATOR)
    await repo.create_user("olga", Role.OBSERVER)
    bob = _bearer(await repo.issue_user_token("bob"))
    olga_token = await repo.issue_user_token("olga")
    await repo.revoke_user_token((await repo.list_users(user_id="olga"))[0].tokens[0].token_id)
    olga = _bearer(await repo.issue_user_token("olga"))
    P = grpc.StatusCode

    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        promote = users_pb2.UpdateUserRequest(user_id="bob", role=users_pb2.ROLE_ADMIN)
        assert (await _code(stub.UpdateUser, promote, bob))[0] == P.PERMISSION_DENIED  # not even for itself
        assert (await _code(stub.DeleteUser, users_pb2.DeleteUserRequest(user_id="olga"), bob))[
            0
        ] == P.PERMISSION_DENIED
        assert (await repo.list_users(user_id="bob"))[0].role == Role.OPERATOR

        reply = await stub.UpdateUser(promote, metadata=admin)
        assert reply.user.user_id == "bob" and reply.user.role == users_pb2.ROLE_ADMIN
        await stub.ListUsers(users_pb2.ListUsersRequest(), metadata=bob)  # an admin now, from the next call on
        back = await stub.UpdateUser(
            users_pb2.UpdateUserRequest(user_id="bob", role=users_pb2.ROLE_OPERATOR), metadata=bob
        )
        assert back.user.role == users_pb2.ROLE_OPERATOR  # an admin may step down while another admin remains

        for request, code, words in (
            (
                users_pb2.UpdateUserRequest(user_id="admin", role=users_pb2.ROLE_OBSERVER),
                P.FAILED_PRECONDITION,
                "last admin",
            ),
            (users_pb2.UpdateUserRequest(user_id="bob"), P.INVALID_ARGUMENT, "role"),
            (users_pb2.UpdateUserRequest(user_id="nope", role=users_pb2.ROLE_ADMIN), P.NOT_FOUND, "user_id"),
            (users_pb2.UpdateUserRequest(user_id="Bob!", role=users_pb2.ROLE_ADMIN), P.INVALID_ARGUMENT, "user_id"),
            (users_pb2.DeleteUserRequest(user_id="admin"), P.FAILED_PRECONDITION, "your own account"),
            (users_pb2.DeleteUserRequest(user_id="nope"), P.NOT_FOUND, "user_id"),
            (users_pb2.DeleteUserRequest(user_id=""), P.INVALID_ARGUMENT, "user_id"),
        ):
            call = stub.UpdateUser if isinstance(request, users_pb2.UpdateUserRequest) else stub.DeleteUser
            got, details = await _code(call, request, admin)
            assert got == code and words in details, (request, got, details)
        roles = {u.user_id: u.role for u in await repo.list_users()}
        assert roles == {"admin": Role.ADMIN, "bob": Role.OPERATOR, "olga": Role.OBSERVER}

        await stub.ListUsers(users_pb2.ListUsersRequest(), metadata=admin)
        gone = await stub.DeleteUser(users_pb2.DeleteUserRequest(user_id="olga"), metadata=admin)
        assert gone.revoked_token_count == 1  # the one still valid; the revoked one is gone too
        from skymesh.api.control.v1 import stations_pb2, stations_pb2_grpc

        stations = stations_pb2_grpc.StationServiceStub(channel)
        for token in (olga, _bearer(olga_token)):
            assert (await _code(stations.ListStations, stations_pb2.ListStationsRequest(), token))[
                0
            ] == P.UNAUTHENTICATED
        listed = await stub.ListUsers(users_pb2.ListUsersRequest(), metadata=admin)
        assert [u.user_id for u in listed.users] == ["admin", "bob"]

    # The last admin cannot be removed by anyone (here straight through the repository, as another actor).
    with pytest.raises(FailedPrecondition) as refused:
        await repo.delete_user("admin", actor="user:bob")
    assert refused.value.reason == "LAST_ADMIN"
    audit = [(e.actor, e.action, e.subject) for e in await repo.list_audit(limit=50)]
    assert ("user:admin", "update_user", "bob") in audit and ("user:bob", "update_user", "bob") in audit
    assert ("user:admin", "delete_user", "olga") in audit
    assert sum(1 for _, action, _ in audit if action in ("update_user", "delete_user")) == 3


async def test_users_update_and_delete_commands(start_server: StartServer, capsys: pytest.CaptureFixture[str]) -> None:
    server = await start_server(control_auth=True)
    await server.repo.create_user("cy", Role.OBSERVER)
    await server.repo.issue_user_token("cy")
    connection = ["--server", server.address, "--token-file", str(server.config.admin_token_path)]

    async def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(main, ["users", *connection, *argv])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = await run("update", "cy", "--role", "operator")
    assert code == 0 and out.strip() == "cy is now operator"
    code, out, _ = await run("--json", "update", "cy", "--role", "admin")
    assert code == 0 and json.loads(out)["role"] == "ROLE_ADMIN"
    for argv, words in (
        (("delete", "cy"), "--yes"),
        (("delete", "admin", "--yes"), "your own account"),
        (("update", "nope", "--role", "admin"), "NOT_FOUND"),
    ):
        code, _, err = await run(*argv)
        assert code == 2 and words in err and "Traceback" not in err, (argv, err)
    code, out, _ = await run("delete", "cy", "--yes")
    assert code == 0 and out.strip() == "deleted user cy: 1 token(s) or session(s) ended"
    assert [u.user_id for u in await server.repo.list_users()] == ["admin"]
