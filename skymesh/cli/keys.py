"""`skymesh keys`: station API keys and user tokens, written straight to the server's database.

    skymesh keys issue STATION_ID            print a new station key (shown once; only its hash is stored)
    skymesh keys revoke KEY_ID               revoke a station key
    skymesh keys user USER_ID --role ROLE    create a user (admin, operator, observer) and print an API token
    skymesh keys token USER_ID               print another API token for a user
    skymesh keys password USER_ID            set a user's password for the web dashboard (asked for, or stdin)

This works against the database (`--db`, `--config` or SKYMESH_DATABASE_URL), not the API: the server writes the
first admin's token to <data_dir>/admin.token on a fresh database by itself, and this command is for recovery (every
admin token lost: `skymesh keys token admin`) and scripts that own the database. Through the API, UserService does
the same for admins (docs/security.md). A revocation here refuses the next connection at once and ends a live
stream within the server's `key_recheck_s` (60 s); StationService.RevokeStationKey through the API ends it at once.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "keys",
        help="issue and revoke station keys and user tokens",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="server YAML file (for the database URL)")
    parser.add_argument("--db", dest="database_url", help="database URL")
    parser.add_argument("--data-dir", help="server data directory (for the default SQLite file)")
    sub = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    issue = sub.add_parser("issue", help="issue a station key")
    issue.add_argument("station_id")
    revoke = sub.add_parser("revoke", help="revoke a station key")
    revoke.add_argument("key_id")
    user = sub.add_parser("user", help="create a user and print an API token")
    user.add_argument("user_id")
    user.add_argument("--role", choices=("admin", "operator", "observer"), default="observer")
    token = sub.add_parser("token", help="print a new API token for a user")
    token.add_argument("user_id")
    password = sub.add_parser("password", help="set a user's web login password (prompted; or piped on stdin)")
    password.add_argument("user_id")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_main(args))


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
            print(f"key_id: {issued.key_id}")
            print(f"api_key: {issued.api_key}")
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
