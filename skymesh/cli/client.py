"""The options every `skymesh` command that talks to a running server shares, and the channel they open.

    --server ADDR              server address (default $SKYMESH_SERVER, else 127.0.0.1:50051)
    --token-file FILE          file holding a user token (default $SKYMESH_TOKEN_FILE, else ./var/admin.token if it
                               exists: the first admin's token that `skymesh server` writes on a fresh database)
    --token TOKEN              a user token on the command line (default $SKYMESH_TOKEN); other local users can see
                               a process's arguments, so prefer the file or the variable
    --tls                      speak TLS, verifying the server against the system's roots
    --ca-cert FILE             ...or against these PEM roots (implies --tls)
    --tls-server-name NAME     the name the server's certificate carries, when the address does not show it

Errors in these options are SkyMeshErrors naming the option, which `skymesh` prints as one line.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from skymesh.api.channel import TlsOptions

__all__ = [
    "DEFAULT_SERVER",
    "DEFAULT_TOKEN_FILE",
    "add_client_arguments",
    "open_control_channel",
    "resolve_address",
    "resolve_tls",
    "resolve_token",
]

DEFAULT_SERVER = "127.0.0.1:50051"
DEFAULT_TOKEN_FILE = Path("var") / "admin.token"


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument("--server", default=None, help=f"server address (default $SKYMESH_SERVER or {DEFAULT_SERVER})")
    group.add_argument(
        "--token-file",
        default=None,
        metavar="FILE",
        help=f"file holding a user token (default $SKYMESH_TOKEN_FILE, else {DEFAULT_TOKEN_FILE} if it exists)",
    )
    group.add_argument("--token", default=None, help="user token (default $SKYMESH_TOKEN; prefer --token-file)")
    group.add_argument("--tls", action="store_true", help="use TLS (system roots unless --ca-cert)")
    group.add_argument("--ca-cert", default=None, metavar="FILE", help="PEM roots to verify the server (implies --tls)")
    group.add_argument("--tls-server-name", default=None, metavar="NAME", help="name on the server's certificate")
    group.add_argument("--client-cert", default=None, metavar="FILE", help="PEM client certificate, for mutual TLS")
    group.add_argument("--client-key", default=None, metavar="FILE", help="its PEM private key (with --client-cert)")


def _read(path: Path, option: str) -> bytes:
    from skymesh.core.errors import InvalidArgument

    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror or exc}", field=option) from exc


def resolve_token(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> str | None:
    """The token to send: --token, $SKYMESH_TOKEN, --token-file, $SKYMESH_TOKEN_FILE, ./var/admin.token; or None."""
    from skymesh.core.errors import InvalidArgument

    environ = os.environ if env is None else env
    token = args.token or environ.get("SKYMESH_TOKEN")
    if token:
        return str(token).strip()
    named = args.token_file or environ.get("SKYMESH_TOKEN_FILE")
    path = Path(named) if named else DEFAULT_TOKEN_FILE
    if not named and not path.exists():
        return None
    text = _read(path, "--token-file").decode(errors="replace").strip()
    if not text:
        raise InvalidArgument(f"{path} is empty", field="--token-file")
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(f"skymesh: warning: {path} is readable by other users; chmod 600 it", file=sys.stderr)
    return text


def resolve_address(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> str:
    environ = os.environ if env is None else env
    return str(args.server or environ.get("SKYMESH_SERVER") or DEFAULT_SERVER)


def resolve_tls(args: argparse.Namespace) -> TlsOptions | None:
    """TLS settings from --tls / --ca-cert / --tls-server-name; None for a plain channel."""
    from skymesh.api.channel import TlsOptions

    if bool(args.client_cert) != bool(args.client_key):
        raise SystemExit("--client-cert and --client-key go together")
    if not (args.tls or args.ca_cert or args.client_cert):
        return None
    roots = _read(Path(args.ca_cert), "--ca-cert") if args.ca_cert else None
    chain = _read(Path(args.client_cert), "--client-cert") if args.client_cert else None
    key = _read(Path(args.client_key), "--client-key") if args.client_key else None
    return TlsOptions(
        root_certificates=roots, server_name=args.tls_server_name, certificate_chain=chain, private_key=key
    )


def open_control_channel(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Any:
    """A `grpc.aio.Channel` to the server the options name, carrying the resolved token."""
    from skymesh.api.channel import control_channel

    return control_channel(resolve_address(args, env), token=resolve_token(args, env), tls=resolve_tls(args))
