"""Where a horizon mask can fool the pass grid: the mask's range over azimuth intervals, and the suspect samples.

With a mask, visibility is elevation minus mask(azimuth), which is not smooth: a satellite crossing a notch of a
ridge is visible for seconds, far from its elevation peak, and a ridge can close a pass for less than a grid step.
`mask_suspects` picks the grid samples around which that can happen; `skymesh.astro._mask_search` samples there
finely. Runtime imports: numpy only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from skymesh.astro._pass_kernels import Stations

__all__ = ["MASK_TABLE_STEP_DEG", "bin_tables", "mask_range_deg", "mask_suspects"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

MASK_TABLE_STEP_DEG = 0.05


def bin_tables(table: F64) -> dict[str, F64]:
    per_bin = round(1.0 / MASK_TABLE_STEP_DEG)
    if table.shape[0] == 0:
        empty = np.zeros((1, 0, 720))
        return {"mask_bin_min": empty, "mask_bin_max": empty}
    # The table holds the mask at the left edge of each 0.05-degree step: a bin also needs the next bin's first.
    edges = np.concatenate([table, table[:, :1]], axis=1)
    lo = np.minimum(table.reshape(table.shape[0], 360, per_bin).min(axis=2), edges[:, per_bin::per_bin])
    hi = np.maximum(table.reshape(table.shape[0], 360, per_bin).max(axis=2), edges[:, per_bin::per_bin])
    mins, maxs = [np.concatenate([lo, lo], axis=1)], [np.concatenate([hi, hi], axis=1)]
    width = 1
    while 2 * width <= 720:
        a, b = mins[-1], maxs[-1]
        mins.append(np.concatenate([np.minimum(a[:, :-width], a[:, width:]), a[:, -width:]], axis=1))
        maxs.append(np.concatenate([np.maximum(b[:, :-width], b[:, width:]), b[:, -width:]], axis=1))
        width *= 2
    return {"mask_bin_min": np.stack(mins), "mask_bin_max": np.stack(maxs)}


def mask_range_deg(st: Stations, rows: I64, lo_deg: F64, hi_deg: F64) -> F64:
    """Highest minus lowest mask elevation over azimuths [lo_deg, hi_deg] (hi - lo < 360, any turn), per item;
    at 1-degree resolution, rounded outwards."""
    i0 = np.floor(lo_deg).astype(np.int64) % 360
    length = np.clip(np.floor(hi_deg).astype(np.int64) - np.floor(lo_deg).astype(np.int64) + 1, 1, 360)
    level = np.floor(np.log2(length)).astype(np.int64)
    i1 = i0 + length - (1 << level)
    top = np.maximum(st.mask_bin_max[level, rows, i0], st.mask_bin_max[level, rows, i1])
    bottom = np.minimum(st.mask_bin_min[level, rows, i0], st.mask_bin_min[level, rows, i1])
    return np.asarray(top - bottom, dtype=np.float64)


def mask_suspects(
    st: Stations, masked: I64, above_floor: B, el_deg: F64, az: F64, mask: F64, nc: int, n_times: int
) -> tuple[I64, I64, I64]:
    """Grid samples (satellite, time, station) at masked stations around which a pass can open or close unseen.

    Between its neighbours a sample's visibility (elevation - mask) can change by at most the elevation's change
    plus the mask's range over the azimuths swept; a sample further from zero than that (plus a degree) is safe,
    and so is one below the mask's lowest point less a margin. What is left: the edges of passes, and satellites
    passing a notch or a ridge, not a geostationary satellite sitting under a ridge all day.
    """
    nm = masked.size
    el3, az3, g3 = (
        el_deg.reshape(nc, n_times, nm),
        az.reshape(nc, n_times, nm),
        (el_deg - mask).reshape(nc, n_times, nm),
    )
    prev = np.concatenate([el3[:, :1], el3[:, :-1]], axis=1)
    nxt = np.concatenate([el3[:, 1:], el3[:, -1:]], axis=1)
    el_var = np.maximum(np.abs(nxt - el3), np.abs(el3 - prev))
    d_prev = (np.concatenate([az3[:, :1], az3[:, :-1]], axis=1) - az3 + 180.0) % 360.0 - 180.0
    d_next = (np.concatenate([az3[:, 1:], az3[:, -1:]], axis=1) - az3 + 180.0) % 360.0 - 180.0
    lo = az3 + np.minimum(0.0, np.minimum(d_prev, d_next))
    hi = az3 + np.maximum(0.0, np.maximum(d_prev, d_next))
    rows = np.broadcast_to(st.mask_row[masked], az3.shape)
    spread = mask_range_deg(st, rows.ravel(), lo.ravel(), hi.ravel()).reshape(az3.shape)
    suspect = above_floor.reshape(nc, n_times, nm) & (np.abs(g3) <= el_var + spread + 1.0)
    n, k, c = np.nonzero(suspect)
    return n.astype(np.int64), k.astype(np.int64), masked[c].astype(np.int64)
