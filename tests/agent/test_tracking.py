"""The agent's numpy-free look angles (`skymesh.agent.tracking`) against Skyfield and against `skymesh.astro`."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from skymesh.agent.tracking import SatelliteTrack
from skymesh.astro.frames import datetime_to_jd
from skymesh.astro.propagate import SatelliteBatch, look_angles
from skymesh.core.errors import InvalidTLE
from tests.agent.passes import SkyfieldTruth, find_pass, separation_deg

HUNDREDTH_DEG = 0.01


@pytest.mark.parametrize("max_elevation_deg", [89.5, 45.0, 10.0])
def test_look_angles_match_skyfield_over_a_pass(max_elevation_deg: float) -> None:
    p = find_pass(max_elevation_deg)
    track = SatelliteTrack(p.tle.line1, p.tle.line2, p.site, p.aos, p.los)
    # Every sample of the 1 s grid (between them `at` interpolates linearly, as the numpy version did).
    when = [p.aos + timedelta(seconds=i) for i in range(int((p.los - p.aos).total_seconds()))]
    looks = [track.at(w) for w in when]
    az = np.array([look.azimuth_deg for look in looks])
    el = np.array([look.elevation_deg for look in looks])
    sky_az, sky_el = SkyfieldTruth(p).altaz_deg(when)
    assert np.abs(el - sky_el).max() < HUNDREDTH_DEG
    assert separation_deg(az, el, sky_az, sky_el).max() < HUNDREDTH_DEG
    away_from_zenith = sky_el < 80.0  # azimuth itself is ill-conditioned right under the zenith
    daz = (az - sky_az + 180.0) % 360.0 - 180.0
    assert np.abs(daz[away_from_zenith]).max() < HUNDREDTH_DEG


def test_same_numbers_as_the_vectorised_astro_path() -> None:
    p = find_pass(60.0)
    track = SatelliteTrack(p.tle.line1, p.tle.line2, p.site, p.aos, p.los)
    t, az, el = track.samples()
    jd = np.array([datetime_to_jd(p.aos + timedelta(seconds=s)) for s in t])
    ref = look_angles(SatelliteBatch([p.tle]), [p.site.latitude_deg], [p.site.longitude_deg], [p.site.altitude_m], jd)
    assert np.abs(np.asarray(el) - ref.elevation_deg[0, 0]).max() < 1e-5
    assert np.abs((np.asarray(az) - ref.azimuth_deg[0, 0] + 180.0) % 360.0 - 180.0).max() < 1e-4
    rr = np.array([track.at(p.aos + timedelta(seconds=s)).range_rate_km_s for s in t])
    assert np.abs(rr - ref.range_rate_km_s[0, 0]).max() < 1e-5


def test_bad_tle_is_invalid() -> None:
    p = find_pass(45.0)
    with pytest.raises(InvalidTLE):
        SatelliteTrack(p.tle.line1, "2 garbage", p.site, p.aos, p.los)
