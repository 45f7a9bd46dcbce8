"""After an exposure: what the hardware really did, written into the image and into the observation record.

`finish_exposure` takes the camera's result, the request and where the mount says it pointed, and returns
- the image with SkyMesh's FITS keywords added (job, station, target, requested filter, site, WCS hint from the
  mount's reached position; the driver's own DATE-OBS, EXPTIME and WCS win, see `skymesh.agent.fits`), and
- an `ExposureReport` (filter in place vs requested, exposure taken vs requested, coordinates reached, offset).

Imports: the agent's FITS helpers and driver types, `skymesh.astro.celestial` (precession), `skymesh.api`.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from skymesh.agent.drivers.base import Exposure, ExposureRequest
from skymesh.agent.fits import DRIVER_WINS, WcsHint, read_header, skymesh_cards, update_header
from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.convert import timestamp_from_datetime
from skymesh.astro.celestial import precess_from_j2000
from skymesh.astro.frames import datetime_to_jd
from skymesh.core.model import GeoLocation
from skymesh.core.sphere import separation_deg

__all__ = ["finish_exposure", "reached_j2000", "separation_arcsec"]


def reached_j2000(
    reported_ra_deg: float, reported_dec_deg: float, target_ra_deg: float, target_dec_deg: float, when: datetime
) -> tuple[float, float]:
    """A position a mount reported of date, in J2000: the target's J2000 position plus the mount's offset from the
    target's position of date (precession is a near-rigid rotation over such small offsets)."""
    ra_now, dec_now = precess_from_j2000([target_ra_deg], [target_dec_deg], [datetime_to_jd(when)])
    d_ra = (reported_ra_deg - float(ra_now[0]) + 180.0) % 360.0 - 180.0
    d_dec = reported_dec_deg - float(dec_now[0])
    return (target_ra_deg + d_ra) % 360.0, target_dec_deg + d_dec


def separation_arcsec(ra1_deg: float, dec1_deg: float, ra2_deg: float, dec2_deg: float) -> float:
    return separation_deg(ra1_deg, dec1_deg, ra2_deg, dec2_deg) * 3600.0


def finish_exposure(
    exposure: Exposure,
    request: ExposureRequest,
    reached: tuple[float, float] | None,
    location: GeoLocation,
    focuser_position_steps: int | None = None,
) -> tuple[Exposure, agent_pb2.ExposureReport]:
    """`reached`: J2000 RA/Dec the mount reported (None: it could not say); `focuser_position_steps`: what the
    focuser read back after the exposure (None: no focuser, or it could not say)."""
    report = agent_pb2.ExposureReport(
        start=timestamp_from_datetime(exposure.start),
        requested_s=request.duration_s,
        taken_s=exposure.duration_s,
        filter_requested=request.filter,
        filter_in_place=exposure.filter_in_place,
        binning=request.binning,
        frame_type=request.frame_type,
    )
    if focuser_position_steps is not None:
        report.focuser_position_steps = focuser_position_steps
    if reached is not None:
        report.ra_reached_deg, report.dec_reached_deg = reached
        report.pointing_offset_arcsec = separation_arcsec(reached[0], reached[1], request.ra_deg, request.dec_deg)
    data = exposure.data
    if data.startswith(b"SIMPLE  =") and exposure.data_format in (".fits", "fits", ".fit"):
        header = read_header(data)
        width = exposure.width_px or header.get("NAXIS1")
        height = exposure.height_px or header.get("NAXIS2")
        wcs = None
        if reached is not None and isinstance(width, int) and isinstance(height, int) and width and height:
            wcs = WcsHint(reached[0], reached[1], width, height, exposure.pixel_scale_arcsec)
        cards = skymesh_cards(
            job_id=request.job_id,
            station_id=request.station_id,
            target_name=request.target_name,
            requested_filter=request.filter,
            date_obs=exposure.start,
            exposure_s=exposure.duration_s,
            site_latitude_deg=location.latitude_deg,
            site_longitude_deg=location.longitude_deg,
            site_altitude_m=location.altitude_m,
            wcs=wcs,
        )
        if exposure.filter_in_place:
            cards["FILTER"] = (exposure.filter_in_place, "filter in place, read back from the wheel")
        if focuser_position_steps is not None:
            cards["FOCUSPOS"] = (focuser_position_steps, "focuser position, steps, read back")
        data = update_header(data, cards, keep=DRIVER_WINS)
    headers = dict(exposure.headers)
    headers["SMREQFLT"] = request.filter
    if exposure.filter_in_place:
        headers["FILTER"] = exposure.filter_in_place
    if focuser_position_steps is not None:
        headers["FOCUSPOS"] = str(focuser_position_steps)
    return dataclasses.replace(exposure, data=data, headers=headers), report
