"""Edge detection: sign changes of a function sampled on a coarse time grid, refined by vectorised bisection.

The engine samples eclipse, ground-link and inter-satellite-link functions at the grid knots, finds the intervals
where the sign flips, and bisects inside those intervals on Hermite-interpolated positions until the edge is known
to `tolerance_s`. All edges of a fleet are refined together (one numpy call per bisection step), so the cost is
proportional to the number of edges, not to satellites x seconds.

Limitation shared by any grid search: a window that opens and closes between two knots (a grazing pass shorter than
the grid step) is not seen. Imports numpy only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

__all__ = ["find_sign_changes", "refine_edges"]

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
