"""Repository part for the registry: stations, station keys, users and tokens, targets (with TLE history), campaigns.

Keys and tokens look like "smk_<key_id>_<secret>" / "smu_<token_id>_<secret>"; only the SHA-256 of the secret is
stored and it is compared in constant time.
"""

from __future__ import annotations

import secrets
from bisect import bisect_right
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from skymesh.core.errors import AlreadyExists, InvalidArgument, NotFound, Unauthenticated
from skymesh.core.ids import check_id
from skymesh.core.jobs import JobState
from skymesh.core.model import (
    CelestialTarget,
    SatelliteTarget,
    SpacecraftForecast,
    Station,
    StationKind,
    StationState,
    Target,
    TargetKind,
    Weather,
)
from skymesh.server.db.base import (
    RepoBase,
    forecast_to_json,
    hash_secret,
    new_secret,
    profile_to_json,
    secrets_match,
)
from skymesh.server.db.models import (
    ApiTokenRow,
    CampaignRow,
    CatalogueVersionRow,
    CommandRow,
    JobRow,
    StationKeyRow,
    StationRow,
    TargetAliasRow,
    TargetRow,
    TleRow,
    UserRow,
)
from skymesh.server.db.records import (
    CampaignRecord,
    CommandStateValue,
    IssuedKey,
    Role,
    StationDeletion,
    StationRecord,
    TargetCatalogue,
    TargetRecord,
    TleRecord,
    UserListing,
    UserRecord,
    UserTokenRecord,
)
from skymesh.server.db.work import CAUSE_ABORTED_BY_OPERATOR, UNSTARTED_STATES

__all__ = ["RegistryRepo"]

STATION_KEY_PREFIX = "smk_"
USER_TOKEN_PREFIX = "smu_"
# Compared against when a key id is unknown, so a miss costs the same as a wrong secret.
_DUMMY_HASH = hash_secret("no-such-key")
_KEYS_PER_READ = 1000  # key ids per IN list (well under SQLite's bound on variables)


def split_credential(value: str, prefix: str) -> tuple[str, str]:
    """ "smk_<id>_<secret>" -> (id, secret); raises Unauthenticated on anything else."""
    if not value.startswith(prefix):
        raise Unauthenticated("malformed credential")
    key_id, sep, secret = value[len(prefix) :].partition("_")
    if not sep or not key_id or not secret:
        raise Unauthenticated("malformed credential")
    return key_id, secret


class RegistryRepo(RepoBase):
    # The target catalogue last read (`target_catalogue`); per repository, so per server process.
    _catalogue: TargetCatalogue | None = None

    # ---------------------------------------------------------------------------------------------- stations

    async def create_station(self, station: Station, *, actor: str = "system") -> StationRecord:
        now = self._now()
        async with self._tx("create_station") as s:
            existing = await s.get(StationRow, station.station_id)
            if existing is not None:
                why = "was deleted; station ids are not reused" if existing.deleted_at else "exists"
                raise AlreadyExists(f"station {station.station_id!r} {why}", field="station.station_id")
            row = StationRow(
                station_id=station.station_id,
                state=int(StationState.OFFLINE),
                state_changed_at=now,
                created_at=now,
                clock_offset_s=0.0,
                agent_version="",
                capabilities={},
                command_seq=0,
                **self._station_row_values(station),
            )
            s.add(row)
            self._audit(s, now, actor, "create_station", station.station_id)
            await s.flush()
            return self._station(row)

    async def update_station(
        self, station: Station, *, fields: Sequence[str] = (), actor: str = "system"
    ) -> StationRecord:
        """Replace a live station's description with `station` (same id and kind); its state, liveness, keys and
        history stay. `fields` only goes to the audit log. NotFound for an unknown or deleted station."""
        now = self._now()
        async with self._tx("update_station") as s:
            row = await self._live_station(s, station.station_id)
            if int(station.kind) != row.kind:
                raise InvalidArgument("cannot change: retire the station and register a new one", field="station.kind")
            for key, value in self._station_row_values(station).items():
                if key != "weather":  # its own RPC, its own audit entry
                    setattr(row, key, value)
            self._audit(s, now, actor, "update_station", station.station_id, fields=",".join(fields))
            await s.flush()
            return self._station(row)

    async def get_station(self, station_id: str) -> StationRecord:
        async with self._tx("get_station") as s:
            return self._station(await self._live_station(s, station_id))

    @staticmethod
    async def _live_station(s: AsyncSession, station_id: str) -> StationRow:
        row = await s.get(StationRow, station_id)
        if row is None or row.deleted_at is not None:
            raise NotFound(f"no station {station_id!r}", field="station_id")
        return row

    async def slew_rates(
        self, items: Sequence[tuple[str, str, int, object]], epochs: Sequence[int | None] | None = None
    ) -> list[float | NotFound]:
        """Each station's rotator slew rate (deg/s) for many stations, items (station_id, unused, unused, unused),
        in one read: the health detectors need it at a station's first telemetry, which a connect storm makes
        thousands at once (`GroupCommitter`; `epochs` is unused). NotFound for a station deleted or unknown."""
        ids = sorted({item[0] for item in items})
        rates: dict[str, float] = {}
        async with self._tx("slew_rates") as s:
            for start in range(0, len(ids), _KEYS_PER_READ):
                rows = await s.execute(
                    select(StationRow.station_id, StationRow.slew_rate_deg_s).where(
                        StationRow.station_id.in_(ids[start : start + _KEYS_PER_READ]), StationRow.deleted_at.is_(None)
                    )
                )
                rates.update((row[0], float(row[1])) for row in rows)
        return [
            rates[item[0]] if item[0] in rates else NotFound(f"no station {item[0]!r}", field="station_id")
            for item in items
        ]

    async def list_stations(
        self,
        kind: StationKind | None = None,
        state: StationState | None = None,
        *,
        after: str = "",
        limit: int | None = None,
    ) -> list[StationRecord]:
        """Live stations by id; `after`/`limit` page them (ids greater than `after`, at most `limit`)."""
        query = select(StationRow).where(StationRow.deleted_at.is_(None)).order_by(StationRow.station_id)
        if after:
            query = query.where(StationRow.station_id > after)
        if limit is not None:
            query = query.limit(limit)
        if kind is not None:
            query = query.where(StationRow.kind == int(kind))
        if state is not None:
            query = query.where(StationRow.state == int(state))
        async with self._tx("list_stations") as s:
            return [self._station(r) for r in (await s.scalars(query)).all()]

    # ---------------------------------------------------------------------------------------------- station keys

    async def set_station_weather(self, station_id: str, weather: Weather, *, actor: str = "system") -> StationRecord:
        """Record the weather at a station; returns the station. Unknown station: NotFound."""
        async with self._tx("set_station_weather") as s:
            row = await self._live_station(s, station_id)
            row.weather = int(weather)
            self._audit(s, self._now(), actor, "set_station_weather", station_id, weather=weather.name)
            return self._station(row)

    async def issue_station_key(self, station_id: str, *, actor: str = "system") -> IssuedKey:
        now = self._now()
        key_id = secrets.token_hex(8)
        secret = new_secret()
        async with self._tx("issue_station_key") as s:
            await self._live_station(s, station_id)
            s.add(
                StationKeyRow(key_id=key_id, station_id=station_id, secret_sha256=hash_secret(secret), created_at=now)
            )
            self._audit(s, now, actor, "issue_station_key", station_id, key_id=key_id)
        return IssuedKey(key_id, station_id, f"{STATION_KEY_PREFIX}{key_id}_{secret}")

    async def revoke_station_key(self, key_id: str, *, actor: str = "system") -> str:
        """Revoke a key; returns its station id. Revoking twice is fine."""
        now = self._now()
        async with self._tx("revoke_station_key") as s:
            row = await s.get(StationKeyRow, key_id)
            if row is None:
                raise NotFound(f"no key {key_id!r}", field="key_id")
            if row.revoked_at is None:
                row.revoked_at = now
                self._audit(s, now, actor, "revoke_station_key", row.station_id, key_id=key_id)
            return row.station_id

    async def delete_station(self, station_id: str, *, actor: str = "system") -> StationDeletion:
        """Retire a station in one transaction: revoke its keys, end its open jobs and commands, hide it.

        Unstarted jobs become CANCELLED and a running one ABORTED (the station can no longer report it), both with
        cause ABORTED_BY_OPERATOR; open commands become CANCELLED. The row stays for the history. NotFound if there
        is no such station or it is already deleted.
        """
        now = self._now()
        async with self._tx("delete_station") as s:
            row = await self._live_station(s, station_id)
            row.deleted_at = now
            row.state = int(StationState.OFFLINE)
            row.state_changed_at = now
            keys = (
                await s.scalars(
                    select(StationKeyRow).where(
                        StationKeyRow.station_id == station_id, StationKeyRow.revoked_at.is_(None)
                    )
                )
            ).all()
            for key in keys:
                key.revoked_at = now
            jobs = (
                await s.scalars(
                    select(JobRow).where(
                        JobRow.station_id == station_id,
                        JobRow.state.in_([int(x) for x in (*UNSTARTED_STATES, JobState.RUNNING)]),
                    )
                )
            ).all()
            for job in jobs:
                job.state = int(JobState.ABORTED if job.state == JobState.RUNNING else JobState.CANCELLED)
                job.cause = CAUSE_ABORTED_BY_OPERATOR
                job.detail = "station deleted"
                job.updated_at = now
            commands = (
                await s.scalars(
                    select(CommandRow).where(
                        CommandRow.station_id == station_id,
                        CommandRow.state.in_([int(c) for c in CommandStateValue if not c.terminal]),
                    )
                )
            ).all()
            for command in commands:
                command.state = int(CommandStateValue.CANCELLED)
                command.detail = "station deleted"
                command.updated_at = now
            key_ids = tuple(sorted(k.key_id for k in keys))
            self._audit(s, now, actor, "delete_station", station_id, keys=len(key_ids), jobs=len(jobs))
        return StationDeletion(station_id, key_ids, len(jobs), len(commands))

    async def authenticate_station(self, api_key: str) -> tuple[str, str]:
        """Check a station API key; returns (station_id, key_id) or raises Unauthenticated."""
        [answer] = await self._authenticate_stations([api_key])
        if isinstance(answer, Unauthenticated):
            raise answer
        return answer

    async def authenticate_stations(
        self, items: Sequence[tuple[str, str, int, str]], epochs: Sequence[int | None] | None = None
    ) -> list[tuple[str, str] | Unauthenticated]:
        """`authenticate_station` for many keys (unused, unused, unused, api_key) in one read: the agents of a
        reconnect storm share it (`GroupCommitter`; `epochs` is unused). Answers each in order."""
        return await self._authenticate_stations([key for _, _, _, key in items])

    async def _authenticate_stations(self, api_keys: Sequence[str]) -> list[tuple[str, str] | Unauthenticated]:
        split: list[tuple[str, str] | Unauthenticated] = []
        for api_key in api_keys:
            try:
                split.append(split_credential(api_key, STATION_KEY_PREFIX))
            except Unauthenticated as refused:
                split.append(refused)
        ids = sorted({part[0] for part in split if isinstance(part, tuple)})
        found: dict[str, tuple[str, str, bool]] = {}  # key_id -> (station_id, secret hash, usable)
        if ids:
            async with self._tx("authenticate_stations") as s:
                query = (
                    select(
                        StationKeyRow.key_id,
                        StationKeyRow.station_id,
                        StationKeyRow.secret_sha256,
                        StationKeyRow.revoked_at,
                        StationRow.deleted_at,
                    )
                    .select_from(StationKeyRow)
                    .join(StationRow, StationRow.station_id == StationKeyRow.station_id)
                    .where(StationKeyRow.key_id.in_(ids))
                )
                for key_id, station_id, digest, revoked_at, deleted_at in (await s.execute(query)).all():
                    usable = revoked_at is None and deleted_at is None
                    found[key_id] = (station_id, digest, usable)
        out: list[tuple[str, str] | Unauthenticated] = []
        for part in split:
            if isinstance(part, Unauthenticated):
                out.append(part)
                continue
            key_id, secret = part
            station_id, digest, usable = found.get(key_id, ("", _DUMMY_HASH, False))
            ok = secrets_match(secret, digest)  # also for an unknown key: the same work either way
            out.append((station_id, key_id) if ok and usable else Unauthenticated("invalid or revoked station key"))
        return out

    async def key_is_valid(self, key_id: str) -> bool:
        async with self._tx("key_is_valid") as s:
            row = await s.get(StationKeyRow, key_id)
            return row is not None and row.revoked_at is None

    async def keys_valid(self, key_ids: Collection[str]) -> set[str]:
        """Which of `key_ids` are issued and not revoked (`key_is_valid` for many), in one transaction: the open
        streams' periodic re-check costs one read for all of them, not one transaction per stream."""
        ids = sorted(key_ids)
        valid: set[str] = set()
        async with self._tx("keys_valid") as s:
            for start in range(0, len(ids), _KEYS_PER_READ):
                rows = await s.execute(
                    select(StationKeyRow.key_id).where(
                        StationKeyRow.key_id.in_(ids[start : start + _KEYS_PER_READ]),
                        StationKeyRow.revoked_at.is_(None),
                    )
                )
                valid.update(row[0] for row in rows)
        return valid

    # ---------------------------------------------------------------------------------------------- users

    async def create_user(self, user_id: str, role: Role, *, actor: str = "system") -> UserRecord:
        now = self._now()
        check_id(user_id, field="user_id")
        async with self._tx("create_user") as s:
            if await s.get(UserRow, user_id) is not None:
                raise AlreadyExists(f"user {user_id!r} exists", field="user_id")
            s.add(UserRow(user_id=user_id, role=role.name.lower(), created_at=now))
            self._audit(s, now, actor, "create_user", user_id, role=role.name)
            try:
                await s.flush()
            except IntegrityError as exc:  # created concurrently (two replicas bootstrapping the first admin)
                raise AlreadyExists(f"user {user_id!r} exists", field="user_id") from exc
        return UserRecord(user_id, role)

    async def count_users(self) -> int:
        async with self._tx("count_users") as s:
            return int(await s.scalar(select(func.count()).select_from(UserRow)) or 0)

    async def issue_user_token(self, user_id: str, *, actor: str = "system") -> str:
        now = self._now()
        token_id = secrets.token_hex(8)
        secret = new_secret()
        async with self._tx("issue_user_token") as s:
            if await s.get(UserRow, user_id) is None:
                raise NotFound(f"no user {user_id!r}", field="user_id")
            s.add(ApiTokenRow(token_id=token_id, user_id=user_id, secret_sha256=hash_secret(secret), created_at=now))
            self._audit(s, now, actor, "issue_user_token", user_id, token_id=token_id)
        return f"{USER_TOKEN_PREFIX}{token_id}_{secret}"

    async def list_users(self, *, user_id: str = "", after: str = "", limit: int | None = None) -> list[UserListing]:
        """Users by id (or just `user_id`) with their tokens; `after`/`limit` page them (ids greater than `after`)."""
        query = select(UserRow).order_by(UserRow.user_id)
        if user_id:
            query = query.where(UserRow.user_id == user_id)
        if after:
            query = query.where(UserRow.user_id > after)
        if limit is not None:
            query = query.limit(limit)
        async with self._tx("list_users") as s:
            users = (await s.scalars(query)).all()
            tokens_query = select(ApiTokenRow).order_by(ApiTokenRow.created_at, ApiTokenRow.token_id)
            if user_id or after or limit is not None:
                tokens_query = tokens_query.where(ApiTokenRow.user_id.in_([u.user_id for u in users]))
            tokens = (await s.scalars(tokens_query)).all()
        by_user: dict[str, list[UserTokenRecord]] = {}
        for t in tokens:
            by_user.setdefault(t.user_id, []).append(UserTokenRecord(t.token_id, t.created_at, t.revoked_at))
        return [
            UserListing(u.user_id, Role[u.role.upper()], u.created_at, tuple(by_user.get(u.user_id, ()))) for u in users
        ]

    async def revoke_user_token(self, token_id: str, *, actor: str = "system") -> str:
        """Revoke a user token; returns its user id. Revoking twice is fine; an unknown id is NotFound."""
        now = self._now()
        async with self._tx("revoke_user_token") as s:
            row = await s.get(ApiTokenRow, token_id)
            if row is None:
                raise NotFound(f"no token {token_id!r}", field="token_id")
            if row.revoked_at is None:
                row.revoked_at = now
                self._audit(s, now, actor, "revoke_user_token", row.user_id, token_id=token_id)
            return row.user_id

    async def authenticate_user(self, token: str) -> UserRecord:
        token_id, secret = split_credential(token, USER_TOKEN_PREFIX)
        async with self._tx("authenticate_user") as s:
            row = await s.get(ApiTokenRow, token_id)
            user = await s.get(UserRow, row.user_id) if row is not None else None
        ok = secrets_match(secret, row.secret_sha256 if row is not None else _DUMMY_HASH)
        if row is None or user is None or not ok or row.revoked_at is not None:
            raise Unauthenticated("invalid or revoked token")
        if row.expires_at is not None and row.expires_at <= self._now():
            raise Unauthenticated("session expired: log in again")
        return UserRecord(user.user_id, Role[user.role.upper()])

    # ---------------------------------------------------------------------------------------------- campaigns

    async def create_campaign(self, campaign: CampaignRecord, *, actor: str = "system") -> CampaignRecord:
        now = self._now()
        if not campaign.campaign_id:
            raise InvalidArgument("must not be empty", field="campaign.campaign_id")
        if campaign.start and campaign.end and campaign.end <= campaign.start:
            raise InvalidArgument("must be after start", field="campaign.end")
        async with self._tx("create_campaign") as s:
            if await s.get(CampaignRow, campaign.campaign_id) is not None:
                raise AlreadyExists(f"campaign {campaign.campaign_id!r} exists", field="campaign.campaign_id")
            s.add(
                CampaignRow(
                    campaign_id=campaign.campaign_id,
                    name=campaign.name or campaign.campaign_id,
                    description=campaign.description,
                    priority_boost=campaign.priority_boost,
                    start=campaign.start,
                    end=campaign.end,
                    created_at=now,
                )
            )
            self._audit(s, now, actor, "create_campaign", campaign.campaign_id)
        return campaign

    async def list_campaigns(self, *, after: str = "", limit: int | None = None) -> list[CampaignRecord]:
        """Campaigns by id; `after`/`limit` page them (ids greater than `after`, at most `limit`)."""
        query = select(CampaignRow).order_by(CampaignRow.campaign_id)
        if after:
            query = query.where(CampaignRow.campaign_id > after)
        if limit is not None:
            query = query.limit(limit)
        async with self._tx("list_campaigns") as s:
            rows = (await s.scalars(query)).all()
        return [CampaignRecord(r.campaign_id, r.name, r.description, r.priority_boost, r.start, r.end) for r in rows]

    # ---------------------------------------------------------------------------------------------- targets

    async def create_target(
        self,
        target: Target,
        *,
        campaign_id: str = "",
        elements_source: str = "",
        elements_epoch: datetime | None = None,
        actor: str = "system",
    ) -> TargetRecord:
        """Store a new target. For satellites, `elements_epoch` comes from the parsed TLE (the caller validates)."""
        now = self._now()
        async with self._tx("create_target") as s:
            existing = await s.get(TargetRow, target.target_id)
            if existing is not None and existing.deleted_at is None:
                raise AlreadyExists(f"target {target.target_id!r} exists", field="target.target_id")
            if campaign_id and await s.get(CampaignRow, campaign_id) is None:
                raise NotFound(f"no campaign {campaign_id!r}", field="target.campaign_id")
            if existing is not None:
                # Re-creating a deleted target: the id comes back to life with the new definition.
                await s.delete(existing)
                await s.flush()
            row = TargetRow(
                target_id=target.target_id,
                name=target.name,
                kind=int(target.kind),
                priority=target.priority,
                campaign_id=campaign_id or None,
                created_at=now,
                updated_at=now,
                filters=[],
            )
            if isinstance(target, SatelliteTarget):
                row.norad_id = target.norad_id
                row.band = target.band
                row.downlink_frequency_hz = target.downlink_frequency_hz
                row.min_elevation_deg = target.min_elevation_deg
                row.spacecraft = profile_to_json(target.spacecraft) if target.spacecraft is not None else None
                s.add(row)
                await s.flush()
                s.add(
                    TleRow(
                        target_id=target.target_id,
                        line1=target.tle_line1,
                        line2=target.tle_line2,
                        epoch=elements_epoch or now,
                        source=elements_source,
                        received_at=now,
                    )
                )
            else:
                assert isinstance(target, CelestialTarget)
                row.ra_deg = target.ra_deg
                row.dec_deg = target.dec_deg
                row.magnitude = target.magnitude
                row.filters = list(target.filters)
                row.exposure_s = target.exposure_s
                row.exposure_count = target.exposure_count
                row.max_airmass = target.max_airmass
                row.min_moon_separation_deg = target.min_moon_separation_deg
                row.cadence_s = target.cadence_s
                row.max_hour_angle_h = target.max_hour_angle_h
                row.max_moon_illumination = target.max_moon_illumination
                s.add(row)
                await s.flush()
                for i, alias in enumerate(dict.fromkeys(target.aliases)):
                    taken = await s.get(TargetAliasRow, alias)
                    if taken is not None and taken.target_id != target.target_id:
                        raise AlreadyExists(
                            f"alias {alias!r} belongs to target {taken.target_id!r}", field=f"target.aliases[{i}]"
                        )
                    if taken is None:
                        s.add(TargetAliasRow(alias=alias, target_id=target.target_id))
            self._audit(s, now, actor, "create_target", target.target_id)
            try:
                await s.flush()
            except IntegrityError as exc:
                raise AlreadyExists("target conflicts with an existing one", field="target") from exc
            return await self._target_record(s, row)

    async def get_target(self, target_id: str) -> TargetRecord:
        async with self._tx("get_target") as s:
            row = await s.get(TargetRow, target_id)
            if row is None or row.deleted_at is not None:
                raise NotFound(f"no target {target_id!r}", field="target_id")
            return await self._target_record(s, row)

    async def list_targets(
        self,
        campaign_id: str = "",
        *,
        after: str = "",
        limit: int | None = None,
        satellite: bool | None = None,
        catalogue: TargetCatalogue | None = None,
    ) -> list[TargetRecord]:
        """Live targets by id; `after`/`limit` page them (ids greater than `after`, at most `limit`); `satellite`
        True lists satellites only, False celestial targets only. Read from `catalogue`, by default the current one
        (`target_catalogue`)."""
        catalogue = catalogue or await self.target_catalogue()
        records: Sequence[TargetRecord] = catalogue.records[bisect_right(catalogue.ids, after) if after else 0 :]
        if satellite is not None:
            records = [r for r in records if isinstance(r.target, SatelliteTarget) == satellite]
        if campaign_id:
            records = [r for r in records if r.campaign_id == campaign_id]
        return list(records[:limit] if limit is not None else records)

    async def target_catalogue(self) -> TargetCatalogue:
        """Every live target, by id, with the catalogue version it is current at.

        The list is read again only when the version has moved: every committed change to a target, its aliases or
        its element sets moves it (database triggers, on every replica), and the version is read before the list,
        so a list kept under a version holds at least every change up to it. The same version gives the same
        records (the same objects), which callers may key their own conversions on."""
        async with self._tx("target_catalogue") as s:
            version = await s.scalar(select(CatalogueVersionRow.version).where(CatalogueVersionRow.id == 1))
            kept = self._catalogue
            if version is not None and kept is not None and kept.version == version:
                return kept
            ids = select(TargetRow.target_id).where(TargetRow.deleted_at.is_(None))
            rows = (await s.execute(ids.with_only_columns(*TargetRow.__table__.c))).all()
            records = await self._target_records(s, rows, ids)
        records.sort(key=lambda r: r.target.target_id)
        catalogue = TargetCatalogue(version or 0, tuple(records), tuple(r.target.target_id for r in records))
        # Concurrent readers may finish out of order: keep the newest version read.
        if version is not None and (self._catalogue is None or self._catalogue.version <= version):
            self._catalogue = catalogue
        return catalogue

    async def update_elements(
        self, target_id: str, line1: str, line2: str, *, source: str, epoch: datetime, actor: str = "system"
    ) -> TargetRecord:
        now = self._now()
        async with self._tx("update_elements") as s:
            row = await s.get(TargetRow, target_id)
            if row is None or row.deleted_at is not None:
                raise NotFound(f"no target {target_id!r}", field="target_id")
            if row.kind != TargetKind.SATELLITE:
                raise InvalidArgument("target is not a satellite", field="target_id")
            s.add(TleRow(target_id=target_id, line1=line1, line2=line2, epoch=epoch, source=source, received_at=now))
            row.updated_at = now
            self._audit(s, now, actor, "update_elements", target_id, source=source, epoch=epoch.isoformat())
            await s.flush()
            return await self._target_record(s, row)

    async def store_spacecraft_forecasts(self, forecasts: Sequence[SpacecraftForecast]) -> None:
        """Keep each satellite's latest forecast (from the plan just applied); unknown targets are skipped."""
        if not forecasts:
            return
        async with self._tx("store_spacecraft_forecasts") as s:
            for f in forecasts:
                row = await s.get(TargetRow, f.target_id)
                if row is not None:
                    row.spacecraft_forecast = forecast_to_json(f)

    async def tle_history(self, target_id: str) -> list[TleRecord]:
        async with self._tx("tle_history") as s:
            rows = (await s.scalars(select(TleRow).where(TleRow.target_id == target_id).order_by(TleRow.id))).all()
        return [TleRecord(r.line1, r.line2, r.epoch, r.source, r.received_at) for r in rows]

    async def delete_target(self, target_id: str, *, actor: str = "system") -> None:
        now = self._now()
        async with self._tx("delete_target") as s:
            row = await s.get(TargetRow, target_id)
            if row is None or row.deleted_at is not None:
                raise NotFound(f"no target {target_id!r}", field="target_id")
            row.deleted_at = now
            row.updated_at = now
            self._audit(s, now, actor, "delete_target", target_id)

    async def campaign_boosts(self, at: datetime) -> dict[str, float]:
        """Priority boost of every campaign active at `at`."""
        async with self._tx("campaign_boosts") as s:
            rows = (await s.scalars(select(CampaignRow))).all()
        return {
            r.campaign_id: r.priority_boost
            for r in rows
            if (r.start is None or r.start <= at) and (r.end is None or at < r.end)
        }

    async def count_stations(self) -> int:
        async with self._tx("count_stations") as s:
            return int(await s.scalar(select(func.count()).select_from(StationRow)) or 0)
