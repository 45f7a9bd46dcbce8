"""`skymesh web`: the web gateway (JSON API, live events, dashboard) in its own process."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("web", help="run the web gateway (JSON API + dashboard)", description=__doc__)
    parser.add_argument("--listen", help="HTTP address (default 127.0.0.1:8080; env SKYMESH_WEB_LISTEN)")
    parser.add_argument("--server", dest="server_address", help="control server gRPC address (default 127.0.0.1:50051)")
    parser.add_argument(
        "--scheduler", dest="scheduler_address", help="scheduler gRPC address (default 127.0.0.1:50052)"
    )
    parser.add_argument("--max-body-bytes", type=int, help="refuse bigger request bodies with 413 (default 1 MiB)")
    parser.add_argument(
        "--secure-cookies",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mark session cookies Secure (default: when the request came over https)",
    )
    parser.add_argument("--tls-cert", dest="tls_cert_file", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", dest="tls_key_file", help="and this private key (PEM)")
    parser.add_argument("--server-ca", dest="server_ca_file", help="CA bundle (PEM) for a TLS control server")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from skymesh.web import WebConfig, serve

    config = WebConfig.from_env(
        listen=args.listen,
        server_address=args.server_address,
        scheduler_address=args.scheduler_address,
        max_body_bytes=args.max_body_bytes,
        secure_cookies=args.secure_cookies,
        tls_cert_file=args.tls_cert_file,
        tls_key_file=args.tls_key_file,
        server_ca_file=args.server_ca_file,
    )
    scheme = "https" if config.tls_cert_file else "http"
    print(f"skymesh web: {scheme}://{config.listen}/ (API docs at /docs), server {config.server_address}", flush=True)
    asyncio.run(serve(config))
    return 0
