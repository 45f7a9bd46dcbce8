"""How one job is performed on the hardware: a satellite pass (rotator tracking + Doppler-tuned radio) or a set of
telescope exposures (slew, expose, photometry). Each returns the job's `ObservationRecord`; failures raise `JobFailed`
with a cause code. Nothing here touches the store or the link: the executor owns job states.

Imports: numpy, `skymesh.astro` (via tracking), `skymesh.api` (records and converters), `skymesh.core`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import uuid
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from skymesh.agent.config import AgentConfig
from skymesh.agent.drivers import DriverSet
from skymesh.agent.drivers.base import DriverError, Exposure, ExposureRequest, LinkGeometry, SupportsLinkGeometry
from skymesh.agent.recording import IqRecorder, SupportsIqRecording, sigmf_available
from skymesh.agent.store import LocalJob
from skymesh.agent.tracking import SatelliteTrack, altaz_of_radec, doppler_frequency_hz, unwrap_azimuth
from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.api.convert import target_from_proto, timestamp_from_datetime
from skymesh.core.clock import Clock
from skymesh.core.errors import SkyMeshError
from skymesh.core.model import CelestialTarget, SatelliteTarget

__all__ = ["JobContext", "JobFailed", "perform_job", "preposition"]

_log = logging.getLogger(__name__)

DEFAULT_DOWNLINK_HZ = 437_000_000.0
_IQ_SNIPPET_SAMPLES = 2048


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


async def preposition(job: LocalJob, ctx: JobContext) -> None:
    """Before a pass: point the rotator where the satellite will rise (best effort; the pass itself will retry)."""
    rotator = ctx.drivers.rotator
    if rotator is None or job.spec.target.WhichOneof("kind") != "satellite":
        return
    sat = job.spec.target.satellite
    limits = ctx.config.limits
    try:
        track = SatelliteTrack(sat.tle_line1, sat.tle_line2, ctx.config.location, job.start, job.start)
        look = track.at(job.start)
        current_az, _ = await rotator.get_position()
        az = unwrap_azimuth(look.azimuth_deg, current_az, limits.azimuth_min_deg, limits.azimuth_max_deg)
        el = min(max(look.elevation_deg, limits.elevation_min_deg), limits.elevation_max_deg)
        await rotator.set_position(az, el)
        _log.info("pre-positioned for job %s at az %.1f el %.1f", job.job_id, az, el)
    except (SkyMeshError, DriverError) as exc:
        _log.warning("could not pre-position for job %s: %s", job.job_id, exc)


def _angular_separation_deg(az1: float, el1: float, az2: float, el2: float) -> float:
    a1, e1, a2, e2 = map(math.radians, (az1, el1, az2, el2))
    c = math.sin(e1) * math.sin(e2) + math.cos(e1) * math.cos(e2) * math.cos(a1 - a2)
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


async def _satellite_pass(job: LocalJob, target: SatelliteTarget, ctx: JobContext) -> agent_pb2.ObservationRecord:
    rotator, radio = ctx.drivers.rotator, ctx.drivers.radio
    if rotator is None or radio is None:
        raise JobFailed(common_pb2.CAUSE_CODE_UNSUPPORTED, "a satellite pass needs a rotator and a radio")
    limits = ctx.config.limits
    start_at = ctx.clock.now()
    try:
        track = SatelliteTrack(target.tle_line1, target.tle_line2, ctx.config.location, start_at, job.end)
    except SkyMeshError as exc:
        raise JobFailed(common_pb2.CAUSE_CODE_INVALID, f"cannot propagate {target.name}: {exc}") from exc
    nominal_hz = target.downlink_frequency_hz or DEFAULT_DOWNLINK_HZ
    snrs: list[float] = []
    max_el = -90.0
    max_doppler_hz = 0.0
    residuals: list[float] = []
    current_az, _ = await rotator.get_position()
    total_s = max((job.end - start_at).total_seconds(), 1e-6)
    recorder: IqRecorder | None = None
    if isinstance(radio, SupportsIqRecording) and radio.record_iq:
        if sigmf_available():
            recorder = IqRecorder(radio.iq_sample_rate_hz)
        else:
            _log.warning("job %s: IQ recording asked for, but the sigmf package is not installed", job.job_id)
    next_snippet = start_at
    try:
        while (now := ctx.clock.now()) < job.end:
            look = track.at(now)
            el_cmd = min(max(look.elevation_deg, limits.elevation_min_deg), limits.elevation_max_deg)
            az_cmd = unwrap_azimuth(look.azimuth_deg, current_az, limits.azimuth_min_deg, limits.azimuth_max_deg)
            await rotator.set_position(az_cmd, el_cmd)
            received_hz = doppler_frequency_hz(nominal_hz, look.range_rate_km_s)
            await radio.set_frequency(received_hz)
            current_az, current_el = await rotator.get_position()
            pointing_error = _angular_separation_deg(current_az, current_el, look.azimuth_deg, look.elevation_deg)
            if isinstance(radio, SupportsLinkGeometry):
                radio.update_geometry(
                    LinkGeometry(look.range_km, look.elevation_deg, look.range_rate_km_s, pointing_error, nominal_hz)
                )
            snr = await radio.snr_db()
            doppler_hz = received_hz - nominal_hz
            ctx.live.update(
                {
                    "rotator.azimuth_deg": current_az,
                    "rotator.elevation_deg": current_el,
                    "rotator.pointing_error_deg": pointing_error,
                    "target.azimuth_deg": look.azimuth_deg,
                    "target.elevation_deg": look.elevation_deg,
                    "target.range_km": look.range_km,
                    "radio.frequency_hz": received_hz,
                    "radio.doppler_hz": doppler_hz,
                    "radio.snr_db": snr,
                }
            )
            if look.elevation_deg > 0.0:
                snrs.append(snr)
                max_el = max(max_el, look.elevation_deg)
                max_doppler_hz = max(max_doppler_hz, abs(doppler_hz))
                residuals.append(abs(await radio.get_frequency() - received_hz))
                if recorder is not None and isinstance(radio, SupportsIqRecording) and now >= next_snippet:
                    recorder.add(now, await radio.get_frequency(), radio.iq_snippet(_IQ_SNIPPET_SAMPLES))
                    next_snippet = now + timedelta(seconds=radio.iq_interval_s)
            ctx.progress[job.job_id] = min((now - start_at).total_seconds() / total_s, 1.0)
            await ctx.clock.sleep(ctx.config.tracking_interval_s)
    finally:
        if isinstance(radio, SupportsLinkGeometry):
            radio.update_geometry(None)
        for key in [k for k in ctx.live if k.startswith(("target.", "radio.snr", "radio.doppler"))]:
            del ctx.live[key]
    flags = []
    if not snrs:
        flags.append("NO_SIGNAL")
    elif max(snrs) < 10.0:
        flags.append("LOW_SNR")
    quality = agent_pb2.PassQuality(
        max_elevation_deg=max_el if snrs else 0.0,
        mean_snr_db=sum(snrs) / len(snrs) if snrs else 0.0,
        peak_snr_db=max(snrs) if snrs else 0.0,
        max_doppler_hz=max_doppler_hz,
        frames_decoded=sum(1 for s in snrs if s >= 10.0),
        doppler_residual_hz=sum(residuals) / len(residuals) if residuals else 0.0,
    )
    observation_id = str(uuid.uuid4())
    record = agent_pb2.ObservationRecord(
        observation_id=observation_id,
        job_id=job.job_id,
        target_id=target.target_id,
        start=timestamp_from_datetime(start_at),
        end=timestamp_from_datetime(ctx.clock.now()),
        pass_quality=quality,
        quality_flags=flags,
        headers={"SATELLITE": target.name, "NORAD": str(target.norad_id), "DOWNLINK_HZ": f"{nominal_hz:.0f}"},
    )
    if recorder is not None and len(recorder):
        path = ctx.config.state_dir / "artifacts" / observation_id / str(uuid.uuid4())
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
        record.artifacts.append(
            agent_pb2.Artifact(
                artifact_id=archive.stem,
                kind="sigmf",
                size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )
    return record


async def _telescope_exposures(job: LocalJob, target: CelestialTarget, ctx: JobContext) -> agent_pb2.ObservationRecord:
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
        )
        exposures.append(await camera.expose(request))
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
    for exposure in exposures:
        if exposure.data:
            record.artifacts.append(await asyncio.to_thread(_save_artifact, artifact_dir, exposure))
    return record


def _save_artifact(directory: Path, exposure: Exposure) -> agent_pb2.Artifact:
    """Keep the image on disk for the upload RPC; the record carries its size and SHA-256."""
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
