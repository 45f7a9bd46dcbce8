"""Frames and batch SGP4: GMST and TEME->ECEF against sgp4/Skyfield, SGP4 against Vallado's verification output."""

from __future__ import annotations

import pkgutil
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sgp4.propagation import gstime
from skyfield.api import EarthSatellite, load, wgs84
from skyfield.sgp4lib import TEME_to_ITRF

from skymesh.astro.frames import (
    datetime_to_jd,
    ecef_to_geodetic,
    geodetic_to_ecef,
    gmst_rad,
    jd_grid,
    jd_to_datetime,
    teme_to_ecef,
    topocentric,
)
from skymesh.astro.propagate import SatelliteBatch, look_angles
from skymesh.astro.tle import TLE, format_tle
from skymesh.astro.tle_gen import generate_tles
from skymesh.core.errors import InvalidArgument

one_meter_km = 1e-3
one_mm_per_s_km_s = 1e-6
EPOCH = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


def test_julian_date_round_trip() -> None:
    t = datetime(2026, 3, 1, 12, 34, 56, 789012, tzinfo=UTC)
    assert datetime_to_jd(datetime(2000, 1, 1, 12, tzinfo=UTC)) == 2451545.0
    assert abs((jd_to_datetime(datetime_to_jd(t)) - t).total_seconds()) < 5e-5
    with pytest.raises(InvalidArgument) as err:
        datetime_to_jd(datetime(2026, 1, 1))
    assert "naive" in str(err.value)
    grid = jd_grid(t, t + timedelta(seconds=150), 60.0)
    assert grid.size == 4 and abs((grid[-1] - grid[0]) * 86400 - 150) < 1e-4


def test_gmst_matches_sgp4() -> None:
    jd = np.array([2451545.0, 2460000.25, 2461366.123456, 2440000.9])
    expected = np.array([gstime(x) for x in jd])
    assert np.allclose(gmst_rad(jd), expected, atol=1e-9)


def test_geodetic_round_trip_and_known_points() -> None:
    assert np.allclose(geodetic_to_ecef(0.0, 0.0, 0.0), [6378.137, 0.0, 0.0])
    assert np.allclose(geodetic_to_ecef(90.0, 0.0, 0.0), [0.0, 0.0, 6356.752314245], atol=1e-6)
    lat = np.array([-89.0, -33.9, 0.0, 51.5, 78.2])
    lon = np.array([-179.0, 18.4, 0.0, -0.1, 15.6])
    alt_m = np.array([0.0, 100.0, 2000.0, 35.0, 450.0])
    la, lo, al = ecef_to_geodetic(geodetic_to_ecef(lat, lon, alt_m))
    assert np.allclose(la, lat, atol=1e-9) and np.allclose(lo, lon, atol=1e-9)
    assert np.allclose(al * 1000.0, alt_m, atol=1e-3)
    with pytest.raises(InvalidArgument) as err:
        geodetic_to_ecef(91.0, 0.0, 0.0)
    assert err.value.field == "latitude_deg"


def test_teme_to_ecef_matches_skyfield() -> None:
    tle = generate_tles("iss", 1, EPOCH, seed=3)[0]
    sat = tle.satrec()
    jd = sat.jdsatepoch + sat.jdsatepochF + np.linspace(0.0, 1.0, 7)
    batch = SatelliteBatch([tle])
    r, v, err = batch.propagate(jd)
    assert not err.any()
    r_e, v_e = teme_to_ecef(r[0], v[0], jd)
    for i, x in enumerate(jd):
        whole = np.floor(x)
        r_ref, v_ref = TEME_to_ITRF(whole, r[0, i], v[0, i] * 86400.0, 0.0, 0.0, x - whole)
        assert np.allclose(r_e[i], r_ref, atol=1e-6)
        assert np.allclose(v_e[i], v_ref / 86400.0, atol=1e-8)


def test_look_angles_match_skyfield_and_shapes() -> None:
    tles = generate_tles("sso", 3, EPOCH, seed=4) + generate_tles("geo", 1, EPOCH, seed=4)
    lat = np.array([52.0, -33.9, 64.8])
    lon = np.array([4.4, 18.4, -147.7])
    alt_m = np.array([0.0, 50.0, 150.0])
    ts = load.timescale()
    times = [EPOCH + timedelta(minutes=7 * i) for i in range(40)]
    jd = np.array([datetime_to_jd(t) for t in times])
    la = look_angles(SatelliteBatch(tles), lat, lon, alt_m, jd)
    assert la.elevation_deg.shape == (4, 3, 40)
    t_sf = ts.from_datetimes(times)
    for i, tle in enumerate(tles):
        sat = EarthSatellite(tle.line1, tle.line2, tle.name, ts)
        for s in range(3):
            topo = wgs84.latlon(lat[s], lon[s], elevation_m=alt_m[s])
            alt, az, dist = (sat - topo).at(t_sf).altaz()
            assert np.allclose(la.elevation_deg[i, s], alt.degrees, atol=0.01)
            high = alt.degrees > -80  # azimuth is ill-defined straight below
            assert np.allclose((la.azimuth_deg[i, s][high] - az.degrees[high] + 180) % 360 - 180, 0.0, atol=0.02)
            assert np.allclose(la.range_km[i, s], dist.km, atol=0.1)  # UT1 - UTC moves the site < 0.1 km
    # Range rate agrees with the central difference of range.
    dt_s = 5.0  # a float64 Julian date resolves ~40 us: keep the step well above that
    jd3 = np.stack([jd[:5] - dt_s / 86400.0, jd[:5], jd[:5] + dt_s / 86400.0], axis=1).ravel()
    la3 = look_angles(SatelliteBatch(tles), lat, lon, alt_m, jd3)
    numeric = (la3.range_km[..., 2::3] - la3.range_km[..., 0::3]) / (2 * dt_s)
    assert np.allclose(numeric, la3.range_rate_km_s[..., 1::3], atol=1e-3)  # 1 m/s


def test_topocentric_rejects_bad_shapes() -> None:
    with pytest.raises(InvalidArgument):
        topocentric(np.zeros((3, 3)), np.zeros((3, 3)), [0.0], [0.0], [0.0])


def _verification_cases() -> list[tuple[TLE, np.ndarray, np.ndarray]]:
    """(tle, tsince_min, states (T, 6)) from Vallado's SGP4-VER.TLE and tcppver.out shipped inside sgp4."""
    tle_text = (pkgutil.get_data("sgp4", "SGP4-VER.TLE") or b"").decode("ascii").splitlines()
    out_text = (pkgutil.get_data("sgp4", "tcppver.out") or b"").decode("ascii").replace("\r", "").splitlines()
    tles: dict[str, TLE] = {}
    for i, line in enumerate(tle_text):
        if line.startswith("1 ") and i + 1 < len(tle_text) and tle_text[i + 1].startswith("2 "):
            l1, l2 = line[:69], tle_text[i + 1][:69]
            # Build the dataclass directly: a few verification TLEs are deliberately odd.
            tles[l1[2:7].strip().lstrip("0")] = TLE(name="", norad_id=0, line1=l1, line2=l2)
    cases = []
    current: str | None = None
    rows: list[list[float]] = []
    for line in [*out_text, "end xx"]:
        if "xx" in line:
            if current is not None and rows:
                data = np.array(rows)
                cases.append((tles[current], data[:, 0], data[:, 1:7]))
            current, rows = line.split()[0].lstrip("0"), []
        elif line.strip():
            rows.append([float(x) for x in line.split()[:7]])
    return cases


def test_batch_sgp4_matches_vallado_verification_output() -> None:
    cases = _verification_cases()
    assert len(cases) >= 30
    checked = 0
    errored = 0
    for tle, tsince_min, expected in cases:
        sat = tle.satrec()
        batch = SatelliteBatch([tle])
        jd = np.full(tsince_min.shape, sat.jdsatepoch)
        fr = sat.jdsatepochF + tsince_min / 1440.0
        r, v, err = batch.propagate(jd, jd_fraction=fr)
        ok = err[0] == 0
        # Vallado's deliberate error cases: an errored point is NaN (never a crash), and is not compared.
        assert np.isnan(r[0][~ok]).all()
        if not ok.all():
            errored += 1
        assert np.abs(r[0][ok] - expected[ok, :3]).max(initial=0.0) < one_meter_km, tle.line1[2:7]
        assert np.abs(v[0][ok] - expected[ok, 3:]).max(initial=0.0) < one_mm_per_s_km_s, tle.line1[2:7]
        checked += int(ok.sum())
    assert checked > 500
    assert errored <= 7  # the verification set has seven expected error cases


def test_decayed_satellite_gives_nan_not_a_crash() -> None:
    good = generate_tles("iss", 1, EPOCH, seed=1)[0]
    doomed = format_tle(
        norad_id=99001,
        epoch=EPOCH,
        inclination_deg=51.6,
        raan_deg=0.0,
        eccentricity=0.0005,
        arg_perigee_deg=0.0,
        mean_anomaly_deg=0.0,
        mean_motion_rev_per_day=16.2,  # about 220 km
        bstar_per_earth_radius=0.9,
    )
    batch = SatelliteBatch([good, doomed])
    jd = datetime_to_jd(EPOCH) + np.linspace(0.0, 20.0, 200)
    r, v, err = batch.propagate(jd)
    assert not err[0].any() and np.isfinite(r[0]).all()
    assert err[1].any()
    assert np.isnan(r[1][err[1] != 0]).all() and np.isnan(v[1][err[1] != 0]).all()
    la = look_angles(batch, [10.0], [20.0], [0.0], jd)
    assert np.isfinite(la.elevation_deg[0]).all()
    assert np.isnan(la.elevation_deg[1][:, err[1] != 0]).all()
