"""Passes at stations with a horizon mask: the grid's, corrected by a fine sampling where the mask can fool it.

See `skymesh.astro._mask_tables` for which grid samples are suspect. Runtime imports: numpy and the pass kernels.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from skymesh.astro._pass_kernels import GridBlock, GridScan, solve_crossings

__all__ = ["masked_passes"]

F64 = NDArray[np.float64]


# Sampling step around grid samples where a horizon mask can fool the grid: a pass (or a gap) of 5 s or more has
# at least two samples, then its edges are solved to 10 ms.
_DIP_STEP_S = 2.0


def masked_passes(
    block: GridBlock,
    scan: GridScan,
    t_grid: F64,
    step_s: float,
    b0: int,
    n_sta: int,
    window_s: float,
    min_duration_s: float,
    grid: Mapping[str, NDArray[np.generic]],
) -> dict[str, NDArray[np.generic]]:
    """The passes at stations with a horizon mask: the grid's, corrected by a fine sampling wherever the mask can
    open or close a pass between grid samples (issue 13: a satellite in a narrow notch of a ridge for a few seconds,
    far from its elevation peak; a ridge hiding a pass for less than a grid step).

    Inside the sampled stretches (around `scan.dip_*`, see `mask_suspects`) the fine runs are the truth, outside
    them the grid's passes; pieces that touch are joined.
    """
    n_samples = round(float(t_grid[-1] - t_grid[0]) / _DIP_STEP_S)
    pair = scan.dip_n * n_sta + scan.dip_s
    order = np.lexsort((scan.dip_k, pair))
    cp, ck = pair[order], scan.dip_k[order]
    # Samples around suspects two grid steps apart overlap: one stretch from k - 1 to k + 1 of a run of them.
    new_run = np.r_[True, (cp[1:] != cp[:-1]) | (ck[1:] > ck[:-1] + 2)]
    last = np.r_[np.flatnonzero(new_run)[1:] - 1, cp.size - 1]
    ratio = round(step_s / _DIP_STEP_S)
    lo = np.clip((ck[new_run] - 1) * ratio, 0, n_samples)
    hi = np.clip((ck[last] + 1) * ratio, 0, n_samples)
    count = hi - lo + 1
    kp = np.repeat(cp[new_run], count)
    km = np.repeat(lo, count) + (np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count))
    kn, ks = kp // n_sta, kp % n_sta
    t = t_grid[0] + km * _DIP_STEP_S
    g, sin_el = block.visibility_and_sin(kn, ks, t)
    up = g > 0.0
    nxt_same = np.r_[(kp[1:] == kp[:-1]) & (km[1:] == km[:-1] + 1), False]
    prv_same = np.r_[False, nxt_same[:-1]]
    # Fine runs; an edge without a sample below the mask beyond it is the edge of the stretch, where the grid's
    # pass continues it.
    rise = np.flatnonzero(up & ~(prv_same & np.r_[False, up[:-1]]))
    fall = np.flatnonzero(up & ~(nxt_same & np.r_[up[1:], False]))
    a, b = t[rise].copy(), t[fall].copy()
    rb, fb = prv_same[rise], nxt_same[fall]
    r, f = rise[rb], fall[fb]
    a[rb] = solve_crossings(block, kn[r], ks[r], t[r - 1], t[r], g[r - 1], g[r])
    b[fb] = solve_crossings(block, kn[f], ks[f], t[f], t[f + 1], g[f], g[f + 1])
    run_id = np.repeat(np.arange(rise.size), fall - rise + 1)
    members = np.flatnonzero(up)
    best = np.full(rise.size, -np.inf)
    np.maximum.at(best, run_id, sin_el[members])
    is_top = sin_el[members] == best[run_id]
    run_tca = np.empty(rise.size)
    run_tca[run_id[is_top]] = t[members[is_top]]
    pieces: list[tuple[int, float, float, float]] = list(
        zip(kp[rise].tolist(), a.tolist(), b.tolist(), run_tca.tolist(), strict=True)
    )
    # The grid's passes at masked stations, less the sampled stretches of their pair.
    s_first, s_last = np.flatnonzero(~prv_same), np.flatnonzero(~nxt_same)
    stretches: dict[int, list[tuple[float, float]]] = {}
    for p_, s_lo, s_hi in zip(kp[s_first].tolist(), t[s_first].tolist(), t[s_last].tolist(), strict=True):
        stretches.setdefault(p_, []).append((s_lo, s_hi))
    g_key = np.asarray(grid["sat_index"], dtype=np.int64) * n_sta + np.asarray(grid["station_index"], np.int64)
    g_a, g_b = np.asarray(grid["aos_s"], dtype=np.float64), np.asarray(grid["los_s"], dtype=np.float64)
    g_tca = np.asarray(grid["tca_s"], dtype=np.float64)
    masked_rows = np.flatnonzero(block.st.mask_row[np.asarray(grid["station_index"], dtype=np.int64)] >= 0)
    for i in masked_rows.tolist():
        p_ = int(g_key[i]) - b0 * n_sta
        spans = [(float(g_a[i]), float(g_b[i]))]
        for s_lo, s_hi in stretches.get(p_, []):
            spans = [q for x, y in spans for q in ((x, min(y, s_lo)), (max(x, s_hi), y)) if q[1] > q[0]]
        pieces += [(p_, x, y, float(g_tca[i]) if x <= g_tca[i] <= y else x) for x, y in spans]
    empty: dict[str, NDArray[np.generic]] = {k: v[:0] for k, v in grid.items()}
    if not pieces:
        return empty
    arr = np.asarray(pieces, dtype=np.float64)
    arr = arr[np.lexsort((arr[:, 1], arr[:, 0]))]
    pp, pa, pb, pt = arr[:, 0].astype(np.int64), arr[:, 1], arr[:, 2], arr[:, 3]
    # Join pieces of one pair that touch or overlap: a new pass starts where a piece begins after all before it.
    starts = np.ones(pp.size, dtype=bool)
    run_end = -np.inf
    for i in range(pp.size):
        if i and pp[i] == pp[i - 1] and pa[i] <= run_end + 1e-6:
            starts[i] = False
            run_end = max(run_end, float(pb[i]))
        else:
            run_end = float(pb[i])
    group = np.cumsum(starts) - 1
    n_pass = int(group[-1]) + 1
    aos = np.full(n_pass, np.inf)
    los = np.full(n_pass, -np.inf)
    np.minimum.at(aos, group, pa)
    np.maximum.at(los, group, pb)
    gp = pp[starts]
    n_loc, sta = gp // n_sta, gp % n_sta
    # Closest approach: the highest of the pieces' own (a fine run's top sample, a grid pass's TCA).
    sin_t, _, _ = block.geometry(n_loc[group], sta[group], pt)
    top = np.full(n_pass, -np.inf)
    np.maximum.at(top, group, sin_t)
    pick = sin_t == top[group]
    tca = np.empty(n_pass)
    tca[group[pick]] = pt[pick]
    aos_clipped, los_clipped = aos <= 0.0, los >= window_s
    aos, los = np.maximum(aos, 0.0), np.minimum(los, window_s)
    keep = (los > aos) & ((los - aos) >= min_duration_s)
    n_loc, sta, aos, los = n_loc[keep], sta[keep], aos[keep], los[keep]
    tca = np.clip(tca[keep], aos, los)
    three = (np.r_[n_loc, n_loc, n_loc], np.r_[sta, sta, sta], np.r_[aos, tca, los])
    sin_q, _, az_q = block.geometry(*three, azimuth=True)
    assert az_q is not None
    m = n_loc.size
    return {
        "sat_index": n_loc + b0,
        "station_index": sta,
        "aos_s": aos,
        "tca_s": tca,
        "los_s": los,
        "max_elevation_deg": np.degrees(np.arcsin(np.clip(sin_q[m : 2 * m], -1.0, 1.0))),
        "aos_azimuth_deg": az_q[:m],
        "tca_azimuth_deg": az_q[m : 2 * m],
        "los_azimuth_deg": az_q[2 * m :],
        "aos_clipped": aos_clipped[keep],
        "los_clipped": los_clipped[keep],
    }
