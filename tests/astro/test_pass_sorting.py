"""The pass search's argsort-based orders give exactly `np.lexsort`'s order (ties, NaN and float rounding too)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from skymesh.astro.passes import _order_by_pair, _order_by_time


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(0, 400), decimals=st.integers(0, 2), nan=st.booleans())
def test_orders_equal_lexsort(seed: int, size: int, decimals: int, nan: bool) -> None:
    rng = np.random.default_rng(seed)
    pair = rng.integers(0, 12, size).astype(np.int64)
    t = np.round(rng.uniform(-60.0, 1000.0, size), decimals)  # few decimals: many exact ties
    if nan and size:
        t[rng.integers(0, size)] = np.nan
    kind = rng.choice(np.array([1, -1], dtype=np.int8), size)
    assert np.array_equal(_order_by_pair(pair, t, 4e4, tie=kind), np.lexsort((-kind, t, pair)))
    assert np.array_equal(_order_by_pair(pair, t, 4e4), np.lexsort((t, pair)))
    # A span too small for the times: rounding breaks the combined key, the check falls back to lexsort.
    assert np.array_equal(_order_by_pair(pair, t, 1e-3), np.lexsort((t, pair)))
    assert np.array_equal(_order_by_time(t, pair), np.lexsort((pair, t)))
