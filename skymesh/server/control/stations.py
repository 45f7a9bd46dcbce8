"""StationService: the station registry and station API keys (issue returns the secret once; revoke ends streams),
weather, retiring a station (DeleteStation: keys revoked, stream ended, open work ended, history kept), and the
telemetry it sent (ListTelemetry: samples keyset-paged by (batch at, batch id, sample index))."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from skymesh.api.control.v1 import stations_pb2, stations_pb2_grpc
from skymesh.api.convert import (
    station_from_proto,
    station_to_proto,
    timestamp_from_datetime,
    timestamp_to_datetime,
)
from skymesh.api.errors import grpc_errors
from skymesh.core.errors import InvalidArgument, Unauthenticated
from skymesh.core.ids import check_id
from skymesh.core.model import StationKind, StationState, Weather
from skymesh.server.auth import StationKeys, current_actor
from skymesh.server.control.paging import encode_token, key_time, page_request
from skymesh.server.db import Repository
from skymesh.server.db.records import StationRecord
from skymesh.server.db.telemetry import TelemetryKey
from skymesh.server.liveness import Liveness
from skymesh.server.sessions import SessionHub

__all__ = ["StationServicer"]

Ctx = grpc.aio.ServicerContext[Any, Any]


def _station_msg(rec: StationRecord, liveness: Liveness) -> Any:
    msg = station_to_proto(rec.station)
    msg.clock_offset_s = rec.clock_offset_s
    last_seen = liveness.last_seen(rec.station.station_id) or rec.last_seen
    if last_seen is not None:
        msg.last_seen.CopyFrom(timestamp_from_datetime(last_seen))
    return msg


_MAX_CHANNELS = 64
_MAX_CHANNEL_CHARS = 64


def _telemetry_key(parts: tuple[str, ...]) -> TelemetryKey:
    try:
        row_id, index = int(parts[1]), int(parts[2])
    except ValueError:
        raise InvalidArgument("is not a page token this server issued", field="page_token") from None
    return key_time(parts[0]), row_id, index


def _key_parts(key: TelemetryKey) -> tuple[str, str, str]:
    return key[0].isoformat(), str(key[1]), str(key[2])


# Station fields UpdateStation may change, by kind of field (how a value is carried over from the request).
_UPDATABLE_MESSAGES = ("location", "horizon_mask", "rotator")
_UPDATABLE_LISTS = ("bands", "filters", "unavailable")
_UPDATABLE_SCALARS = ("name", "min_elevation_deg", "slew_rate_deg_s", "aperture_m", "limiting_magnitude", "fov_deg")
UPDATABLE = _UPDATABLE_SCALARS + _UPDATABLE_MESSAGES + _UPDATABLE_LISTS


def _merge(current: Any, new: Any, paths: list[str]) -> None:
    """Copy the fields `paths` of `new` into `current` (both common.v1.Station), unset ones included."""
    for path in paths:
        current.ClearField(path)
        if path in _UPDATABLE_LISTS:
            getattr(current, path).extend(getattr(new, path))
        elif path in _UPDATABLE_MESSAGES:
            if new.HasField(path):
                getattr(current, path).CopyFrom(getattr(new, path))
        else:
            setattr(current, path, getattr(new, path))


class StationServicer(stations_pb2_grpc.StationServiceServicer):
    def __init__(
        self,
        repo: Repository,
        hub: SessionHub,
        liveness: Liveness,
        on_change: Callable[[str], None] = lambda _: None,
        *,
        station_keys: StationKeys | None = None,
    ) -> None:
        self._station_keys = station_keys  # verified agent keys: forgotten at once on revocation or deletion here
        self._repo = repo
        self._hub = hub
        self._liveness = liveness
        self._on_change = on_change

    @grpc_errors
    async def CreateStation(
        self, request: stations_pb2.CreateStationRequest, context: Ctx
    ) -> stations_pb2.CreateStationResponse:
        check_id(request.station.station_id, field="station.station_id")
        station = station_from_proto(request.station)
        rec = await self._repo.create_station(station, actor=current_actor())
        return stations_pb2.CreateStationResponse(station=_station_msg(rec, self._liveness))

    @grpc_errors
    async def GetStation(
        self, request: stations_pb2.GetStationRequest, context: Ctx
    ) -> stations_pb2.GetStationResponse:
        check_id(request.station_id, field="station_id")
        return stations_pb2.GetStationResponse(
            station=_station_msg(await self._repo.get_station(request.station_id), self._liveness)
        )

    @grpc_errors
    async def UpdateStation(
        self, request: stations_pb2.UpdateStationRequest, context: Ctx
    ) -> stations_pb2.UpdateStationResponse:
        check_id(request.station.station_id, field="station.station_id")
        paths = list(request.update_mask.paths) or list(UPDATABLE)
        for i, path in enumerate(paths):
            if path not in UPDATABLE:
                raise InvalidArgument(
                    f"{path!r} cannot be updated here (updatable: {', '.join(UPDATABLE)})",
                    field=f"update_mask.paths[{i}]",
                )
        current = await self._repo.get_station(request.station.station_id)
        merged = station_to_proto(current.station)
        _merge(merged, request.station, paths)
        station = station_from_proto(merged)  # the whole result validated, as on creation
        rec = await self._repo.update_station(station, fields=paths, actor=current_actor())
        self._on_change(f"station {station.station_id} updated")
        return stations_pb2.UpdateStationResponse(station=_station_msg(rec, self._liveness))

    @grpc_errors
    async def ListStations(
        self, request: stations_pb2.ListStationsRequest, context: Ctx
    ) -> stations_pb2.ListStationsResponse:
        try:
            kind = StationKind(request.kind) if request.kind else None
        except ValueError:
            raise InvalidArgument(f"unknown kind {request.kind}", field="kind") from None
        try:
            state = StationState(request.state) if request.state else None
        except ValueError:
            raise InvalidArgument(f"unknown state {request.state}", field="state") from None
        page = page_request(
            request.page_size, request.page_token, f"stations|{request.kind}|{request.state}", what="stations"
        )
        records, token = page.finish(
            await self._repo.list_stations(kind, state, after=page.after[0] if page.after else "", limit=page.fetch),
            lambda r: (r.station.station_id,),
        )
        return stations_pb2.ListStationsResponse(
            stations=[_station_msg(r, self._liveness) for r in records], next_page_token=token
        )

    @grpc_errors
    async def IssueStationKey(
        self, request: stations_pb2.IssueStationKeyRequest, context: Ctx
    ) -> stations_pb2.IssueStationKeyResponse:
        check_id(request.station_id, field="station_id")
        issued = await self._repo.issue_station_key(request.station_id, actor=current_actor())
        return stations_pb2.IssueStationKeyResponse(key_id=issued.key_id, api_key=issued.api_key)

    @grpc_errors
    async def RevokeStationKey(
        self, request: stations_pb2.RevokeStationKeyRequest, context: Ctx
    ) -> stations_pb2.RevokeStationKeyResponse:
        if not request.key_id:
            raise InvalidArgument("must not be empty", field="key_id")
        await self._repo.revoke_station_key(request.key_id, actor=current_actor())
        if self._station_keys is not None:
            self._station_keys.clear()
        self._hub.close_key(request.key_id, Unauthenticated("station key revoked", reason="KEY_REVOKED"))
        return stations_pb2.RevokeStationKeyResponse()

    @grpc_errors
    async def DeleteStation(
        self, request: stations_pb2.DeleteStationRequest, context: Ctx
    ) -> stations_pb2.DeleteStationResponse:
        check_id(request.station_id, field="station_id")
        deletion = await self._repo.delete_station(request.station_id, actor=current_actor())
        if self._station_keys is not None:
            self._station_keys.clear()
        # Its stream here ends now; one on another replica ends at that replica's next key re-check (key_recheck_s).
        session = self._hub.get(request.station_id)
        if session is not None:
            session.close(Unauthenticated("station deleted", reason="STATION_DELETED"))
        self._on_change(f"station {request.station_id} deleted")
        return stations_pb2.DeleteStationResponse(
            revoked_key_count=len(deletion.revoked_key_ids), cancelled_job_count=deletion.ended_jobs
        )

    @grpc_errors
    async def SetStationWeather(
        self, request: stations_pb2.SetStationWeatherRequest, context: Ctx
    ) -> stations_pb2.SetStationWeatherResponse:
        check_id(request.station_id, field="station_id")
        try:
            weather = Weather(request.weather)
        except ValueError:
            raise InvalidArgument(f"unknown weather {request.weather}", field="weather") from None
        before = await self._repo.get_station(request.station_id)
        rec = await self._repo.set_station_weather(request.station_id, weather, actor=current_actor())
        if before.station.weather != weather:
            self._on_change(f"weather at {request.station_id}: {weather.name}")
        return stations_pb2.SetStationWeatherResponse(station=_station_msg(rec, self._liveness))

    @grpc_errors
    async def ListTelemetry(
        self, request: stations_pb2.ListTelemetryRequest, context: Ctx
    ) -> stations_pb2.ListTelemetryResponse:
        check_id(request.station_id, field="station_id")
        if len(request.channels) > _MAX_CHANNELS:
            raise InvalidArgument(f"at most {_MAX_CHANNELS} channels", field="channels")
        for i, channel in enumerate(request.channels):
            if not channel or len(channel) > _MAX_CHANNEL_CHARS:
                raise InvalidArgument(f"must be 1-{_MAX_CHANNEL_CHARS} characters", field=f"channels[{i}]")
        after = timestamp_to_datetime(request.after, "after") if request.HasField("after") else None
        before = timestamp_to_datetime(request.before, "before") if request.HasField("before") else None
        if after is not None and before is not None and before <= after:
            raise InvalidArgument("must be later than after", field="before")
        channels = sorted(set(request.channels))
        query = "|".join(
            ["telemetry", request.station_id, ",".join(channels)]
            + [t.isoformat() if t is not None else "" for t in (after, before)]
        )
        page = page_request(request.page_size, request.page_token, query, what="samples", key_length=3, default=100)
        samples, next_key = await self._repo.list_telemetry(
            request.station_id,
            channels=channels,
            after=after,
            before=before,
            after_key=_telemetry_key(page.after) if page.after else None,
            limit=page.limit,
        )
        return stations_pb2.ListTelemetryResponse(
            samples=[
                stations_pb2.StationTelemetrySample(
                    at=timestamp_from_datetime(x.at), values=x.values, boot_id=x.boot_id
                )
                for x in samples
            ],
            next_page_token=encode_token(_key_parts(next_key), query) if next_key is not None else "",
        )
