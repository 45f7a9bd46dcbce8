"""`skymesh keys`: station API keys and user tokens, through the running server's API or, for recovery, its database.

    skymesh keys issue STATION_ID [--out FILE]  a new station key, shown once (or written owner-only to FILE)
    skymesh keys revoke KEY_ID                  revoke a station key (its live stream ends at once)
    skymesh keys user USER_ID --role ROLE       create a user (admin, operator, observer) and print an API token
    skymesh keys token USER_ID                  print another API token for a user
    skymesh keys password USER_ID               set a user's web password (asked for twice, or one line on stdin)

By default these go through the server's API (StationService, UserService, AuthService.SetPassword) with an admin
token, like every client command: --server, --token-file (default ./var/admin.token, the first admin's token the
server writes on a fresh database), --tls, ... So they change the database the server really uses, whatever it is.

`--db URL`, `--config FILE` (the server's YAML) or `--data-dir DIR` work on that database directly instead, with no
server and no token: for bootstrap scripts and recovery (every admin token lost: `skymesh keys --config server.yaml
token admin`). The database is only ever the one named there; SKYMESH_DATABASE_URL alone does not switch to it. A
revocation made this way refuses the next connection at once and ends a live stream within the server's
`key_recheck_s` (60 s).
"""

from __future__ import annotations

import argparse
from typing import Any

from skymesh.cli.client import add_client_arguments, open_control_channel

__all__ = ["register"]


def _direct_options(parser: argparse.ArgumentParser, default: Any) -> None:
    group = parser.add_argument_group("straight on a database, without the server (recovery)")
    group.add_argument("--config", default=default, help="server YAML file (its database)")
    group.add_argument("--db", dest="database_url", default=default, help="database URL")
    group.add_argument("--data-dir", default=default, help="server data directory (its default SQLite file)")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "keys",
        help="issue and revoke station keys and user tokens (through the server, or on its database)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _direct_options(parser, None)  # before the action, as before; after it works too
    common = argparse.ArgumentParser(add_help=False)
    add_client_arguments(common)
    common.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server")
    _direct_options(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    issue = sub.add_parser("issue", parents=[common], help="issue a station key")
    issue.add_argument("station_id")
    issue.add_argument("--out", metavar="FILE", help="write the key to FILE (mode 600) instead of printing it")
    revoke = sub.add_parser("revoke", parents=[common], help="revoke a station key")
    revoke.add_argument("key_id")
    user = sub.add_parser("user", parents=[common], help="create a user and print an API token")
    user.add_argument("user_id")
    user.add_argument("--role", choices=("admin", "operator", "observer"), default="observer")
    token = sub.add_parser("token", parents=[common], help="print a new API token for a user")
    token.add_argument("user_id")
    password = sub.add_parser(
        "password", parents=[common], help="set a user's web login password (prompted; or piped on stdin)"
    )
    password.add_argument("user_id")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    direct = args.config or args.database_url or args.data_dir
    return asyncio.run(_main(args) if direct else _over_api(args))


def _write_key(path_text: str, key: str) -> None:
    """The key into a new owner-only file (the agent's api_key_file); refuses to replace one."""
    import os
    from pathlib import Path

    from skymesh.core.errors import AlreadyExists

    path = Path(path_text).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AlreadyExists(f"{path} exists; revoke its key and remove it first", field="--out") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key + "\n")


def _print_key(args: argparse.Namespace, key_id: str, api_key: str) -> None:
    print(f"key_id: {key_id}")
    if getattr(args, "out", None):
        _write_key(args.out, api_key)
        print(f"api_key: written to {args.out}")
    else:
        print(f"api_key: {api_key}")


async def _over_api(args: argparse.Namespace) -> int:
    from skymesh.api.control.v1 import (
        auth_pb2,
        auth_pb2_grpc,
        stations_pb2,
        stations_pb2_grpc,
        users_pb2,
        users_pb2_grpc,
    )

    async with open_control_channel(args) as channel:
        stations = stations_pb2_grpc.StationServiceStub(channel)
        users = users_pb2_grpc.UserServiceStub(channel)
        if args.keys_command == "issue":
            issued = await stations.IssueStationKey(
                stations_pb2.IssueStationKeyRequest(station_id=args.station_id), timeout=args.timeout
            )
            _print_key(args, issued.key_id, issued.api_key)
        elif args.keys_command == "revoke":
            await stations.RevokeStationKey(
                stations_pb2.RevokeStationKeyRequest(key_id=args.key_id), timeout=args.timeout
            )
            print(f"revoked {args.key_id}")
        elif args.keys_command == "user":
            role = users_pb2.Role.Value(f"ROLE_{args.role.upper()}")
            created = await users.CreateUser(
                users_pb2.CreateUserRequest(user_id=args.user_id, role=role), timeout=args.timeout
            )
            print(f"token: {created.token}")
        elif args.keys_command == "password":
            await auth_pb2_grpc.AuthServiceStub(channel).SetPassword(
                auth_pb2.SetPasswordRequest(user_id=args.user_id, password=_read_password()), timeout=args.timeout
            )
            print(f"password set for {args.user_id}")
        else:
            issued_token = await users.IssueUserToken(
                users_pb2.IssueUserTokenRequest(user_id=args.user_id), timeout=args.timeout
            )
            print(f"token: {issued_token.token}")
    return 0


async def _main(args: argparse.Namespace) -> int:
    from skymesh.server import load_config
    from skymesh.server.db import Repository, create_engine, migrate
    from skymesh.server.db.records import Role

    config = load_config(args.config, overrides={"database_url": args.database_url, "data_dir": args.data_dir})
    engine = create_engine(config.database_url)
    try:
        await migrate(engine)
        repo = Repository(engine)
        if args.keys_command == "issue":
            issued = await repo.issue_station_key(args.station_id, actor="cli")
            _print_key(args, issued.key_id, issued.api_key)
        elif args.keys_command == "revoke":
            station_id = await repo.revoke_station_key(args.key_id, actor="cli")
            print(f"revoked {args.key_id} (station {station_id})")
        elif args.keys_command == "user":
            await repo.create_user(args.user_id, Role[args.role.upper()], actor="cli")
            print(f"token: {await repo.issue_user_token(args.user_id, actor='cli')}")
        elif args.keys_command == "password":
            await repo.set_password(args.user_id, _read_password(), actor="cli")
            print(f"password set for {args.user_id}")
        else:
            print(f"token: {await repo.issue_user_token(args.user_id, actor='cli')}")
    finally:
        await engine.dispose()
    return 0


def _read_password() -> str:
    import getpass
    import sys

    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        from skymesh.core.errors import InvalidArgument

        raise InvalidArgument("the two entries differ", field="password")
    return first
