"""`skymesh users`: people and tools of a running server, through its UserService (an admin token is needed).

    skymesh users list                          users, roles, and their tokens' ids and times (never secrets)
    skymesh users create USER_ID --role ROLE    a user (observer, operator, admin) and its first token, shown once
    skymesh users token USER_ID                 another token for a user, shown once
    skymesh users revoke TOKEN_ID               revoke a token (the next call with it is refused)
    skymesh users update USER_ID --role ROLE    a user's new role (never leaves the server without an admin)
    skymesh users delete USER_ID --yes          remove a user with all its tokens and sessions (history stays in
                                                the audit log; not your own account, not the last admin)

--json (before the action: `skymesh users --json list`) prints the API's messages instead.

Connection and credential options are those of `skymesh.cli.client` (--server, --token-file, --tls, --ca-cert).
The usual first step after a fresh start: create named users with the first admin's token (var/admin.token), then
revoke that token. `skymesh keys` does the same straight on the database, for recovery.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from skymesh.cli.client import add_client_arguments, open_control_channel
from skymesh.cli.control import follow, message_json

__all__ = ["register"]

_ROLES = ("observer", "operator", "admin")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "users",
        help="manage users and their API tokens on a running server (admin)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_client_arguments(parser)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server")
    parser.add_argument("--json", action="store_true", help="print the API's messages as JSON")
    sub = parser.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="list users and their tokens")
    create = sub.add_parser("create", help="create a user and print its first token")
    create.add_argument("user_id")
    create.add_argument("--role", choices=_ROLES, required=True)
    token = sub.add_parser("token", help="print a new token for a user")
    token.add_argument("user_id")
    revoke = sub.add_parser("revoke", help="revoke a token")
    revoke.add_argument("token_id")
    update = sub.add_parser("update", help="change a user's role")
    update.add_argument("user_id")
    update.add_argument("--role", choices=_ROLES, required=True)
    delete = sub.add_parser("delete", help="remove a user and all its tokens")
    delete.add_argument("user_id")
    delete.add_argument("--yes", action="store_true", help="really remove it")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    for line in asyncio.run(_call(args)):
        print(line)
    return 0


async def _call(args: argparse.Namespace) -> list[str]:
    from skymesh.api.control.v1 import users_pb2, users_pb2_grpc

    async with open_control_channel(args) as channel:
        users = users_pb2_grpc.UserServiceStub(channel)
        if args.users_command == "create":
            role = users_pb2.Role.Value(f"ROLE_{args.role.upper()}")
            created = await users.CreateUser(
                users_pb2.CreateUserRequest(user_id=args.user_id, role=role), timeout=args.timeout
            )
            if args.json:
                return [_json(created)]
            return [f"token_id: {created.token_id}", f"token: {created.token}"]
        if args.users_command == "token":
            issued = await users.IssueUserToken(
                users_pb2.IssueUserTokenRequest(user_id=args.user_id), timeout=args.timeout
            )
            if args.json:
                return [_json(issued)]
            return [f"token_id: {issued.token_id}", f"token: {issued.token}"]
        if args.users_command == "update":
            updated = await users.UpdateUser(
                users_pb2.UpdateUserRequest(
                    user_id=args.user_id, role=users_pb2.Role.Value(f"ROLE_{args.role.upper()}")
                ),
                timeout=args.timeout,
            )
            if args.json:
                return [_json(updated.user)]
            return [f"{args.user_id} is now {args.role}"]
        if args.users_command == "delete":
            from skymesh.core.errors import InvalidArgument

            if not args.yes:
                raise InvalidArgument(
                    f"removing user {args.user_id} ends all its tokens for good: add --yes", field="--yes"
                )
            deleted = await users.DeleteUser(users_pb2.DeleteUserRequest(user_id=args.user_id), timeout=args.timeout)
            if args.json:
                return [_json(deleted)]
            return [f"deleted user {args.user_id}: {deleted.revoked_token_count} token(s) or session(s) ended"]
        if args.users_command == "revoke":
            revoked = await users.RevokeUserToken(
                users_pb2.RevokeUserTokenRequest(token_id=args.token_id), timeout=args.timeout
            )
            if args.json:
                return [_json(revoked)]
            return [f"revoked {args.token_id} (user {revoked.user_id})"]
        listed = await follow(users.ListUsers, users_pb2.ListUsersRequest(), "users", timeout_s=args.timeout)
        if args.json:
            return [json.dumps({"users": [message_json(u) for u in listed]}, indent=2, sort_keys=True)]
        lines = []
        for u in listed:
            role_name = users_pb2.Role.Name(u.role).removeprefix("ROLE_").lower()
            lines.append(f"{u.user_id}  {role_name}  created {u.create_time.ToJsonString()}")
            for t in u.tokens:
                state = f"revoked {t.revoke_time.ToJsonString()}" if t.HasField("revoke_time") else "valid"
                lines.append(f"    token {t.token_id}  created {t.create_time.ToJsonString()}  {state}")
        return lines


def _json(message: Any) -> str:
    return json.dumps(message_json(message), indent=2, sort_keys=True)
