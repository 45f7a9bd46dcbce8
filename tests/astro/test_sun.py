"""The precise Sun (VSOP87) and the inertial frames against astropy (ERFA's built-in ephemeris, no downloads)."""

from __future__ import annotations

import numpy as np
import pytest

from skymesh.astro.inertial import ecef_to_inertial, teme_to_gcrs_matrix
from skymesh.astro.sun import AU_KM, sun_position_km
from skymesh.core.errors import InvalidArgument

astropy_units = pytest.importorskip("astropy.units")
from astropy.coordinates import GCRS, ITRS, TEME, CartesianRepresentation, get_body  # noqa: E402
from astropy.time import Time  # noqa: E402
from astropy.utils import iers  # noqa: E402

iers.conf.auto_download = False  # offline; dates inside the bundled IERS tables
u = astropy_units
ONE_ARCSEC_DEG = 1.0 / 3600.0
# 1995-2025, every 19.3 days plus a few hours: all seasons, both ends of the range the simulator is used over
JD = 2_449_718.5 + np.arange(0.0, 30 * 365.25, 19.3) + 0.37


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = np.sum(a * b, axis=-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def test_sun_gcrs_within_one_and_a_half_arcseconds_of_astropy() -> None:
    """Measured: 1.18" at worst, 0.2" typical (the worst in the 1990s, where TT - UTC was 8 s below the constant)."""
    t = Time(JD, format="jd", scale="utc")
    ref = get_body("sun", t).cartesian.xyz.to(u.km).value.T  # GCRS, apparent (light time + aberration)
    mine = sun_position_km(JD, "gcrs")
    err = angle_deg(mine, ref)
    assert err.max() < 1.5 * ONE_ARCSEC_DEG
    assert np.median(err) < 0.5 * ONE_ARCSEC_DEG
    np.testing.assert_allclose(np.linalg.norm(mine, axis=-1), np.linalg.norm(ref, axis=-1), rtol=1e-5)
    assert np.linalg.norm(mine, axis=-1).min() > 0.98 * AU_KM
    np.testing.assert_array_equal(sun_position_km(JD, "j2000"), mine)


def test_sun_teme_within_two_arcseconds_of_astropy() -> None:
    t = Time(JD, format="jd", scale="utc")
    ref = get_body("sun", t).transform_to(TEME(obstime=t)).cartesian.xyz.to(u.km).value.T
    assert angle_deg(sun_position_km(JD, "teme"), ref).max() < 2 * ONE_ARCSEC_DEG


def test_teme_to_gcrs_and_earth_fixed_rotation_against_astropy() -> None:
    t = Time(JD, format="jd", scale="utc")
    vec = np.array([7000.0, -1200.0, 3000.0])
    teme = TEME(CartesianRepresentation(*(np.repeat(vec[:, None], JD.size, axis=1) * u.km)), obstime=t)
    ref = teme.transform_to(GCRS(obstime=t)).cartesian.xyz.to(u.km).value.T
    mine = np.einsum("...ij,...j->...i", teme_to_gcrs_matrix(JD), vec)
    assert angle_deg(mine, ref).max() < 2 * ONE_ARCSEC_DEG
    # a ground point: astropy applies polar motion and UT1 - UTC (< 0.9 s); allow both (about 30 m at 6378 km)
    itrs = ITRS(CartesianRepresentation(*(np.repeat(np.array([[6378.0], [0.0], [100.0]]), JD.size, axis=1) * u.km)),
                obstime=t)  # fmt: skip
    ref_g = itrs.transform_to(GCRS(obstime=t)).cartesian.xyz.to(u.km).value.T
    mine_g = ecef_to_inertial(np.array([6378.0, 0.0, 100.0]), JD, "gcrs")
    assert np.linalg.norm(mine_g - ref_g, axis=-1).max() < 0.5  # km: 0.9 s of rotation is 0.42 km at the equator
    with pytest.raises(InvalidArgument):
        ecef_to_inertial(np.zeros(3), JD, "icrf")
