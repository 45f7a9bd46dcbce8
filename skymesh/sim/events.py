"""Edge detection: zeros of a smooth function sampled on a coarse time grid, refined by vectorised bisection.

The engine samples eclipse, ground-link and inter-satellite-link functions at the grid knots. `find_edges` then
finds every zero in two passes, both vectorised over all rows (satellites, or satellite-station pairs) at once:

1. Sign changes between knots: bisect inside the interval (on Hermite-interpolated positions) to `tolerance_s`.
2. Windows that open and close between two knots (a grazing pass or a short eclipse, shorter than the grid step):
   the function keeps its sign at both knots but turns towards zero in between. Its slope at every knot (from the
   positions and velocities there) says where an extremum lies; the extremum is located by bisection on the sign of
   the slope (central differences on the Hermite interpolant), and when its value has the other sign the two edges
   on either side of it are bisected like any other edge. A window longer than twice the tolerance cannot hide.

What can still hide: three or more zeros inside one grid interval (two windows between two knots, or a window
right next to another edge), which needs features shorter than the grid step on both sides of an extremum.
Imports numpy only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

__all__ = ["find_edges", "find_sign_changes", "refine_edges"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]


def find_sign_changes(positive: B) -> tuple[I64, I64]:
    """(row, k) for every row of a (M, K) boolean array whose value differs between knots k and k + 1."""
    flips = positive[:, 1:] != positive[:, :-1]
    rows, ks = np.nonzero(flips)
    return rows.astype(np.int64), ks.astype(np.int64)


def refine_edges(
    fn: Callable[[F64], B],
    t_lo: F64,
    t_hi: F64,
    value_at_lo: B,
    tolerance_s: float,
) -> F64:
    """Bisect per edge: `fn(t)` gives the boolean state of every edge's row at times t (one time per edge).

    Returns the first time (to within tolerance_s) at which the state differs from `value_at_lo`.
    """
    lo = np.array(t_lo, dtype=np.float64)
    hi = np.array(t_hi, dtype=np.float64)
    if lo.size == 0:
        return hi
    width = float(np.max(hi - lo))
    iterations = max(0, int(np.ceil(np.log2(max(width, tolerance_s) / tolerance_s))))
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        same = fn(mid) == value_at_lo
        active = hi - lo > tolerance_s  # each edge stops on its own: results do not depend on the batch
        lo = np.where(same & active, mid, lo)
        hi = np.where(~same & active, mid, hi)
    return hi


ValueFn = Callable[[I64, I64, F64], F64]


def find_edges(values: F64, slopes: F64, knots: F64, fn: ValueFn, tolerance_s: float) -> tuple[I64, F64, B]:
    """Every zero of a smooth function of time, per row: (rows, times, rising) sorted by row then time.

    values, slopes: (M, K) samples of the function and of its time derivative at the knots (the caller has positions
    and velocities there, so slopes cost one more vectorised evaluation); fn(rows, ks, t): values at times t inside
    interval ks (knots[ks] <= t <= knots[ks + 1]) of each row, typically on Hermite-interpolated positions.
    rising: the function becomes positive.
    """
    positive = values > 0
    rows, ks = find_sign_changes(positive)
    t_edge = refine_edges(lambda t: fn(rows, ks, t) > 0, knots[ks], knots[ks + 1], positive[rows, ks], tolerance_s)
    rising = ~positive[rows, ks]
    m, k = values.shape
    if k < 2 or m == 0:
        return rows, t_edge, rising
    eps = min(1e-3, 1e-3 * float(np.min(np.diff(knots))))
    same = positive[:, 1:] == positive[:, :-1]
    toward = np.where(
        positive[:, :-1], (slopes[:, :-1] < 0) & (slopes[:, 1:] > 0), (slopes[:, :-1] > 0) & (slopes[:, 1:] < 0)
    )
    cr, ck = np.nonzero(same & toward)
    cr, ck = cr.astype(np.int64), ck.astype(np.int64)
    if cr.size:
        lo, hi = knots[ck].copy(), knots[ck + 1].copy()
        first_up = ~positive[cr, ck]  # below zero: looking for a maximum (slope > 0 before it)
        iters = max(0, int(np.ceil(np.log2(max(float(np.max(hi - lo)), tolerance_s) / tolerance_s))))
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            s_mid = fn(cr, ck, np.minimum(mid + eps, knots[ck + 1])) - fn(cr, ck, np.maximum(mid - eps, knots[ck]))
            before = (s_mid > 0) == first_up
            lo, hi = np.where(before, mid, lo), np.where(before, hi, mid)
        t_ext = 0.5 * (lo + hi)
        flips = (fn(cr, ck, t_ext) > 0) != positive[cr, ck]
        if flips.any():
            fr, fk, fe = cr[flips], ck[flips], t_ext[flips]
            start = positive[fr, fk]
            t_in = refine_edges(lambda t: fn(fr, fk, t) > 0, knots[fk], fe, start, tolerance_s)
            t_out = refine_edges(lambda t: fn(fr, fk, t) > 0, fe, knots[fk + 1], ~start, tolerance_s)
            rows = np.concatenate([rows, fr, fr])
            t_edge = np.concatenate([t_edge, t_in, t_out])
            rising = np.concatenate([rising, ~start, start])
    order = np.lexsort((t_edge, rows))
    return rows[order], t_edge[order], rising[order]
