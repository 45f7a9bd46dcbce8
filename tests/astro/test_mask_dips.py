"""Short passes through narrow dips of a horizon mask: found by the 60 s grid search, edges within 1 s.

A ridge of 60 deg with two notches down to 8 deg: a satellite is visible only for the seconds it spends in a
notch, usually far from its elevation peak (issue 13: such passes were missed). The reference samples each
satellite's look angles every 0.2 s, straight from SGP4, inside every pass above the notch floor.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from skymesh.astro.frames import SECONDS_PER_DAY, datetime_to_jd
from skymesh.astro.passes import HorizonMask, find_passes
from skymesh.astro.propagate import SatelliteBatch, look_angles
from skymesh.astro.tle_gen import generate_tles

START = datetime(2026, 11, 22, 3, 17, 11, tzinfo=UTC)
RIDGE = HorizonMask(
    (0.0, 99.0, 100.0, 103.0, 104.0, 249.0, 250.0, 252.0, 253.0),
    (60.0, 60.0, 8.0, 8.0, 60.0, 60.0, 8.0, 8.0, 60.0),
)
SITE = (np.array([48.0]), np.array([11.0]), np.array([500.0]))


def _reference(tles: list, floor_passes, jd0: float) -> list[tuple[int, float, float]]:  # type: ignore[type-arg]
    """(satellite, AOS s, LOS s) of every stretch above the mask, sampled every 0.2 s."""
    out = []
    for k in range(len(floor_passes)):
        sat = int(floor_passes.sat_index[k])
        a = (floor_passes.aos_jd[k] - jd0) * SECONDS_PER_DAY
        b = (floor_passes.los_jd[k] - jd0) * SECONDS_PER_DAY
        t = np.arange(a, b, 0.2)
        la = look_angles(SatelliteBatch([tles[sat]]), *SITE, jd0 + t / SECONDS_PER_DAY)
        el, az = la.elevation_deg[0, 0], la.azimuth_deg[0, 0]
        # Padded: a stretch may begin or end exactly where the pass above the notch floor does.
        up = np.r_[False, el > RIDGE.elevation_at(az), False]
        starts = np.flatnonzero(~up[:-1] & up[1:])  # index into t of the first sample above
        ends = np.flatnonzero(up[:-1] & ~up[1:]) - 1  # index into t of the last sample above
        out += [(sat, float(t[s]), float(t[e])) for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
    return out


def test_short_passes_through_mask_dips_are_found_within_a_second() -> None:
    tles = generate_tles("sso", 25, START, seed=5) + generate_tles("iss", 15, START, seed=6)
    batch = SatelliteBatch(tles)
    end = START + timedelta(hours=12)
    jd0 = datetime_to_jd(START)
    table = find_passes(batch, *SITE, START, end, 5.0, horizon_masks=[RIDGE])
    floor = find_passes(batch, *SITE, START, end, 8.0)  # every visible stretch lies inside one of these
    ref = _reference(tles, floor, jd0)
    short = [r for r in ref if r[2] - r[1] >= 5.0]
    assert len(short) >= 5  # the scenario really has notch passes
    aos = (table.aos_jd - jd0) * SECONDS_PER_DAY
    los = (table.los_jd - jd0) * SECONDS_PER_DAY
    for sat, a, b in short:
        hit = np.flatnonzero((table.sat_index == sat) & (np.abs(aos - a) <= 1.0) & (np.abs(los - b) <= 1.0))
        assert hit.size == 1, (sat, a, b, b - a)
    # Nothing invented: every pass found is one of the reference's stretches (those under 0.4 s may fall between
    # its samples).
    for j in range(len(table)):
        if los[j] - aos[j] >= 0.4:
            assert any(s == table.sat_index[j] and abs(a - aos[j]) <= 1.0 for s, a, _ in ref), j
    assert table.stats["masked_passes"] == len(table)
