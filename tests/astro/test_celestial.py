"""Celestial alt/az, Sun, Moon, airmass, nights and Doppler against astropy and known values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from skymesh.astro.celestial import (
    airmass,
    moon_altaz,
    moon_illumination,
    moon_separation_deg,
    night_windows,
    radec_to_altaz,
    sun_altaz,
    sun_altitude_deg,
)
from skymesh.astro.doppler import doppler_shift_hz, received_frequency_hz, uplink_frequency_hz
from skymesh.astro.frames import datetime_to_jd
from skymesh.core.errors import InvalidArgument

astropy_units = pytest.importorskip("astropy.units")
from astropy.coordinates import AltAz, EarthLocation, SkyCoord, get_body  # noqa: E402
from astropy.time import Time  # noqa: E402
from astropy.utils import iers  # noqa: E402

iers.conf.auto_download = False  # offline, and inside the bundled IERS tables: dates in 2024-2025 only

u = astropy_units
SITES = np.array([[-30.24, -70.74, 2200.0], [19.82, -155.47, 4200.0], [52.0, 4.4, 0.0]])
TIMES = [datetime(2024, 3, 1, 2, 0, tzinfo=UTC) + timedelta(days=37 * i, hours=5 * i) for i in range(6)]


def _astropy_altaz(coord: SkyCoord, times: list[datetime], *, per_time: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Alt/az (targets, sites, times); with `per_time`, coord[i] belongs to times[i] (Sun, Moon): (sites, times)."""
    alts, azs = [], []
    for lat, lon, h in SITES:
        loc = EarthLocation(lat=lat * u.deg, lon=lon * u.deg, height=h * u.m)
        frame = AltAz(obstime=Time(times), location=loc, pressure=0 * u.hPa)
        aa = coord.transform_to(frame) if per_time else coord[:, None].transform_to(frame)
        alts.append(aa.alt.deg)
        azs.append(aa.az.deg)
    return np.stack(alts, axis=-2), np.stack(azs, axis=-2)


def test_star_altaz_matches_astropy() -> None:
    rng = np.random.default_rng(8)
    ra = rng.uniform(0, 360, 40)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, 40)))
    jd = np.array([datetime_to_jd(t) for t in TIMES])
    alt, az = radec_to_altaz(ra, dec, SITES[:, 0], SITES[:, 1], jd)
    assert alt.shape == (40, 3, 6)
    ref_alt, ref_az = _astropy_altaz(SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame="icrs"), TIMES)
    up = ref_alt > 5.0  # away from the horizon
    assert up.sum() > 100
    assert np.abs(alt - ref_alt)[up].max() < 0.02
    d_az = (az - ref_az + 180.0) % 360.0 - 180.0
    assert np.abs(d_az * np.cos(np.radians(ref_alt)))[up].max() < 0.02


def test_sun_matches_astropy() -> None:
    times = [datetime(2024, 6, 1, tzinfo=UTC) + timedelta(hours=3.7 * i) for i in range(30)]
    jd = np.array([datetime_to_jd(t) for t in times])
    alt, az = sun_altaz(SITES[:, 0], SITES[:, 1], jd)
    sun = get_body("sun", Time(times))
    ref_alt, ref_az = _astropy_altaz(sun, times, per_time=True)
    assert ref_alt.shape == alt.shape
    assert np.abs(alt - ref_alt).max() < 0.02
    assert np.array_equal(sun_altitude_deg(SITES[:, 0], SITES[:, 1], jd), alt)
    up = ref_alt > 5
    d_az = (az - ref_az + 180.0) % 360.0 - 180.0
    assert np.abs(d_az * np.cos(np.radians(ref_alt)))[up].max() < 0.03


def test_moon_roughly_matches_astropy() -> None:
    times = [datetime(2024, 9, 3, tzinfo=UTC) + timedelta(hours=7.3 * i) for i in range(25)]
    jd = np.array([datetime_to_jd(t) for t in times])
    alt, az = moon_altaz(SITES[:, 0], SITES[:, 1], SITES[:, 2], jd)
    moon = get_body("moon", Time(times))
    ref_alt, ref_az = _astropy_altaz(moon, times, per_time=True)
    assert ref_alt.shape == alt.shape
    assert np.abs(alt - ref_alt).max() < 0.5
    up = ref_alt > 5
    d_az = (az - ref_az + 180.0) % 360.0 - 180.0
    assert np.abs(d_az * np.cos(np.radians(ref_alt)))[up].max() < 0.5
    # Separation from targets (geocentric).
    targets = SkyCoord(ra=[10.0, 150.0, 280.0] * u.deg, dec=[5.0, -40.0, 60.0] * u.deg, frame="icrs")
    sep = moon_separation_deg([10.0, 150.0, 280.0], [5.0, -40.0, 60.0], jd)
    ref = np.array([[moon[i].separation(t.transform_to(moon[i])).deg for i in range(len(times))] for t in targets])
    assert sep.shape == (3, 25)
    assert np.abs(sep - ref).max() < 0.5


def test_moon_illumination_at_known_phases() -> None:
    full = datetime_to_jd(datetime(2024, 4, 23, 23, 49, tzinfo=UTC))
    new = datetime_to_jd(datetime(2024, 4, 8, 18, 21, tzinfo=UTC))
    quarter = datetime_to_jd(datetime(2024, 4, 15, 19, 13, tzinfo=UTC))
    k = moon_illumination([full, new, quarter])
    assert k[0] > 0.99 and k[1] < 0.01 and abs(k[2] - 0.5) < 0.03


def test_airmass() -> None:
    x = airmass([90.0, 30.0, 10.0, 0.0, -5.0])
    assert x[0] == pytest.approx(1.0, abs=1e-3)
    assert x[1] == pytest.approx(1.995, abs=0.01)
    assert x[2] == pytest.approx(5.6, abs=0.1)
    assert np.isinf(x[3]) and np.isinf(x[4])


def test_night_windows_edges_and_polar_cases() -> None:
    start = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
    end = start + timedelta(days=3)
    nights = night_windows(-30.24, -70.74, 2200.0, start, end, "astronomical")
    assert len(nights) == 3
    for w in nights:
        assert 7 * 3600 < w.duration_s < 11 * 3600
        for edge in (w.start, w.end):
            alt = sun_altitude_deg([-30.24], [-70.74], [datetime_to_jd(edge)])[0, 0]
            assert alt == pytest.approx(-18.0, abs=1e-4)
            ref = get_body("sun", Time(edge)).transform_to(
                AltAz(obstime=Time(edge), location=EarthLocation(lat=-30.24 * u.deg, lon=-70.74 * u.deg))
            )
            assert abs(ref.alt.deg + 18.0) < 0.03
    civil = night_windows(-30.24, -70.74, 0.0, start, end, "civil")
    assert all(c.duration_s > n.duration_s for c, n in zip(civil, nights, strict=True))
    # Polar night: one window, clipped at both ends; midnight sun: none.
    polar = night_windows(
        80.0, 15.0, 0.0, datetime(2024, 12, 20, tzinfo=UTC), datetime(2024, 12, 22, tzinfo=UTC), "civil"
    )
    assert len(polar) == 1 and polar[0].start_clipped and polar[0].end_clipped
    assert polar[0].start == datetime(2024, 12, 20, tzinfo=UTC)
    summer = night_windows(65.0, 25.0, 0.0, datetime(2024, 6, 20, tzinfo=UTC), datetime(2024, 6, 22, tzinfo=UTC))
    assert summer == []
    with pytest.raises(InvalidArgument) as err:
        night_windows(0.0, 0.0, 0.0, start, end, "dusk")  # type: ignore[arg-type]
    assert err.value.field == "twilight"
    with pytest.raises(InvalidArgument):
        night_windows(0.0, 0.0, 0.0, datetime(2024, 1, 1), end)


def test_doppler() -> None:
    # 437 MHz downlink, satellite approaching at 7 km/s: about +10.2 kHz.
    assert doppler_shift_hz(437e6, -7.0) == pytest.approx(437e6 * 7.0 / 299792.458)
    assert float(doppler_shift_hz(437e6, 7.0)) < 0
    rr = np.array([-7.0, 0.0, 3.0])
    f = received_frequency_hz(145.8e6, rr)
    assert f.shape == (3,) and f[1] == 145.8e6
    # Pre-compensated uplink arrives on the target frequency.
    up = uplink_frequency_hz(145.8e6, rr)
    assert np.allclose(received_frequency_hz(up, rr), 145.8e6, rtol=1e-12, atol=0.01)
