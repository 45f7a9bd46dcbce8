"""How one job is performed on the hardware: a satellite pass (rotator tracking + Doppler-tuned radio) or a set of
telescope exposures (slew, expose, photometry). Each returns the job's `ObservationRecord`; failures raise `JobFailed`
with a cause code. Nothing here touches the store or the link: the executor owns job states.

A pass is planned whole before it starts (`skymesh.agent.passplan`: wrap, flip, through the zenith, within the
configured limits narrowed to the rotator's own), pre-positioned on that plan, flown half a tick ahead, and parked at
the configured position after LOS. A rotator or radio error during the pass is counted, flagged
(HARDWARE_FAULT_DURING_PASS) and tracking goes on (the drivers reconnect); only a pass where the rotator never
answered fails. The record says how it went: pointing error against the agent's ephemeris, SNR, tracked time,
clipped and rate-limited seconds. Exposures get SkyMesh's FITS keywords and an `ExposureReport` each
(`skymesh.agent.exposure_report`).

A ground-station agent must not import numpy (see `skymesh.agent.tracking`): the pass path is plain Python, and what
only telescopes need (`exposure_report`: FITS, `skymesh.astro`) or IQ recording needs (`recording`: numpy) is
imported when such a job runs. Imports: `skymesh.api` (records and converters), `skymesh.core`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from skymesh.agent.config import AgentConfig
from skymesh.agent.drivers import DriverSet
from skymesh.agent.drivers.base import (
    DriverError,
    Exposure,
    ExposureRequest,
    LinkGeometry,
    ReportsTravel,
    Rotator,
    SupportsLinkGeometry,
)
from skymesh.agent.passplan import (
    PassPlan,
    PassStats,
    angular_separation_deg,
    park_position,
    plan_pass,
    station_rotator_model,
)
from skymesh.agent.recording import SupportsIqRecording, sigmf_available
from skymesh.agent.store import LocalJob
from skymesh.agent.tracking import SatelliteTrack, doppler_frequency_hz
from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.api.convert import target_from_proto, timestamp_from_datetime
from skymesh.core.clock import Clock
from skymesh.core.errors import SkyMeshError
from skymesh.core.model import CelestialTarget, SatelliteTarget
from skymesh.core.rotator_scalar import RotatorModel

if TYPE_CHECKING:
    from skymesh.agent.recording import IqRecorder

__all__ = ["JobContext", "JobFailed", "perform_job", "preposition"]

_log = logging.getLogger(__name__)

DEFAULT_DOWNLINK_HZ = 437_000_000.0
_IQ_SNIPPET_SAMPLES = 2048
LOW_SNR_DB = 10.0  # LOW_SNR: the pass never reached this SNR
POINTING_LOST_DEG = 5.0  # POINTING_LOST: off by more than this ...
POINTING_LOST_FRACTION = 0.05  # ... for more than this share of the tracked time


class JobFailed(Exception):
    def __init__(self, cause: int, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause
        self.detail = detail


@dataclass
class JobContext:
    config: AgentConfig
    drivers: DriverSet
    clock: Clock
    live: MutableMapping[str, float]  # telemetry channels the executor samples every second
    progress: MutableMapping[str, float]


async def perform_job(job: LocalJob, ctx: JobContext) -> agent_pb2.ObservationRecord:
    try:
        target = target_from_proto(job.spec.target, "target")
    except SkyMeshError as exc:
        raise JobFailed(common_pb2.CAUSE_CODE_INVALID, f"bad target: {exc}") from exc
    try:
        if isinstance(target, SatelliteTarget):
            return await _satellite_pass(job, target, ctx)
        return await _telescope_exposures(job, target, ctx)
    except DriverError as exc:
        raise JobFailed(common_pb2.CAUSE_CODE_HARDWARE_FAULT, str(exc)) from exc


async def _rotator_model(ctx: JobContext) -> RotatorModel:
    """Configured limits intersected with the rotator's own; asks the rotator again if it has not said yet."""
    rotator = ctx.drivers.rotator
    travel = None
    if isinstance(rotator, ReportsTravel):
        if rotator.reported_travel() is None:
            try:
                await rotator.connect()  # rotctld reads its limits on connect
            except DriverError as exc:
                _log.warning("rotator limits unknown (%s); planning with the configured limits", exc)
        travel = rotator.reported_travel()
    try:
        return station_rotator_model(ctx.config.limits, travel)
    except SkyMeshError as exc:
        raise JobFailed(common_pb2.CAUSE_CODE_INVALID, f"rotator limits: {exc}") from exc


async def preposition(job: LocalJob, ctx: JobContext) -> None:
    """Before a pass: point the rotator where the planned track starts, on the wrap (or flip) the pass will use."""
    rotator = ctx.drivers.rotator
    if rotator is None or job.spec.target.WhichOneof("kind") != "satellite":
        return
    sat = job.spec.target.satellite
    try:
        track = SatelliteTrack(sat.tle_line1, sat.tle_line2, ctx.config.location, job.start, job.end)
        model = await _rotator_model(ctx)
        current_az, _ = await rotator.get_position()
        plan = plan_pass(track, model, current_az)
        az, el = plan.first_command
        await rotator.set_position(az, el)
        _log.info("pre-positioned for job %s at az %.1f el %.1f (%s track)", job.job_id, az, el, plan.mode)
    except (SkyMeshError, DriverError, JobFailed) as exc:
        _log.warning("could not pre-position for job %s: %s", job.job_id, exc)


async def _satellite_pass(job: LocalJob, target: SatelliteTarget, ctx: JobContext) -> agent_pb2.ObservationRecord:
    rotator, radio = ctx.drivers.rotator, ctx.drivers.radio
    if rotator is None or radio is None:
        raise JobFailed(common_pb2.CAUSE_CODE_UNSUPPORTED, "a satellite pass needs a rotator and a radio")
    start_at = ctx.clock.now()
    try:
        # Planned over the job's own window, exactly as `preposition` planned it (and as before a restart): the same
        # samples give the same wrap, so the rotator is already where the pass begins.
        track = SatelliteTrack(target.tle_line1, target.tle_line2, ctx.config.location, job.start, job.end)
    except SkyMeshError as exc:
        raise JobFailed(common_pb2.CAUSE_CODE_INVALID, f"cannot propagate {target.name}: {exc}") from exc
    model = await _rotator_model(ctx)
    stats = PassStats()
    current_az: float | None = None
    try:
        current_az, _ = await rotator.get_position()
    except DriverError as exc:
        stats.hardware_faults += 1
        _log.warning("job %s: rotator position unknown before the pass: %s", job.job_id, exc)
    plan = plan_pass(track, model, current_az)
    _log.info(
        "job %s: %s track, %.0f s clipped, %.0f s rate limited (needs %.2f deg/s)",
        job.job_id,
        plan.mode,
        plan.clipped_s,
        plan.rate_limited_s,
        plan.max_rate_needed_deg_s,
    )
    nominal_hz = target.downlink_frequency_hz or DEFAULT_DOWNLINK_HZ
    # Command where the target will be half a tick ahead: the rotator then straddles the sky instead of trailing it.
    lead = timedelta(seconds=ctx.config.tracking_interval_s / 2.0)
    max_el = -90.0
    max_doppler_hz = 0.0
    residuals: list[float] = []
    total_s = max((job.end - start_at).total_seconds(), 1e-6)
    recorder: IqRecorder | None = None
    if isinstance(radio, SupportsIqRecording) and radio.record_iq:
        if sigmf_available():
            from skymesh.agent.recording import IqRecorder

            recorder = IqRecorder(radio.iq_sample_rate_hz)
        else:
            _log.warning("job %s: IQ recording asked for, but the sigmf package is not installed", job.job_id)
    next_snippet = start_at
    previous: datetime | None = None
    faults = _FaultLog(job.job_id)
    try:
        while (now := ctx.clock.now()) < job.end:
            dt_s = (now - previous).total_seconds() if previous is not None else ctx.config.tracking_interval_s
            previous = now
            look = track.at(now)
            visible = look.elevation_deg > 0.0
            if visible:
                stats.visible_s += dt_s
            received_hz = doppler_frequency_hz(nominal_hz, look.range_rate_km_s)
            pointing_error: float | None = None
            try:
                await rotator.set_position(*plan.command_at(now + lead))
                current_az, current_el = await rotator.get_position()
                read_at = ctx.clock.now()
                sky = track.at(read_at)
                pointing_error = angular_separation_deg(current_az, current_el, sky.azimuth_deg, sky.elevation_deg)
                faults.ok("rotator")
                ctx.live.update(
                    {
                        "rotator.azimuth_deg": current_az,
                        "rotator.elevation_deg": current_el,
                        "rotator.pointing_error_deg": pointing_error,
                    }
                )
                if visible:
                    stats.add_pointing(pointing_error, dt_s)
            except DriverError as exc:
                stats.hardware_faults += 1
                faults.failed("rotator", exc)
                for key in ("rotator.azimuth_deg", "rotator.elevation_deg", "rotator.pointing_error_deg"):
                    ctx.live.pop(key, None)
            if isinstance(radio, SupportsLinkGeometry):
                radio.update_geometry(
                    LinkGeometry(
                        look.range_km,
                        look.elevation_deg,
                        look.range_rate_km_s,
                        pointing_error if pointing_error is not None else 180.0,
                        nominal_hz,
                    )
                )
            doppler_hz = received_hz - nominal_hz
            ctx.live.update(
                {
                    "target.azimuth_deg": look.azimuth_deg,
                    "target.elevation_deg": look.elevation_deg,
                    "target.range_km": look.range_km,
                    "radio.doppler_hz": doppler_hz,
                }
            )
            try:
                await radio.set_frequency(received_hz)
                snr = await radio.snr_db()
                tuned_hz = await radio.get_frequency()
                faults.ok("radio")
                ctx.live.update({"radio.frequency_hz": tuned_hz, "radio.snr_db": snr})
                if visible:
                    stats.add_snr(snr, dt_s)
                    residuals.append(abs(tuned_hz - received_hz))
                    if recorder is not None and isinstance(radio, SupportsIqRecording) and now >= next_snippet:
                        recorder.add(now, tuned_hz, radio.iq_snippet(_IQ_SNIPPET_SAMPLES))
                        next_snippet = now + timedelta(seconds=radio.iq_interval_s)
            except DriverError as exc:
                stats.hardware_faults += 1
                faults.failed("radio", exc)
                for key in ("radio.frequency_hz", "radio.snr_db"):
                    ctx.live.pop(key, None)
            if visible:
                max_el = max(max_el, look.elevation_deg)
                max_doppler_hz = max(max_doppler_hz, abs(doppler_hz))
            ctx.progress[job.job_id] = min((now - start_at).total_seconds() / total_s, 1.0)
            await ctx.clock.sleep(ctx.config.tracking_interval_s)
    finally:
        if isinstance(radio, SupportsLinkGeometry):
            radio.update_geometry(None)
        for key in [k for k in ctx.live if k.startswith(("target.", "radio.snr", "radio.doppler", "rotator.pointing"))]:
            del ctx.live[key]
    if stats.visible_s > 0 and stats.tracked_s == 0 and stats.hardware_faults:
        raise JobFailed(common_pb2.CAUSE_CODE_HARDWARE_FAULT, "the rotator never answered during the pass")
    await _park(rotator, model, current_az, job.job_id)
    record = _pass_record(
        job, target, start_at, ctx.clock.now(), plan, stats, max_el, max_doppler_hz, residuals, nominal_hz
    )
    if recorder is not None and len(recorder):
        await _attach_iq(record, recorder, target, nominal_hz, ctx)
    return record


async def _attach_iq(
    record: agent_pb2.ObservationRecord,
    recorder: IqRecorder,
    target: SatelliteTarget,
    nominal_hz: float,
    ctx: JobContext,
) -> None:
    """Write the pass's IQ snippets as a SigMF archive beside the record and list it as an artifact to upload."""
    path = ctx.config.state_dir / "artifacts" / record.observation_id / str(uuid.uuid4())
    archive = await asyncio.to_thread(
        recorder.write,
        path,
        target_id=target.target_id,
        target_name=target.name,
        norad_id=target.norad_id,
        tle_line1=target.tle_line1,
        tle_line2=target.tle_line2,
        nominal_hz=nominal_hz,
        location=ctx.config.location,
    )
    data = await asyncio.to_thread(archive.read_bytes)
    import hashlib  # only with artifacts: OpenSSL's digests cost a ground-station agent 0.7 MB of RSS

    record.artifacts.append(
        agent_pb2.Artifact(
            artifact_id=archive.stem,
            kind="sigmf",
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
    )


class _FaultLog:
    """One warning when a device starts failing during a pass and one line when it answers again (not one a tick)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.failing: dict[str, int] = {}

    def failed(self, role: str, exc: DriverError) -> None:
        if role not in self.failing:
            _log.warning("job %s: %s failing, tracking on: %s", self.job_id, role, exc)
        self.failing[role] = self.failing.get(role, 0) + 1

    def ok(self, role: str) -> None:
        missed = self.failing.pop(role, 0)
        if missed:
            _log.warning("job %s: %s answers again after %d failed ticks", self.job_id, role, missed)


async def _park(rotator: Rotator, model: RotatorModel, current_az: float | None, job_id: str) -> None:
    """After LOS: the configured park position, on the wrap nearest to where the pass ended."""
    try:
        if current_az is None:
            current_az, _ = await rotator.get_position()
        az, el = park_position(model, current_az)
        await rotator.set_position(az, el)
        _log.info("job %s: parking at az %.1f el %.1f", job_id, az, el)
    except DriverError as exc:
        _log.warning("job %s: could not park: %s", job_id, exc)


def _pass_record(
    job: LocalJob,
    target: SatelliteTarget,
    start_at: datetime,
    end_at: datetime,
    plan: PassPlan,
    stats: PassStats,
    max_el: float,
    max_doppler_hz: float,
    residuals: list[float],
    nominal_hz: float,
) -> agent_pb2.ObservationRecord:
    flags = []
    snrs = stats.snr_db
    if not snrs:
        flags.append("NO_SIGNAL")
    elif max(snrs) < LOW_SNR_DB:
        flags.append("LOW_SNR")
    if stats.tracked_s > 0 and stats.pointing_above_s(POINTING_LOST_DEG) > POINTING_LOST_FRACTION * stats.tracked_s:
        flags.append("POINTING_LOST")
    if stats.hardware_faults:
        flags.append("HARDWARE_FAULT_DURING_PASS")
    if plan.clipped_s > 0:
        flags.append("CLIPPED")
    if plan.rate_limited_s > 0:
        flags.append("RATE_LIMITED")
    quality = agent_pb2.PassQuality(
        max_elevation_deg=max_el if stats.visible_s > 0 else 0.0,
        mean_snr_db=sum(snrs) / len(snrs) if snrs else 0.0,
        peak_snr_db=max(snrs) if snrs else 0.0,
        max_doppler_hz=max_doppler_hz,
        doppler_residual_hz=sum(residuals) / len(residuals) if residuals else 0.0,
        pointing_error_p50_deg=stats.pointing_percentile_deg(50),
        pointing_error_p95_deg=stats.pointing_percentile_deg(95),
        pointing_error_max_deg=max(stats.pointing_error_deg, default=0.0),
        pointing_error_above_1deg_s=stats.pointing_above_s(1.0),
        pointing_error_above_5deg_s=stats.pointing_above_s(5.0),
        tracked_s=stats.tracked_s,
        visible_s=stats.visible_s,
        snr_p10_db=stats.snr_percentile_db(10),
        snr_p50_db=stats.snr_percentile_db(50),
        snr_above_10db_s=stats.snr_above_s(LOW_SNR_DB),
        track_mode=plan.mode,
        rate_needed_deg_s=plan.max_rate_needed_deg_s,
        rate_limited_s=plan.rate_limited_s,
        clipped_s=plan.clipped_s,
        hardware_faults=stats.hardware_faults,
    )
    observation_id = str(uuid.uuid4())
    record = agent_pb2.ObservationRecord(
        observation_id=observation_id,
        job_id=job.job_id,
        target_id=target.target_id,
        start=timestamp_from_datetime(start_at),
        end=timestamp_from_datetime(end_at),
        pass_quality=quality,
        quality_flags=flags,
        headers={"SATELLITE": target.name, "NORAD": str(target.norad_id), "DOWNLINK_HZ": f"{nominal_hz:.0f}"},
    )
    return record


async def _telescope_exposures(job: LocalJob, target: CelestialTarget, ctx: JobContext) -> agent_pb2.ObservationRecord:
    from skymesh.agent.exposure_report import finish_exposure, reached_j2000
    from skymesh.agent.sidereal import altaz_of_radec

    mount, camera = ctx.drivers.mount, ctx.drivers.camera
    if mount is None or camera is None:
        raise JobFailed(common_pb2.CAUSE_CODE_UNSUPPORTED, "a telescope job needs a mount and a camera")
    location = ctx.config.location
    start_at = ctx.clock.now()
    altitude, _az = altaz_of_radec(target.ra_deg, target.dec_deg, location, start_at)
    if altitude < max(ctx.config.limits.elevation_min_deg, 0.0):
        raise JobFailed(
            common_pb2.CAUSE_CODE_BELOW_LIMITS,
            f"{target.name} is at altitude {altitude:.1f} deg, below the limit {ctx.config.limits.elevation_min_deg}",
        )
    await mount.slew(target.ra_deg, target.dec_deg)
    count = job.spec.exposure_count or target.exposure_count or 1
    exposure_s = job.spec.exposure_s or target.exposure_s
    band = job.spec.filter or (target.filters[0] if target.filters else "V")
    exposures: list[Exposure] = []
    reports: list[agent_pb2.ExposureReport] = []
    focuser = ctx.drivers.focuser
    if focuser is not None and job.spec.HasField("focuser_position_steps"):
        try:
            at = await focuser.move_to(job.spec.focuser_position_steps)
        except DriverError as exc:
            raise JobFailed(
                common_pb2.CAUSE_CODE_HARDWARE_FAULT,
                f"focuser move to {job.spec.focuser_position_steps} failed: {exc}",
            ) from exc
        _log.info("job %s: focuser at %d (asked %d)", job.job_id, at, job.spec.focuser_position_steps)
    for i in range(count):
        now = ctx.clock.now()
        if exposures and (job.end - now).total_seconds() < exposure_s:
            break  # out of time: keep what we have
        altitude, azimuth = altaz_of_radec(target.ra_deg, target.dec_deg, location, now)
        ctx.live.update({"mount.altitude_deg": altitude, "mount.azimuth_deg": azimuth})
        request = ExposureRequest(
            duration_s=exposure_s,
            filter=band,
            target_id=target.target_id,
            target_name=target.name,
            ra_deg=target.ra_deg,
            dec_deg=target.dec_deg,
            catalog_magnitude=target.magnitude,
            altitude_deg=altitude,
            start=now,
            job_id=job.job_id,
            station_id=ctx.config.station_id,
        )
        exposure = await camera.expose(request)
        reached: tuple[float, float] | None = None
        try:
            ra, dec = await mount.get_radec()
            reached = (
                reached_j2000(ra, dec, target.ra_deg, target.dec_deg, ctx.clock.now())
                if mount.equinox_of_date
                else (ra, dec)
            )
        except DriverError as exc:
            _log.warning("job %s: mount position unknown after exposure %d: %s", job.job_id, i + 1, exc)
        focus_steps: int | None = None
        if focuser is not None:
            try:
                focus_steps = await focuser.get_position()
            except DriverError as exc:
                _log.warning("job %s: focuser position unknown after exposure %d: %s", job.job_id, i + 1, exc)
        exposure, report = await asyncio.to_thread(finish_exposure, exposure, request, reached, location, focus_steps)
        exposures.append(exposure)
        reports.append(report)
        ctx.progress[job.job_id] = (i + 1) / count
    observation_id = str(uuid.uuid4())
    record = agent_pb2.ObservationRecord(
        observation_id=observation_id,
        job_id=job.job_id,
        target_id=target.target_id,
        start=timestamp_from_datetime(start_at),
        end=timestamp_from_datetime(ctx.clock.now()),
        exposure_s=sum(e.duration_s for e in exposures),
    )
    airmasses = [e.airmass for e in exposures if e.airmass and math.isfinite(e.airmass)]
    if airmasses:
        record.airmass = sum(airmasses) / len(airmasses)
    seeing = [e.seeing_arcsec for e in exposures if e.seeing_arcsec]
    if seeing:
        record.seeing_arcsec = sum(seeing) / len(seeing)
    phots = [e.photometry for e in exposures if e.photometry is not None and e.photometry.magnitude_error > 0]
    if phots:
        weights = [1.0 / p.magnitude_error**2 for p in phots]
        magnitude = sum(w * p.magnitude for w, p in zip(weights, phots, strict=True)) / sum(weights)
        record.photometry.CopyFrom(
            agent_pb2.Photometry(
                filter=phots[0].filter,
                magnitude=round(magnitude, 4),
                magnitude_error=round(1.0 / math.sqrt(sum(weights)), 4),
                flux=sum(p.flux for p in phots) / len(phots),
                zero_point=phots[0].zero_point,
                comparison_stars=min(p.comparison_stars for p in phots),
            )
        )
    flags = sorted({f for e in exposures for f in e.quality_flags})
    record.quality_flags.extend(flags)
    if exposures:
        record.headers.update(exposures[-1].headers)
    record.headers["NEXPOSURE"] = str(len(exposures))
    artifact_dir = ctx.config.state_dir / "artifacts" / observation_id
    for exposure, report in zip(exposures, reports, strict=True):
        if exposure.data:
            artifact = await asyncio.to_thread(_save_artifact, artifact_dir, exposure)
            record.artifacts.append(artifact)
            report.artifact_id = artifact.artifact_id
    record.exposures.extend(reports)
    return record


def _save_artifact(directory: Path, exposure: Exposure) -> agent_pb2.Artifact:
    """Keep the image on disk for the upload RPC; the record carries its size and SHA-256."""
    import hashlib

    artifact_id = str(uuid.uuid4())
    directory.mkdir(parents=True, exist_ok=True)
    suffix = exposure.data_format if exposure.data_format.startswith(".") else f".{exposure.data_format or 'bin'}"
    (directory / f"{artifact_id}{suffix}").write_bytes(exposure.data)
    return agent_pb2.Artifact(
        artifact_id=artifact_id,
        kind=suffix.lstrip(".") or "bin",
        size_bytes=len(exposure.data),
        sha256=hashlib.sha256(exposure.data).hexdigest(),
    )
