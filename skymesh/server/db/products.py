"""Repository part for the data-products pipeline: what a frame's reduction needs (file, target, the station's
clear-sky zero points), storing a frame's result and the observation's aggregate over its frames, marking the job
done-but-bad when its observation fails quality, frames still waiting for a reduction (after a restart), and the good
recent visits the planner counts against a target's cadence."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from skymesh.core.jobs import JobState
from skymesh.server.db.base import RepoBase
from skymesh.server.db.models import (
    ArtifactRow,
    FrameReductionRow,
    JobRow,
    ObservationRow,
    PassReductionRow,
    StationRow,
    TargetRow,
    TleRow,
)
from skymesh.server.db.records import JobRecord

__all__ = [
    "CAUSE_BAD_DATA",
    "CAUSE_OK",
    "FITS_KINDS",
    "FRAME_COUNTS",
    "FRAME_FLOATS",
    "IQ_KINDS",
    "PASS_FLOATS",
    "FrameReductionIn",
    "PassReductionIn",
    "ProductsRepo",
    "ReductionInput",
    "ReductionOutcome",
]

CAUSE_OK = 1
CAUSE_BAD_DATA = 11  # common.v1.CauseCode.CAUSE_CODE_BAD_DATA
FITS_KINDS = ("fits", "fit", "fts")
IQ_KINDS = ("sigmf",)
# The measured values a reduction stores, by name: what the reducer sends is what the repository stores.
PASS_FLOATS = (
    "max_elevation_deg",
    "peak_snr_db",
    "mean_snr_db",
    "snr_elevation_correlation",
    "doppler_offset_hz",
    "doppler_rms_hz",
    "quality_score",
)
_REFERENCE_FRAMES = 50
_REFERENCE_QUANTILE = 0.9  # clouds only lower a zero point: the clear-sky reference is near the best ones
_MAX_ERROR_CHARS = 2000


def _errors(rows: Iterable[Any]) -> str:
    """The distinct errors of an observation's uploads, in the order they were met, "; "-joined and bounded."""
    seen: list[str] = []
    for row in rows:
        if row.error and row.error not in seen:
            seen.append(row.error)
    return "; ".join(seen)[:_MAX_ERROR_CHARS]


@dataclass(frozen=True)
class ReductionInput:
    resource_name: str
    path: str
    observation_id: str
    station_id: str
    target_ra_deg: float | None
    target_dec_deg: float | None
    reference_zero_points_mag: dict[str, float]  # filter -> airmass-1 zero point of clear frames
    kind: str = "fits"  # "fits" (a frame) or "sigmf" (a pass's IQ recording)
    tle_line1: str = ""  # passes: the target's current elements and the station's position
    tle_line2: str = ""
    latitude_deg: float | None = None
    longitude_deg: float | None = None
    altitude_m: float | None = None


@dataclass(frozen=True)
class FrameReductionIn:
    """One frame's result as the pipeline gives it (NaN for what it could not measure)."""

    state: str  # good | bad | error
    error: str = ""
    filter: str = ""
    date_obs: datetime | None = None
    values: dict[str, float] = field(default_factory=dict)  # the numeric columns of FrameReductionRow
    counts: dict[str, int] = field(default_factory=dict)
    comparison_ids: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    wcs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PassReductionIn:
    """One IQ recording's analysis (`skymesh.products.passes`), NaN for what could not be measured."""

    state: str  # good | bad | error
    error: str = ""
    captures: int = 0
    detected: int = 0
    values: dict[str, float] = field(default_factory=dict)  # the numeric columns of PassReductionRow
    flags: tuple[str, ...] = ()
    waterfall_path: str = ""


@dataclass(frozen=True)
class ReductionOutcome:
    observation_id: str
    state: str  # the observation's aggregate state ("" when the observation is not known)
    job_id: str | None
    target_id: str | None
    job_marked_bad: bool


FRAME_FLOATS = (
    "exposure_s",
    "airmass",
    "magnitude",
    "magnitude_error",
    "instrumental_magnitude",
    "zero_point_mag",
    "zero_point_error_mag",
    "zero_point_airmass1_mag",
    "target_ra_deg",
    "target_dec_deg",
    "wcs_rms_arcsec",
    "fwhm_arcsec",
    "ellipticity",
    "sky_e_per_s_px",
    "saturated_fraction",
)
FRAME_COUNTS = ("comparison_stars", "matched_stars", "star_count")


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _weighted(values: list[tuple[float | None, float | None]]) -> tuple[float | None, float | None]:
    pairs = [(v, e) for v, e in values if v is not None and e is not None and e > 0]
    if not pairs:
        return None, None
    weights = [1.0 / e**2 for _, e in pairs]
    mean = sum(w * v for w, (v, _) in zip(weights, pairs, strict=True)) / sum(weights)
    return mean, 1.0 / math.sqrt(sum(weights))


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


class ProductsRepo(RepoBase):
    async def reduction_input(self, resource_name: str) -> ReductionInput | None:
        """What the pipeline needs for one complete upload; None when it is not a complete frame."""
        async with self._tx("reduction_input") as s:
            artifact = await s.get(ArtifactRow, resource_name)
            if artifact is None or not artifact.complete:
                return None
            ra = dec = None
            obs = await s.get(ObservationRow, artifact.observation_id)
            if obs is not None and obs.target_id:
                target = await s.get(TargetRow, obs.target_id)
                if target is not None:
                    ra, dec = target.ra_deg, target.dec_deg
            rows = (
                await s.execute(
                    select(FrameReductionRow.filter, FrameReductionRow.zero_point_airmass1_mag)
                    .where(
                        FrameReductionRow.station_id == artifact.station_id,
                        FrameReductionRow.state == "good",
                        FrameReductionRow.zero_point_airmass1_mag.is_not(None),
                    )
                    .order_by(FrameReductionRow.reduced_at.desc())
                    .limit(_REFERENCE_FRAMES * 4)
                )
            ).all()
        by_filter: dict[str, list[float]] = {}
        for band, zp in rows:
            if zp is not None and len(by_filter.setdefault(band, [])) < _REFERENCE_FRAMES:
                by_filter[band].append(float(zp))
        references = {}
        for band, zps in by_filter.items():
            zps.sort()
            references[band] = zps[min(len(zps) - 1, int(_REFERENCE_QUANTILE * (len(zps) - 1) + 0.5))]
        kind = "sigmf" if artifact.kind.lower() in IQ_KINDS else "fits"
        line1 = line2 = ""
        lat = lon = alt = None
        if kind == "sigmf":
            async with self._tx("reduction_input_pass") as s:
                station = await s.get(StationRow, artifact.station_id)
                if station is not None:
                    lat, lon, alt = station.latitude_deg, station.longitude_deg, station.altitude_m
                obs = await s.get(ObservationRow, artifact.observation_id)
                if obs is not None and obs.target_id:
                    tle = await s.scalar(
                        select(TleRow).where(TleRow.target_id == obs.target_id).order_by(TleRow.id.desc()).limit(1)
                    )
                    if tle is not None:
                        line1, line2 = tle.line1, tle.line2
        return ReductionInput(
            resource_name=resource_name,
            path=artifact.path,
            observation_id=artifact.observation_id,
            station_id=artifact.station_id,
            target_ra_deg=ra,
            target_dec_deg=dec,
            reference_zero_points_mag=references,
            kind=kind,
            tle_line1=line1,
            tle_line2=line2,
            latitude_deg=lat,
            longitude_deg=lon,
            altitude_m=alt,
        )

    async def unreduced_frames(self) -> list[tuple[str, str]]:
        """(resource name, kind) of complete FITS and IQ uploads with no result yet (a restart interrupted them)."""
        out: list[tuple[str, str]] = []
        async with self._tx("unreduced_frames") as s:
            for table, kinds in ((FrameReductionRow, FITS_KINDS), (PassReductionRow, IQ_KINDS)):
                query = (
                    select(ArtifactRow.resource_name, ArtifactRow.kind)
                    .outerjoin(table, table.resource_name == ArtifactRow.resource_name)
                    .where(ArtifactRow.complete.is_(True), table.resource_name.is_(None))
                    .where(ArtifactRow.kind.in_(kinds))
                    .order_by(ArtifactRow.updated_at)
                )
                out.extend((name, kind) for name, kind in (await s.execute(query)).all())
        return out

    async def store_frame_reduction(self, item: ReductionInput, frame: FrameReductionIn) -> ReductionOutcome:
        """Store one frame's result (idempotent per upload) and re-aggregate its observation in one transaction.

        An observation whose reduced frames all fail quality is "bad": its job (done) gets the cause BAD_DATA and the
        flags in its detail, so the planner does not count it as meeting the target's demand.
        """
        now = self._now()
        values = {name: _finite(frame.values.get(name)) for name in FRAME_FLOATS}
        counts = {name: int(frame.counts.get(name, 0)) for name in FRAME_COUNTS}
        async with self._tx("store_frame_reduction") as s:
            await s.execute(
                self._insert(FrameReductionRow)
                .values(
                    resource_name=item.resource_name,
                    observation_id=item.observation_id,
                    station_id=item.station_id,
                    state=frame.state,
                    error=frame.error,
                    filter=frame.filter,
                    date_obs=frame.date_obs,
                    comparison_ids=list(frame.comparison_ids),
                    flags=list(frame.flags),
                    wcs=dict(frame.wcs),
                    reduced_at=now,
                    **values,
                    **counts,
                )
                .on_conflict_do_nothing()
            )
            obs = await s.get(ObservationRow, item.observation_id, with_for_update=True)
            if obs is None or obs.station_id != item.station_id:
                return ReductionOutcome(item.observation_id, "", None, None, job_marked_bad=False)
            frames = (
                await s.scalars(
                    select(FrameReductionRow).where(FrameReductionRow.observation_id == item.observation_id)
                )
            ).all()
            good = [f for f in frames if f.state == "good"]
            bad = [f for f in frames if f.state == "bad"]
            use = good or bad
            state = "good" if good else "bad" if bad else "error"
            magnitude, error = _weighted([(f.magnitude, f.magnitude_error) for f in use])
            obs.reduction_state = state
            obs.reduced_magnitude = magnitude
            obs.reduced_magnitude_error = error
            obs.reduced_filter = use[0].filter if use else None
            obs.reduced_airmass = _mean(f.airmass for f in use)
            obs.zero_point_mag, obs.zero_point_error_mag = _weighted(
                [(f.zero_point_mag, f.zero_point_error_mag) for f in use]
            )
            obs.fwhm_arcsec = _mean(f.fwhm_arcsec for f in use)
            rms = [f.wcs_rms_arcsec for f in use if f.wcs_rms_arcsec is not None]
            obs.wcs_rms_arcsec = max(rms) if rms else None
            obs.reduction_flags = sorted(
                {flag for f in frames for flag in f.flags}
                | ({"REDUCTION_ERROR"} if any(f.state == "error" for f in frames) else set())
            )
            obs.reduction_error = _errors(sorted(frames, key=lambda f: f.reduced_at))
            obs.reduced_at = now
            marked = await self._judge_job(s, obs, state, now)
            return ReductionOutcome(item.observation_id, state, obs.job_id, obs.target_id, job_marked_bad=marked)

    @staticmethod
    async def _judge_job(s: Any, obs: ObservationRow, state: str, now: datetime) -> bool:
        """Done but bad: the job keeps its terminal state and gets cause BAD_DATA (True when so marked now)."""
        if not obs.job_id:
            return False
        job = await s.get(JobRow, obs.job_id, with_for_update=True)
        if job is None:
            return False
        if state == "bad":
            job.cause = CAUSE_BAD_DATA
            job.detail = "done, but the data failed quality: " + ", ".join(obs.reduction_flags or ())
            job.updated_at = now
            return True
        if state == "good" and job.cause == CAUSE_BAD_DATA:
            job.cause = CAUSE_OK
            job.detail = ""
            job.updated_at = now
        return False

    async def store_pass_reduction(self, item: ReductionInput, result: PassReductionIn) -> ReductionOutcome:
        """Store one IQ recording's analysis and re-aggregate its observation (as `store_frame_reduction`)."""
        now = self._now()
        values = {name: _finite(result.values.get(name)) for name in PASS_FLOATS}
        async with self._tx("store_pass_reduction") as s:
            await s.execute(
                self._insert(PassReductionRow)
                .values(
                    resource_name=item.resource_name,
                    observation_id=item.observation_id,
                    station_id=item.station_id,
                    state=result.state,
                    error=result.error,
                    captures=result.captures,
                    detected=result.detected,
                    flags=list(result.flags),
                    waterfall_path=result.waterfall_path,
                    reduced_at=now,
                    **values,
                )
                .on_conflict_do_nothing()
            )
            obs = await s.get(ObservationRow, item.observation_id, with_for_update=True)
            if obs is None or obs.station_id != item.station_id:
                return ReductionOutcome(item.observation_id, "", None, None, job_marked_bad=False)
            rows = (
                await s.scalars(select(PassReductionRow).where(PassReductionRow.observation_id == item.observation_id))
            ).all()
            good = [r for r in rows if r.state == "good"]
            bad = [r for r in rows if r.state == "bad"]
            state = "good" if good else "bad" if bad else "error"
            best = max(good or bad, key=lambda r: r.quality_score or 0.0, default=None)
            obs.reduction_state = state
            obs.reduction_flags = sorted(
                {flag for r in rows for flag in r.flags}
                | ({"REDUCTION_ERROR"} if any(r.state == "error" for r in rows) else set())
            )
            obs.pass_quality_score = best.quality_score if best is not None else None
            obs.doppler_offset_hz = best.doppler_offset_hz if best is not None else None
            obs.peak_snr_db = best.peak_snr_db if best is not None else None
            obs.reduction_error = _errors(sorted(rows, key=lambda r: r.reduced_at))
            obs.waterfall_path = best.waterfall_path if best is not None else ""
            obs.reduced_at = now
            marked = await self._judge_job(s, obs, state, now)
            return ReductionOutcome(item.observation_id, state, obs.job_id, obs.target_id, job_marked_bad=marked)

    async def good_visits(self, cadence_s: dict[str, float], now: datetime) -> list[JobRecord]:
        """Succeeded jobs of these targets that started within their cadence before `now` and whose data did not
        fail quality: the visits that already meet the targets' demand."""
        if not cadence_s:
            return []
        from datetime import timedelta

        since = now - timedelta(seconds=max(cadence_s.values()))
        query = (
            select(JobRow)
            .where(
                JobRow.target_id.in_(list(cadence_s)),
                JobRow.state == int(JobState.SUCCEEDED),
                JobRow.cause != CAUSE_BAD_DATA,
                JobRow.start >= since,
                JobRow.start < now,
            )
            .order_by(JobRow.start)
        )
        async with self._tx("good_visits") as s:
            rows = (await s.scalars(query)).all()
            return [self._job(r) for r in rows if (now - r.start).total_seconds() < cadence_s[r.target_id]]
