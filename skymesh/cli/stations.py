"""`skymesh stations`: the station registry of a running server, through its StationService.

    skymesh stations list [--kind KIND] [--state STATE]     every station, its state and when it was last seen
    skymesh stations get STATION_ID                         one station in full
    skymesh stations create STATION_ID --kind KIND --lat DEG --lon DEG [--alt-m M] [--name NAME] [--bands UHF,VHF]
                            [--min-elevation-deg DEG] [--slew-rate-deg-s R] [--aperture-m M] [--filters V,R]
                            [--limiting-magnitude MAG] [--fov-deg DEG]      register a station (admin)
    skymesh stations update STATION_ID [--name N] [--lat DEG] [--lon DEG] [--alt-m M] [--bands ...] [...]
                                                            change only the options given (admin)
    skymesh stations weather STATION_ID clear|cloudy|closed the weather at a station (operator)
    skymesh stations delete STATION_ID --yes                retire a station: keys revoked, open jobs ended (admin)

Then `skymesh keys issue STATION_ID --out FILE` gives its agent an API key. Connection options (--server,
--token-file, --tls, ...), --json and --timeout go after the action; see `skymesh.cli.control`.
"""

from __future__ import annotations

import argparse
from typing import Any

from skymesh.cli.control import common_options, enum_name, follow, message_json, print_json, run_action, table
from skymesh.cli.control import time_text as _time

__all__ = ["register"]

KINDS = ("ground-station", "telescope")
STATES = ("online", "stale", "disconnected", "offline", "degraded")
WEATHER = ("clear", "cloudy", "closed")


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "stations",
        help="list, show, register, retire stations on a running server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = common_options()
    sub = parser.add_subparsers(dest="stations_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", parents=[common], help="list stations")
    listing.add_argument("--kind", choices=KINDS)
    listing.add_argument("--state", choices=STATES)
    get = sub.add_parser("get", parents=[common], help="show one station")
    get.add_argument("station_id")
    create = sub.add_parser("create", parents=[common], help="register a station (admin)")
    create.add_argument("station_id", help="1-63 lowercase letters, digits or hyphens, starting with a letter")
    create.add_argument("--kind", choices=KINDS, required=True)
    create.add_argument("--name", default="", help="display name (default: the id)")
    create.add_argument("--lat", type=float, required=True, metavar="DEG", help="geodetic latitude, degrees north")
    create.add_argument("--lon", type=float, required=True, metavar="DEG", help="longitude, degrees east")
    create.add_argument("--alt-m", type=float, default=0.0, metavar="M", help="altitude above the ellipsoid, metres")
    create.add_argument("--bands", type=_csv, default=[], help="radio bands, comma separated (ground stations)")
    create.add_argument("--min-elevation-deg", type=float, default=0.0, metavar="DEG")
    create.add_argument("--slew-rate-deg-s", type=float, default=0.0, metavar="R")
    create.add_argument("--aperture-m", type=float, default=0.0, metavar="M", help="telescopes")
    create.add_argument("--filters", type=_csv, default=[], help="filters, comma separated (telescopes)")
    create.add_argument("--limiting-magnitude", type=float, default=0.0, metavar="MAG")
    create.add_argument("--fov-deg", type=float, default=0.0, metavar="DEG")
    update = sub.add_parser("update", parents=[common], help="change a station's description (admin)")
    update.add_argument("station_id")
    update.add_argument("--name")
    update.add_argument("--lat", type=float, metavar="DEG")
    update.add_argument("--lon", type=float, metavar="DEG")
    update.add_argument("--alt-m", type=float, metavar="M")
    update.add_argument("--bands", type=_csv, help="the new list, comma separated ('' for none)")
    update.add_argument("--min-elevation-deg", type=float, metavar="DEG")
    update.add_argument("--slew-rate-deg-s", type=float, metavar="R")
    update.add_argument("--aperture-m", type=float, metavar="M")
    update.add_argument("--filters", type=_csv, help="the new list, comma separated ('' for none)")
    update.add_argument("--limiting-magnitude", type=float, metavar="MAG")
    update.add_argument("--fov-deg", type=float, metavar="DEG")
    weather = sub.add_parser("weather", parents=[common], help="set the weather at a station (operator)")
    weather.add_argument("station_id")
    weather.add_argument("weather", choices=WEATHER)
    delete = sub.add_parser("delete", parents=[common], help="retire a station (admin); its history stays")
    delete.add_argument("station_id")
    delete.add_argument("--yes", action="store_true", help="really retire it (ids are never reused)")
    parser.set_defaults(
        func=run_action(
            {"list": _list, "get": _get, "create": _create, "update": _update, "weather": _weather, "delete": _delete},
            "stations_command",
        )
    )


def _stub(channel: Any) -> Any:
    from skymesh.api.control.v1 import stations_pb2_grpc

    return stations_pb2_grpc.StationServiceStub(channel)


def _row(s: Any) -> list[str]:
    from skymesh.api.common.v1 import common_pb2

    where = f"{s.location.latitude_deg:.3f},{s.location.longitude_deg:.3f}"
    return [
        s.station_id,
        s.name,
        enum_name(common_pb2.StationKind, s.kind, "STATION_KIND_").lower().replace("_", "-"),
        enum_name(common_pb2.StationState, s.state, "STATION_STATE_"),
        enum_name(common_pb2.Weather, s.weather, "WEATHER_") if s.weather else "-",
        where,
        _time(s.last_seen, s.HasField("last_seen")),
    ]


_HEADERS = ["STATION", "NAME", "KIND", "STATE", "WEATHER", "LAT,LON", "LAST SEEN"]


async def _list(args: argparse.Namespace, channel: Any) -> int:
    from skymesh.api.common.v1 import common_pb2
    from skymesh.api.control.v1 import stations_pb2

    request = stations_pb2.ListStationsRequest()
    if args.kind:
        request.kind = common_pb2.StationKind.Value("STATION_KIND_" + args.kind.upper().replace("-", "_"))
    if args.state:
        request.state = common_pb2.StationState.Value("STATION_STATE_" + args.state.upper())
    stations = await follow(_stub(channel).ListStations, request, "stations", timeout_s=args.timeout)
    if args.json:
        print_json({"stations": [message_json(s) for s in stations]})
    else:
        print(table(_HEADERS, [_row(s) for s in stations]))
    return 0


def _show(station: Any, as_json: bool) -> None:
    if as_json:
        print_json(message_json(station))
        return
    print(table(_HEADERS, [_row(station)]))
    extra = [
        ("altitude", f"{station.location.altitude_m:g} m"),
        ("bands", ",".join(station.bands) or "-"),
        ("filters", ",".join(station.filters) or "-"),
        ("min elevation", f"{station.min_elevation_deg:g} deg"),
        ("aperture", f"{station.aperture_m:g} m" if station.aperture_m else "-"),
        ("clock offset", f"{station.clock_offset_s:+.3f} s"),
    ]
    print("\n".join(f"{k}: {v}" for k, v in extra))


async def _get(args: argparse.Namespace, channel: Any) -> int:
    from skymesh.api.control.v1 import stations_pb2

    reply = await _stub(channel).GetStation(
        stations_pb2.GetStationRequest(station_id=args.station_id), timeout=args.timeout
    )
    _show(reply.station, args.json)
    return 0


async def _create(args: argparse.Namespace, channel: Any) -> int:
    from skymesh.api.common.v1 import common_pb2
    from skymesh.api.control.v1 import stations_pb2

    station = common_pb2.Station(
        station_id=args.station_id,
        name=args.name or args.station_id,
        kind=common_pb2.StationKind.Value("STATION_KIND_" + args.kind.upper().replace("-", "_")),
        location=common_pb2.GeoLocation(latitude_deg=args.lat, longitude_deg=args.lon, altitude_m=args.alt_m),
        min_elevation_deg=args.min_elevation_deg,
        bands=args.bands,
        slew_rate_deg_s=args.slew_rate_deg_s,
        aperture_m=args.aperture_m,
        filters=args.filters,
        limiting_magnitude=args.limiting_magnitude,
        fov_deg=args.fov_deg,
    )
    reply = await _stub(channel).CreateStation(stations_pb2.CreateStationRequest(station=station), timeout=args.timeout)
    if args.json:
        print_json(message_json(reply.station))
    else:
        print(f"created station {reply.station.station_id}; next: skymesh keys issue {reply.station.station_id}")
    return 0


_SIMPLE_UPDATES = (
    "name",
    "bands",
    "min_elevation_deg",
    "slew_rate_deg_s",
    "aperture_m",
    "filters",
    "limiting_magnitude",
    "fov_deg",
)


async def _update(args: argparse.Namespace, channel: Any) -> int:
    from skymesh.api.common.v1 import common_pb2
    from skymesh.api.control.v1 import stations_pb2
    from skymesh.core.errors import InvalidArgument

    station = common_pb2.Station(station_id=args.station_id)
    paths = []
    for name in _SIMPLE_UPDATES:
        value = getattr(args, name)
        if value is None:
            continue
        paths.append(name)
        if isinstance(value, list):
            getattr(station, name).extend(value)
        else:
            setattr(station, name, value)
    if args.lat is not None or args.lon is not None or args.alt_m is not None:
        # The location is one field on the wire: the parts not given keep their current values.
        current = await _stub(channel).GetStation(
            stations_pb2.GetStationRequest(station_id=args.station_id), timeout=args.timeout
        )
        station.location.CopyFrom(current.station.location)
        for part, value in (("latitude_deg", args.lat), ("longitude_deg", args.lon), ("altitude_m", args.alt_m)):
            if value is not None:
                setattr(station.location, part, value)
        paths.append("location")
    if not paths:
        raise InvalidArgument("nothing to change: give at least one option (--name, --lat, --bands, ...)", field="")
    request = stations_pb2.UpdateStationRequest(station=station)
    request.update_mask.paths.extend(paths)
    reply = await _stub(channel).UpdateStation(request, timeout=args.timeout)
    _show(reply.station, args.json)
    return 0


async def _weather(args: argparse.Namespace, channel: Any) -> int:
    from skymesh.api.common.v1 import common_pb2
    from skymesh.api.control.v1 import stations_pb2

    reply = await _stub(channel).SetStationWeather(
        stations_pb2.SetStationWeatherRequest(
            station_id=args.station_id, weather=common_pb2.Weather.Value("WEATHER_" + args.weather.upper())
        ),
        timeout=args.timeout,
    )
    _show(reply.station, args.json)
    return 0


async def _delete(args: argparse.Namespace, channel: Any) -> int:
    from skymesh.api.control.v1 import stations_pb2
    from skymesh.core.errors import InvalidArgument

    if not args.yes:
        raise InvalidArgument(
            f"retiring {args.station_id} revokes its keys and ends its open jobs for good: add --yes", field="--yes"
        )
    reply = await _stub(channel).DeleteStation(
        stations_pb2.DeleteStationRequest(station_id=args.station_id), timeout=args.timeout
    )
    if args.json:
        print_json(message_json(reply) | {"station_id": args.station_id})
    else:
        print(
            f"deleted station {args.station_id}: {reply.revoked_key_count} key(s) revoked, "
            f"{reply.cancelled_job_count} job(s) ended"
        )
    return 0
