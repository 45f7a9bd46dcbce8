"""`skymesh passes`: predict the passes of every satellite in a TLE file over one ground station.

    skymesh passes --tle stations.tle --lat 52.0 --lon 4.4 --alt-m 0 --start 2026-11-22T00:00:00Z --hours 24 \\
        --min-elevation-deg 10 --json

With --json, prints a JSON list of {"norad_id", "name", "aos", "tca", "los", "max_elevation_deg"} sorted by AOS,
times in ISO 8601 UTC with a 'Z' suffix; otherwise a table. Passes already under way at the start or still under
way at the end are clipped to the window. Bad input (a TLE that fails validation, a latitude out of range, a
naive start time) raises a SkyMeshError, which `skymesh` turns into a one-line message and exit status 2.
Heavy imports (numpy, sgp4) happen inside the command, so `skymesh --help` stays light.
"""

from __future__ import annotations

import argparse
import math
from datetime import datetime
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "passes",
        help="predict satellite passes over a ground station",
        description="Predict AOS, TCA and LOS of every satellite in a TLE file over one ground station.",
    )
    parser.add_argument("--tle", required=True, metavar="FILE", help="TLE file (2-line or 3-line format)")
    parser.add_argument("--lat", type=float, required=True, metavar="DEG", help="station latitude, deg (WGS84)")
    parser.add_argument("--lon", type=float, required=True, metavar="DEG", help="station longitude, deg east")
    parser.add_argument("--alt-m", type=float, default=0.0, metavar="M", help="station altitude, m (default 0)")
    parser.add_argument(
        "--start",
        default=None,
        metavar="ISO8601",
        help="window start with a time zone, e.g. 2026-11-22T00:00:00Z (default: now)",
    )
    parser.add_argument("--hours", type=float, default=24.0, metavar="H", help="window length, hours (default 24)")
    parser.add_argument(
        "--min-elevation-deg", type=float, default=10.0, metavar="E", help="minimum elevation, deg (default 10)"
    )
    parser.add_argument("--step-s", type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def _iso_z(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _parse_start(text: str | None) -> datetime:
    from datetime import UTC

    from skymesh.core.errors import InvalidArgument

    if text is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidArgument(f"{text!r} is not an ISO 8601 time", field="start") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument(f"{text!r} has no time zone; add 'Z' or an offset such as +00:00", field="start")
    return value.astimezone(UTC)


def run(args: argparse.Namespace) -> int:
    import json
    from datetime import timedelta

    import numpy as np

    from skymesh.astro.passes import find_passes
    from skymesh.astro.propagate import SatelliteBatch
    from skymesh.astro.tle import parse_tle_file
    from skymesh.core.errors import InvalidArgument

    if not (math.isfinite(args.lat) and -90.0 <= args.lat <= 90.0):
        raise InvalidArgument(f"latitude {args.lat} is outside -90..90 deg", field="lat")
    if not (math.isfinite(args.lon) and -180.0 <= args.lon <= 360.0):
        raise InvalidArgument(f"longitude {args.lon} is outside -180..360 deg", field="lon")
    if not (math.isfinite(args.hours) and 0.0 < args.hours <= 24.0 * 31):
        raise InvalidArgument(f"hours must be in (0, 744], got {args.hours}", field="hours")
    if not (math.isfinite(args.min_elevation_deg) and -90.0 <= args.min_elevation_deg <= 90.0):
        raise InvalidArgument("minimum elevation must be within -90..90 deg", field="min_elevation_deg")
    start = _parse_start(args.start)
    end = start + timedelta(hours=args.hours)
    try:
        with open(args.tle, encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError as exc:
        raise InvalidArgument(f"cannot read {args.tle}: {exc.strerror}", field="tle") from None
    tles = parse_tle_file(text)
    if not tles:
        raise InvalidArgument(f"{args.tle} holds no TLEs", field="tle")

    table = find_passes(
        SatelliteBatch(tles),
        np.array([args.lat]),
        np.array([args.lon]),
        np.array([args.alt_m]),
        start,
        end,
        args.min_elevation_deg,
        step_s=args.step_s,
    )
    passes = sorted(table.to_list(), key=lambda p: (p.aos, p.sat_index))
    if args.json:
        rows = [
            {
                "norad_id": p.norad_id,
                "name": p.name,
                "aos": _iso_z(p.aos),
                "tca": _iso_z(p.tca),
                "los": _iso_z(p.los),
                "max_elevation_deg": round(p.max_elevation_deg, 3),
            }
            for p in passes
        ]
        print(json.dumps(rows, indent=1))
        return 0

    print(
        f"{len(passes)} passes of {len(tles)} satellites over ({args.lat:.4f}, {args.lon:.4f}, {args.alt_m:.0f} m), "
        f"{_iso_z(start)} .. {_iso_z(end)}, elevation >= {args.min_elevation_deg:g} deg"
    )
    header = (
        f"{'NORAD':>7}  {'NAME':<24} {'AOS (UTC)':<20} {'TCA':<9} {'LOS':<9} {'MAX EL':>7} {'DUR s':>6}  AZ AOS->LOS"
    )
    print(header)
    for p in passes:
        flags = ("<" if p.aos_clipped else "") + (">" if p.los_clipped else "")
        print(
            f"{p.norad_id:>7}  {p.name[:24]:<24} {p.aos:%Y-%m-%d %H:%M:%S} {p.tca:%H:%M:%S} {p.los:%H:%M:%S}"
            f" {p.max_elevation_deg:>7.2f} {p.duration_s:>6.0f}  {p.aos_azimuth_deg:5.1f}->{p.los_azimuth_deg:5.1f}"
            f" {flags}"
        )
    if any(p.aos_clipped or p.los_clipped for p in passes):
        print("< already under way at the start, > still under way at the end (clipped to the window)")
    return 0
