"""`skymesh targets` and `skymesh campaigns`: what the network observes, through TargetService and CampaignService.

    skymesh targets list [--campaign ID]                     every target, its kind, priority and campaign
    skymesh targets get TARGET_ID                            one target in full (elements, spacecraft forecast)
    skymesh targets create TARGET_ID --tle-file FILE [--band UHF] [--frequency-hz HZ] [--min-elevation-deg DEG]
    skymesh targets create TARGET_ID --ra-deg DEG --dec-deg DEG [--magnitude MAG] [--filters V,R] [--exposure-s S]
                           [--exposure-count N] [--max-airmass X] [--cadence-s S]
                           (both: [--name NAME] [--priority 1-10] [--campaign ID] [--aliases A,B])   (operator)
    skymesh targets update TARGET_ID --tle-file FILE [--elements-source SRC]   new elements; the old stay in history
    skymesh targets delete TARGET_ID                         (operator)

    skymesh campaigns list                                   campaigns with their boost, times and target count
    skymesh campaigns get CAMPAIGN_ID                        one campaign and its targets
    skymesh campaigns create CAMPAIGN_ID [--name N] [--description D] [--priority-boost B] [--start T] [--end T]
    skymesh campaigns update CAMPAIGN_ID [--name N] [--description D] [--priority-boost B] [--start T|none]
                             [--end T|none]                  change only the options given (operator)
    skymesh campaigns delete CAMPAIGN_ID --yes               remove it; its targets stay, in no campaign (operator)

A TLE file holds two lines, or three with the name first (the name is used when --name is not given). Connection
options, --json and --timeout go after the action; see `skymesh.cli.control`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from skymesh.cli.control import (
    common_options,
    follow,
    message_json,
    parse_time,
    print_json,
    run_action,
    table,
    time_text,
)

__all__ = ["register", "register_campaigns"]


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "targets",
        help="list, show, create, update, delete targets on a running server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = common_options()
    sub = parser.add_subparsers(dest="targets_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", parents=[common], help="list targets")
    listing.add_argument("--campaign", default="", metavar="ID")
    get = sub.add_parser("get", parents=[common], help="show one target")
    get.add_argument("target_id")
    create = sub.add_parser("create", parents=[common], help="create a satellite (--tle-file) or sky (--ra-deg) target")
    create.add_argument("target_id", help="1-63 lowercase letters, digits or hyphens, starting with a letter")
    create.add_argument("--name", default="")
    create.add_argument("--priority", type=int, default=5, help="1 (lowest) to 10 (default 5)")
    create.add_argument("--campaign", default="", metavar="ID")
    create.add_argument("--aliases", type=_csv, default=[])
    sat = create.add_argument_group("satellite")
    sat.add_argument("--tle-file", metavar="FILE", help="two TLE lines, or three with the name first")
    sat.add_argument("--band", default="")
    sat.add_argument("--frequency-hz", type=float, default=0.0, metavar="HZ", help="downlink frequency")
    sat.add_argument("--min-elevation-deg", type=float, default=0.0, metavar="DEG")
    sat.add_argument("--elements-source", default="cli", metavar="SRC")
    sky = create.add_argument_group("sidereal")
    sky.add_argument("--ra-deg", type=float, metavar="DEG")
    sky.add_argument("--dec-deg", type=float, metavar="DEG")
    sky.add_argument("--magnitude", type=float, default=0.0)
    sky.add_argument("--filters", type=_csv, default=[])
    sky.add_argument("--exposure-s", type=float, default=0.0, metavar="S")
    sky.add_argument("--exposure-count", type=int, default=0, metavar="N")
    sky.add_argument("--max-airmass", type=float, default=0.0, metavar="X")
    sky.add_argument("--cadence-s", type=float, default=0.0, metavar="S")
    update = sub.add_parser("update", parents=[common], help="new orbital elements for a satellite target")
    update.add_argument("target_id")
    update.add_argument("--tle-file", metavar="FILE", required=True)
    update.add_argument("--elements-source", default="cli", metavar="SRC")
    delete = sub.add_parser("delete", parents=[common], help="delete a target (operator)")
    delete.add_argument("target_id")
    parser.set_defaults(
        func=run_action(
            {"list": _list, "get": _get, "create": _create, "update": _update, "delete": _delete}, "targets_command"
        )
    )


def register_campaigns(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "campaigns",
        help="list, show, create campaigns on a running server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = common_options()
    sub = parser.add_subparsers(dest="campaigns_command", metavar="ACTION", required=True)
    sub.add_parser("list", parents=[common], help="list campaigns")
    get = sub.add_parser("get", parents=[common], help="show one campaign and its targets")
    get.add_argument("campaign_id")
    create = sub.add_parser("create", parents=[common], help="create a campaign (operator)")
    create.add_argument("campaign_id")
    create.add_argument("--name", default="")
    create.add_argument("--description", default="")
    create.add_argument("--priority-boost", type=float, default=0.0, help="added to each of its targets' priority")
    create.add_argument("--start", default=None, metavar="TIME", help="ISO 8601 (default: active now)")
    create.add_argument("--end", default=None, metavar="TIME", help="ISO 8601 (default: open-ended)")
    update = sub.add_parser("update", parents=[common], help="change a campaign (operator)")
    update.add_argument("campaign_id")
    update.add_argument("--name")
    update.add_argument("--description")
    update.add_argument("--priority-boost", type=float)
    update.add_argument("--start", metavar="TIME", help="ISO 8601, or none to clear")
    update.add_argument("--end", metavar="TIME", help="ISO 8601, or none to clear")
    delete = sub.add_parser("delete", parents=[common], help="remove a campaign; its targets stay (operator)")
    delete.add_argument("campaign_id")
    delete.add_argument("--yes", action="store_true", help="really remove it")
    parser.set_defaults(
        func=run_action(
            {
                "list": _campaign_list,
                "get": _campaign_get,
                "create": _campaign_create,
                "update": _campaign_update,
                "delete": _campaign_delete,
            },
            "campaigns_command",
        )
    )


def _targets(channel: Any) -> Any:
    from skymesh.api.control.v1 import targets_pb2_grpc

    return targets_pb2_grpc.TargetServiceStub(channel)


def _campaigns(channel: Any) -> Any:
    from skymesh.api.control.v1 import targets_pb2_grpc

    return targets_pb2_grpc.CampaignServiceStub(channel)


def _where(t: Any) -> str:
    if t.WhichOneof("kind") == "satellite":
        return f"NORAD {t.satellite.norad_id}"
    return f"ra {t.celestial.ra_deg:.4f} dec {t.celestial.dec_deg:+.4f}"


def _row(t: Any) -> list[str]:
    kind = t.WhichOneof("kind") or "-"
    return [t.target_id, t.name, kind, str(t.priority), t.campaign_id or "-", _where(t)]


_HEADERS = ["TARGET", "NAME", "KIND", "PRIORITY", "CAMPAIGN", "WHERE"]


async def _list(args: argparse.Namespace, channel: Any) -> int:
    from skymesh.api.control.v1 import targets_pb2

    request = targets_pb2.ListTargetsRequest(campaign_id=args.campaign)
    targets = await follow(_targets(channel).ListTargets, request, "targets", timeout_s=args.timeout)
    if args.json:
        print_json({"targets": [message_json(t) for t in targets]})
    else:
        print(table(_HEADERS, [_row(t) for t in targets]))
    return 0


def _show(target: Any, as_json: bool, forecast: Any = None) -> None:
    if as_json:
        out = message_json(target)
        if forecast is not None:
            out["spacecraft_forecast"] = message_json(forecast)
        print_json(out)
        return
    print(table(_HEADERS, [_row(target)]))
    if target.WhichOneof("kind") == "satellite":
        print(target.satellite.tle_line1)
        print(target.satellite.tle_line2)
    if forecast is not None:
        print(f"forecast: {forecast.detail or 'planned'}")


async def _get(args: argparse.Namespace, channel: Any) -> int:
    from skymesh.api.control.v1 import targets_pb2

    reply = await _targets(channel).GetTarget(
        targets_pb2.GetTargetRequest(target_id=args.target_id), timeout=args.timeout
    )
    _show(reply.target, args.json, reply.spacecraft_forecast if reply.HasField("spacecraft_forecast") else None)
    return 0


def _read_tle(path: str) -> tuple[str, str, str]:
    """(name or "", line1, line2) from a TLE file; InvalidArgument names --tle-file for anything else."""
    from skymesh.core.errors import InvalidArgument

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(
            f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}", field="--tle-file"
        ) from exc
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    if len(lines) == 3 and not lines[0].startswith("1 "):
        return lines[0].removeprefix("0 ").strip(), lines[1], lines[2]
    if len(lines) == 2:
        return "", lines[0], lines[1]
    raise InvalidArgument(f"{path} must hold one TLE: two lines, or three with the name first", field="--tle-file")


async def _create(args: argparse.Namespace, channel: Any) -> int:
    from skymesh.api.common.v1 import common_pb2
    from skymesh.api.control.v1 import targets_pb2
    from skymesh.core.errors import InvalidArgument

    target = common_pb2.Target(
        target_id=args.target_id,
        name=args.name,
        priority=args.priority,
        campaign_id=args.campaign,
        aliases=args.aliases,
    )
    sky = args.ra_deg is not None or args.dec_deg is not None
    if bool(args.tle_file) == sky:
        raise InvalidArgument(
            "give either --tle-file (a satellite) or --ra-deg and --dec-deg (a sky target)", field="--tle-file"
        )
    if args.tle_file:
        name, line1, line2 = _read_tle(args.tle_file)
        target.name = args.name or name
        target.satellite.CopyFrom(
            common_pb2.SatelliteTarget(
                tle_line1=line1,
                tle_line2=line2,
                band=args.band,
                downlink_frequency_hz=args.frequency_hz,
                min_elevation_deg=args.min_elevation_deg,
                elements_source=args.elements_source,
            )
        )
    else:
        if args.ra_deg is None or args.dec_deg is None:
            raise InvalidArgument("a sky target needs both --ra-deg and --dec-deg", field="--dec-deg")
        target.celestial.CopyFrom(
            common_pb2.CelestialTarget(
                ra_deg=args.ra_deg,
                dec_deg=args.dec_deg,
                magnitude=args.magnitude,
                filters=args.filters,
                exposure_s=args.exposure_s,
                exposure_count=args.exposure_count,
                max_airmass=args.max_airmass,
                cadence_s=args.cadence_s,
            )
        )
    reply = await _targets(channel).CreateTarget(targets_pb2.CreateTargetRequest(target=target), timeout=args.timeout)
    if args.json:
        print_json(message_json(reply.target))
    else:
        print(f"created target {reply.target.target_id} ({_where(reply.target)})")
    return 0


async def _update(args: argparse.Namespace, channel: Any) -> int:
    from skymesh.api.control.v1 import targets_pb2

    _name, line1, line2 = _read_tle(args.tle_file)
    reply = await _targets(channel).UpdateElements(
        targets_pb2.UpdateElementsRequest(
            target_id=args.target_id, tle_line1=line1, tle_line2=line2, elements_source=args.elements_source
        ),
        timeout=args.timeout,
    )
    _show(reply.target, args.json)
    return 0


async def _delete(args: argparse.Namespace, channel: Any) -> int:
    from skymesh.api.control.v1 import targets_pb2

    await _targets(channel).DeleteTarget(
        targets_pb2.DeleteTargetRequest(target_id=args.target_id), timeout=args.timeout
    )
    if args.json:
        print_json({"deleted": args.target_id})
    else:
        print(f"deleted target {args.target_id}")
    return 0


def _campaign_row(c: Any, count: int) -> list[str]:
    return [
        c.campaign_id,
        c.name,
        f"{c.priority_boost:+g}",
        time_text(c.start, c.HasField("start")),
        time_text(c.end, c.HasField("end")),
        str(count),
    ]


_CAMPAIGN_HEADERS = ["CAMPAIGN", "NAME", "BOOST", "START", "END", "TARGETS"]


async def _all_targets(args: argparse.Namespace, channel: Any, campaign_id: str = "") -> list[Any]:
    from skymesh.api.control.v1 import targets_pb2

    request = targets_pb2.ListTargetsRequest(campaign_id=campaign_id)
    return await follow(_targets(channel).ListTargets, request, "targets", timeout_s=args.timeout)


async def _campaign_list(args: argparse.Namespace, channel: Any) -> int:
    from skymesh.api.control.v1 import targets_pb2

    campaigns = await follow(
        _campaigns(channel).ListCampaigns, targets_pb2.ListCampaignsRequest(), "campaigns", timeout_s=args.timeout
    )
    counts: dict[str, int] = {}
    for t in await _all_targets(args, channel):
        counts[t.campaign_id] = counts.get(t.campaign_id, 0) + 1
    if args.json:
        print_json({"campaigns": [message_json(c) | {"target_count": counts.get(c.campaign_id, 0)} for c in campaigns]})
    else:
        print(table(_CAMPAIGN_HEADERS, [_campaign_row(c, counts.get(c.campaign_id, 0)) for c in campaigns]))
    return 0


async def _campaign_get(args: argparse.Namespace, channel: Any) -> int:
    from skymesh.api.control.v1 import targets_pb2
    from skymesh.core.errors import NotFound

    campaigns = await follow(
        _campaigns(channel).ListCampaigns, targets_pb2.ListCampaignsRequest(), "campaigns", timeout_s=args.timeout
    )
    found = next((c for c in campaigns if c.campaign_id == args.campaign_id), None)
    if found is None:
        raise NotFound(f"no campaign {args.campaign_id!r}", field="campaign_id")
    targets = await _all_targets(args, channel, args.campaign_id)
    if args.json:
        print_json(message_json(found) | {"targets": [message_json(t) for t in targets]})
    else:
        print(table(_CAMPAIGN_HEADERS, [_campaign_row(found, len(targets))]))
        if found.description:
            print(found.description)
        print()
        print(table(_HEADERS, [_row(t) for t in targets]))
    return 0


async def _campaign_create(args: argparse.Namespace, channel: Any) -> int:
    from skymesh.api.control.v1 import targets_pb2
    from skymesh.api.convert import timestamp_from_datetime

    campaign = targets_pb2.Campaign(
        campaign_id=args.campaign_id,
        name=args.name,
        description=args.description,
        priority_boost=args.priority_boost,
    )
    if args.start:
        campaign.start.CopyFrom(timestamp_from_datetime(parse_time(args.start, "--start")))
    if args.end:
        campaign.end.CopyFrom(timestamp_from_datetime(parse_time(args.end, "--end")))
    reply = await _campaigns(channel).CreateCampaign(
        targets_pb2.CreateCampaignRequest(campaign=campaign), timeout=args.timeout
    )
    if args.json:
        print_json(message_json(reply.campaign))
    else:
        print(f"created campaign {reply.campaign.campaign_id}")
    return 0


async def _campaign_update(args: argparse.Namespace, channel: Any) -> int:
    from skymesh.api.control.v1 import targets_pb2
    from skymesh.api.convert import timestamp_from_datetime
    from skymesh.core.errors import InvalidArgument

    campaign = targets_pb2.Campaign(campaign_id=args.campaign_id)
    paths = []
    for name in ("name", "description", "priority_boost"):
        value = getattr(args, name)
        if value is not None:
            setattr(campaign, name, value)
            paths.append(name)
    for name, option in (("start", "--start"), ("end", "--end")):
        text = getattr(args, name)
        if text is None:
            continue
        paths.append(name)
        if text.strip().lower() != "none":  # unset on the wire: cleared
            getattr(campaign, name).CopyFrom(timestamp_from_datetime(parse_time(text, option)))
    if not paths:
        raise InvalidArgument("nothing to change: give at least one option (--name, --priority-boost, ...)", field="")
    request = targets_pb2.UpdateCampaignRequest(campaign=campaign)
    request.update_mask.paths.extend(paths)
    reply = await _campaigns(channel).UpdateCampaign(request, timeout=args.timeout)
    if args.json:
        print_json(message_json(reply.campaign))
    else:
        print(
            table(
                _CAMPAIGN_HEADERS,
                [_campaign_row(reply.campaign, len(await _all_targets(args, channel, args.campaign_id)))],
            )
        )
    return 0


async def _campaign_delete(args: argparse.Namespace, channel: Any) -> int:
    from skymesh.api.control.v1 import targets_pb2
    from skymesh.core.errors import InvalidArgument

    if not args.yes:
        raise InvalidArgument(f"removing campaign {args.campaign_id} is for good: add --yes", field="--yes")
    reply = await _campaigns(channel).DeleteCampaign(
        targets_pb2.DeleteCampaignRequest(campaign_id=args.campaign_id), timeout=args.timeout
    )
    if args.json:
        print_json(message_json(reply) | {"campaign_id": args.campaign_id})
    else:
        print(f"deleted campaign {args.campaign_id}: {reply.released_target_count} target(s) now in no campaign")
    return 0
