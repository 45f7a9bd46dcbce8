"""`skymesh lightcurve`: a target's light curve through the control gRPC API, as CSV, ECSV or VOTable.

    skymesh lightcurve TARGET [--filter V] [--include-bad] [--format csv|ecsv|votable] [--output FILE]
                              [--server ADDR] [--token TOKEN]

One row per observation, in time order: mid-observation time (UTC, ISO and MJD), calibrated magnitude and error in
its filter, filter, station, airmass, quality flags, whether the magnitude is the server's reduction (else what the
agent reported) and the observation id. Observations whose reduction failed quality are left out unless
--include-bad. Tables are written with astropy (`astropy.table`), imported only when the command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from astropy.table import Table

    from skymesh.api.control.v1 import observations_pb2

__all__ = ["FORMATS", "fetch_light_curve", "light_curve_table", "register", "write_light_curve"]

FORMATS = {"csv": "ascii.csv", "ecsv": "ascii.ecsv", "votable": "votable"}


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "lightcurve",
        help="export a target's light curve (CSV, ECSV or VOTable)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", help="target id")
    parser.add_argument("--filter", default="", help="only this filter (default: all)")
    parser.add_argument("--include-bad", action="store_true", help="also points whose reduction failed quality")
    parser.add_argument("--format", choices=sorted(FORMATS), default="csv")
    parser.add_argument("--output", "-o", default="-", help="file to write (default: standard output)")
    parser.add_argument("--server", default="127.0.0.1:50051", help="server address (default 127.0.0.1:50051)")
    parser.add_argument("--token", default=None, help="user API token (default: $SKYMESH_TOKEN)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    response = asyncio.run(
        fetch_light_curve(
            args.server,
            args.token or os.environ.get("SKYMESH_TOKEN"),
            args.target,
            filter=args.filter,
            include_bad=args.include_bad,
            timeout_s=args.timeout,
        )
    )
    table = light_curve_table(response)
    if args.output == "-":
        sys.stdout.write(write_light_curve(table, args.format))
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(write_light_curve(table, args.format))
    return 0


async def fetch_light_curve(
    address: str,
    token: str | None,
    target_id: str,
    *,
    filter: str = "",
    include_bad: bool = False,
    timeout_s: float = 10.0,
) -> observations_pb2.GetLightCurveResponse:
    import grpc

    from skymesh.api.control.v1 import observations_pb2, observations_pb2_grpc
    from skymesh.api.errors import error_from_rpc

    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    request = observations_pb2.GetLightCurveRequest(target_id=target_id, filter=filter, include_bad=include_bad)
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            response: observations_pb2.GetLightCurveResponse = await observations_pb2_grpc.ObservationServiceStub(
                channel
            ).GetLightCurve(request, metadata=metadata, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from exc
    return response


def light_curve_table(response: observations_pb2.GetLightCurveResponse) -> Table:
    import astropy.units as u
    from astropy.table import Table
    from astropy.time import Time

    from skymesh.api.convert import timestamp_to_datetime

    times = [timestamp_to_datetime(p.at, "at") for p in response.points]
    mjd = Time(times, scale="utc").mjd if times else []
    table = Table(
        {
            "time_utc": [t.isoformat().replace("+00:00", "Z") for t in times],
            "mjd": mjd,
            "magnitude": [p.magnitude for p in response.points],
            "magnitude_error": [p.magnitude_error for p in response.points],
            "filter": [p.filter for p in response.points],
            "station_id": [p.station_id for p in response.points],
            "airmass": [p.airmass for p in response.points],
            "quality_flags": [",".join(p.quality_flags) for p in response.points],
            "reduced": [p.reduced for p in response.points],
            "observation_id": [p.observation_id for p in response.points],
        },
        dtype=[str, float, float, float, str, str, float, str, bool, str],
    )
    table["mjd"].unit = u.day
    table["magnitude"].unit = u.mag
    table["magnitude_error"].unit = u.mag
    table.meta["target_id"] = response.target_id
    table.meta["filter"] = response.filter or "all"
    table.meta["description"] = "SkyMesh light curve (skymesh lightcurve)"
    return table


def write_light_curve(table: Table, fmt: str) -> str:
    import io

    if fmt not in FORMATS:
        from skymesh.core.errors import InvalidArgument

        raise InvalidArgument(f"must be one of {sorted(FORMATS)}", field="format")
    if fmt == "votable":
        buffer = io.BytesIO()
        table.write(buffer, format="votable")
        return buffer.getvalue().decode("utf-8")
    text = io.StringIO()
    table.write(text, format=FORMATS[fmt])
    return text.getvalue()
