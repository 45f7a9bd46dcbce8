"""Radiation effects (PASEOS `paseos/radiation/radiation_model.py`): Poisson data corruption, restarts, failures.

Restarts (software faults that interrupt the running activity) and failures (single-event latch-up: the spacecraft
is dead from then on) are Poisson processes with per-spacecraft rates. The engine samples their event times for the
whole horizon up front from one seeded generator, so a run is reproducible and independent of how satellites are
chunked. `data_corruption_mask` is PASEOS's bit-flip model; pass `np.random.RandomState(seed)` to get PASEOS's exact
draws (its tests seed the legacy global generator).

Imports numpy only.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["data_corruption_mask", "event_probability", "sample_poisson_times"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


def event_probability(events_per_s: F64 | float, interval_s: F64 | float) -> F64:
    """P(at least one event in the interval) = 1 - exp(-rate * interval)."""
    return np.asarray(1.0 - np.exp(-np.asarray(interval_s) * np.asarray(events_per_s)), dtype=np.float64)


def data_corruption_mask(
    shape: tuple[int, ...],
    exposure_s: float,
    events_per_s: float,
    rng: np.random.Generator | np.random.RandomState,
) -> NDArray[np.bool_]:
    """Boolean mask of corrupted elements after `exposure_s` seconds of exposure (each element independently)."""
    p = float(event_probability(events_per_s, exposure_s))
    draws = rng.rand(*shape) if isinstance(rng, np.random.RandomState) else rng.random(shape)
    return np.asarray(draws < p)


def sample_poisson_times(events_per_s: F64, duration_s: float, rng: np.random.Generator) -> tuple[I64, F64]:
    """All event times of independent Poisson processes on [0, duration): (spacecraft index, time), sorted by time."""
    rates = np.asarray(events_per_s, dtype=np.float64)
    counts = rng.poisson(rates * duration_s)
    sats = np.repeat(np.arange(rates.size, dtype=np.int64), counts)
    times = rng.uniform(0.0, duration_s, size=sats.size)
    order = np.argsort(times, kind="stable")
    return sats[order], times[order]
