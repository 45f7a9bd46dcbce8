"""`skymesh alerts`: alert packets into a running server, over the control API (AlertService; operator role).

    skymesh alerts ingest FILE [FILE ...] [--format FORMAT]   send packets (GCN JSON/VOEvent, TNS JSON, ZTF/Rubin avro)
    skymesh alerts list [--source SRC] [--status STATUS]      the newest alerts and what became of them

The token comes from --token or $SKYMESH_TOKEN. `ingest` exits 1 when any packet was rejected (the server keeps it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "alerts",
        help="ingest alert packets and list alerts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--server", default="127.0.0.1:50051", help="server address (default 127.0.0.1:50051)")
    parser.add_argument("--token", default=None, help="user API token (default: $SKYMESH_TOKEN)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each call")
    sub = parser.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    ingest = sub.add_parser("ingest", help="send alert packets to the server")
    ingest.add_argument("files", nargs="+", help="packet files")
    ingest.add_argument("--format", default="", help="gcn-json, voevent, tns-json, ztf-avro or rubin-avro (sniffed)")
    listing = sub.add_parser("list", help="list the newest alerts")
    listing.add_argument("--source", default="")
    listing.add_argument("--status", default="", help="accepted, stored, test, retraction, retracted, rejected...")
    listing.add_argument("--limit", type=int, default=50)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    import grpc
    from google.protobuf.json_format import MessageToDict

    from skymesh.api.control.v1 import alerts_pb2, alerts_pb2_grpc
    from skymesh.api.errors import error_from_rpc

    token = args.token or os.environ.get("SKYMESH_TOKEN")
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    failures = 0
    async with grpc.aio.insecure_channel(args.server) as channel:
        stub = alerts_pb2_grpc.AlertServiceStub(channel)
        if args.alerts_command == "list":
            status = 0
            if args.status:
                try:
                    status = alerts_pb2.AlertStatus.Value(f"ALERT_STATUS_{args.status.upper()}")
                except ValueError:
                    from skymesh.core.errors import InvalidArgument

                    raise InvalidArgument(f"unknown status {args.status!r}", field="--status") from None
            try:
                listed = await stub.ListAlerts(
                    alerts_pb2.ListAlertsRequest(source=args.source, status=status, page_size=args.limit),  # type: ignore[arg-type]
                    metadata=metadata,
                    timeout=args.timeout,
                )
            except grpc.aio.AioRpcError as exc:
                raise error_from_rpc(exc) from exc
            for alert in listed.alerts:
                print(json.dumps(MessageToDict(alert, preserving_proto_field_name=True)))
            return 0
        for name in args.files:
            path = Path(name)
            packet = await asyncio.to_thread(path.read_bytes)
            try:
                reply = await stub.IngestAlert(
                    alerts_pb2.IngestAlertRequest(packet=packet, format_hint=args.format, origin=path.name),
                    metadata=metadata,
                    timeout=args.timeout,
                )
            except grpc.aio.AioRpcError as exc:
                failures += 1
                print(f"{name}: {exc.code().name}: {exc.details()}", file=sys.stderr)
                continue
            for alert in reply.alerts:
                status_name = alerts_pb2.AlertStatus.Name(alert.status).removeprefix("ALERT_STATUS_")
                target = f" -> target {alert.target_id}" if alert.target_id else ""
                print(f"{name}: {alert.source} {alert.external_id} rev {alert.revision}: {status_name}{target}")
    return 1 if failures else 0
