"""TargetService and CampaignService: targets (TLEs validated with `skymesh.astro.tle.parse_tle`, every element set
kept in the history) and campaigns (created, listed, updated by field mask, deleted: their targets stay, in no
campaign). Changes wake the planner."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any

import grpc

from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import targets_pb2, targets_pb2_grpc
from skymesh.api.convert import spacecraft_forecast_to_proto, target_from_proto
from skymesh.api.errors import grpc_errors
from skymesh.astro.tle import parse_tle
from skymesh.core.errors import InvalidArgument, InvalidTLE
from skymesh.core.ids import check_id
from skymesh.core.model import SatelliteTarget
from skymesh.server.auth import current_actor
from skymesh.server.control.paging import page_request
from skymesh.server.db import Repository
from skymesh.server.db.campaigns import UPDATABLE_CAMPAIGN_FIELDS
from skymesh.server.db.records import TargetRecord
from skymesh.server.dispatch import Dispatcher
from skymesh.server.wire import campaign_from_proto, campaign_to_proto, target_record_to_proto

__all__ = ["CampaignServicer", "TargetServicer"]

Ctx = grpc.aio.ServicerContext[Any, Any]

# ListTargetsRequest.kind -> the repository's `satellite` filter (None: every kind).
_KINDS: dict[str, bool | None] = {"": None, "satellite": True, "celestial": False}


def _check_tle(line1: str, line2: str, name: str, field: str) -> tuple[int, datetime]:
    """(norad_id, epoch) of a valid TLE; InvalidTLE names the field under `field`."""
    try:
        tle = parse_tle(line1, line2, name)
    except InvalidTLE as exc:
        exc.field = f"{field}.{exc.field}" if exc.field else field
        raise
    return tle.norad_id, tle.epoch


# Converted listed targets kept at most (a catalogue larger than this converts the rest each time).
_MAX_KEPT_PROTOS = 100_000


class TargetServicer(targets_pb2_grpc.TargetServiceServicer):
    def __init__(self, repo: Repository, dispatcher: Dispatcher, on_change: Callable[[str], None]) -> None:
        self._repo = repo
        self._dispatcher = dispatcher
        self._on_change = on_change
        # Each listed record's message, by target id, with the record it was made from: the catalogue hands out
        # the same record objects until a target changes, so an identical record is an identical message (500
        # conversions were a few milliseconds of every ranked list). A changed target is a new record: converted.
        self._protos: dict[str, tuple[TargetRecord, common_pb2.Target]] = {}

    def _listed(self, rec: TargetRecord) -> common_pb2.Target:
        kept = self._protos.get(rec.target.target_id)
        if kept is not None and kept[0] is rec:
            return kept[1]
        msg = target_record_to_proto(rec)
        if len(self._protos) >= _MAX_KEPT_PROTOS:
            self._protos.clear()
        self._protos[rec.target.target_id] = (rec, msg)
        return msg

    @grpc_errors
    async def CreateTarget(
        self, request: targets_pb2.CreateTargetRequest, context: Ctx
    ) -> targets_pb2.CreateTargetResponse:
        check_id(request.target.target_id, field="target.target_id")
        if request.target.campaign_id:
            check_id(request.target.campaign_id, field="target.campaign_id")
        target = target_from_proto(request.target)
        epoch = None
        if isinstance(target, SatelliteTarget):
            norad_id, epoch = _check_tle(target.tle_line1, target.tle_line2, target.name, "target.satellite")
            if target.norad_id and target.norad_id != norad_id:
                raise InvalidArgument(
                    f"{target.norad_id} differs from the TLE's catalog number {norad_id}",
                    field="target.satellite.norad_id",
                )
            target = dataclasses.replace(target, norad_id=norad_id)
        rec = await self._repo.create_target(
            target,
            campaign_id=request.target.campaign_id,
            elements_source=request.target.satellite.elements_source if epoch else "",
            elements_epoch=epoch,
            actor=current_actor(),
        )
        self._on_change("target created")
        return targets_pb2.CreateTargetResponse(target=target_record_to_proto(rec))

    @grpc_errors
    async def GetTarget(self, request: targets_pb2.GetTargetRequest, context: Ctx) -> targets_pb2.GetTargetResponse:
        check_id(request.target_id, field="target_id")
        rec = await self._repo.get_target(request.target_id)
        out = targets_pb2.GetTargetResponse(target=target_record_to_proto(rec))
        if rec.spacecraft_forecast is not None:
            out.spacecraft_forecast.CopyFrom(spacecraft_forecast_to_proto(rec.spacecraft_forecast))
        return out

    @grpc_errors
    async def ListTargets(
        self, request: targets_pb2.ListTargetsRequest, context: Ctx
    ) -> targets_pb2.ListTargetsResponse:
        if request.campaign_id:
            check_id(request.campaign_id, field="campaign_id")
        if request.kind not in _KINDS:
            raise InvalidArgument("must be 'satellite', 'celestial' or empty", field="kind")
        # The kind is part of what a page token is bound to (and absent from it when not set: older tokens hold).
        bound = f"targets|{request.campaign_id}" + (f"|{request.kind}" if request.kind else "")
        if request.known_version < 0:
            raise InvalidArgument("must not be negative", field="known_version")
        page = page_request(request.page_size, request.page_token, bound, what="targets")
        catalogue = await self._repo.target_catalogue()
        if catalogue.version and request.known_version == catalogue.version:
            # A poller's check: one version read, nothing listed (version 0 is "no version": never unchanged).
            return targets_pb2.ListTargetsResponse(catalogue_version=catalogue.version, unchanged=True)
        records, token = page.finish(
            await self._repo.list_targets(
                request.campaign_id,
                after=page.after[0] if page.after else "",
                limit=page.fetch,
                satellite=_KINDS[request.kind],
                catalogue=catalogue,
            ),
            lambda r: (r.target.target_id,),
        )
        return targets_pb2.ListTargetsResponse(
            targets=[self._listed(r) for r in records],
            spacecraft_forecasts=[
                spacecraft_forecast_to_proto(r.spacecraft_forecast) for r in records if r.spacecraft_forecast
            ],
            next_page_token=token,
            catalogue_version=catalogue.version,
        )

    @grpc_errors
    async def UpdateElements(
        self, request: targets_pb2.UpdateElementsRequest, context: Ctx
    ) -> targets_pb2.UpdateElementsResponse:
        check_id(request.target_id, field="target_id")
        current = await self._repo.get_target(request.target_id)
        if not isinstance(current.target, SatelliteTarget):
            raise InvalidArgument("target is not a satellite", field="target_id")
        norad_id, epoch = _check_tle(request.tle_line1, request.tle_line2, current.target.name, "tle")
        if norad_id != current.target.norad_id:
            raise InvalidArgument(
                f"catalog number {norad_id} differs from the target's {current.target.norad_id}", field="tle_line1"
            )
        rec = await self._repo.update_elements(
            request.target_id,
            request.tle_line1.strip(),
            request.tle_line2.strip(),
            source=request.elements_source,
            epoch=epoch,
            actor=current_actor(),
        )
        # Agents track from the elements in their stored schedule: re-send it to every station with a live job.
        for station_id in await self._repo.bump_schedules_for_target(request.target_id):
            await self._dispatcher.push_schedule(station_id)
        self._on_change("elements updated")
        return targets_pb2.UpdateElementsResponse(target=target_record_to_proto(rec))

    @grpc_errors
    async def DeleteTarget(
        self, request: targets_pb2.DeleteTargetRequest, context: Ctx
    ) -> targets_pb2.DeleteTargetResponse:
        check_id(request.target_id, field="target_id")
        await self._repo.delete_target(request.target_id, actor=current_actor())
        self._on_change("target deleted")
        return targets_pb2.DeleteTargetResponse()


class CampaignServicer(targets_pb2_grpc.CampaignServiceServicer):
    def __init__(self, repo: Repository, on_change: Callable[[str], None]) -> None:
        self._repo = repo
        self._on_change = on_change

    @grpc_errors
    async def CreateCampaign(
        self, request: targets_pb2.CreateCampaignRequest, context: Ctx
    ) -> targets_pb2.CreateCampaignResponse:
        check_id(request.campaign.campaign_id, field="campaign.campaign_id")
        rec = await self._repo.create_campaign(campaign_from_proto(request.campaign), actor=current_actor())
        self._on_change("campaign created")
        return targets_pb2.CreateCampaignResponse(campaign=campaign_to_proto(rec))

    @grpc_errors
    async def ListCampaigns(
        self, request: targets_pb2.ListCampaignsRequest, context: Ctx
    ) -> targets_pb2.ListCampaignsResponse:
        page = page_request(request.page_size, request.page_token, "campaigns", what="campaigns")
        records, token = page.finish(
            await self._repo.list_campaigns(after=page.after[0] if page.after else "", limit=page.fetch),
            lambda c: (c.campaign_id,),
        )
        return targets_pb2.ListCampaignsResponse(
            campaigns=[campaign_to_proto(c) for c in records], next_page_token=token
        )

    @grpc_errors
    async def UpdateCampaign(
        self, request: targets_pb2.UpdateCampaignRequest, context: Ctx
    ) -> targets_pb2.UpdateCampaignResponse:
        check_id(request.campaign.campaign_id, field="campaign.campaign_id")
        paths = list(request.update_mask.paths) or list(UPDATABLE_CAMPAIGN_FIELDS)
        if len(set(paths)) != len(paths):
            raise InvalidArgument("names a field twice", field="update_mask.paths")
        campaign = campaign_from_proto(request.campaign)  # every value checked as on creation
        if "name" in paths and not request.campaign.name:
            raise InvalidArgument("must not be empty", field="campaign.name")
        rec = await self._repo.update_campaign(campaign, fields=paths, actor=current_actor())
        self._on_change("campaign updated")
        return targets_pb2.UpdateCampaignResponse(campaign=campaign_to_proto(rec))

    @grpc_errors
    async def DeleteCampaign(
        self, request: targets_pb2.DeleteCampaignRequest, context: Ctx
    ) -> targets_pb2.DeleteCampaignResponse:
        check_id(request.campaign_id, field="campaign_id")
        released = await self._repo.delete_campaign(request.campaign_id, actor=current_actor())
        self._on_change("campaign deleted")
        return targets_pb2.DeleteCampaignResponse(released_target_count=released)
