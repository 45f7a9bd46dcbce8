"""Doppler shift of a radio link from the range rate between satellite and station.

First order in v/c (the second-order term is below 1e-9 of the frequency for any Earth orbit). Range rate is
positive when the satellite moves away (as `topocentric` returns it), so a receding satellite's downlink arrives
lower: shift = -f * range_rate / c.

Runtime imports: numpy only.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["SPEED_OF_LIGHT_KM_S", "doppler_shift_hz", "received_frequency_hz", "uplink_frequency_hz"]

SPEED_OF_LIGHT_KM_S = 299_792.458

F64 = NDArray[np.float64]


def doppler_shift_hz(frequency_hz: ArrayLike, range_rate_km_s: ArrayLike) -> F64:
    """Received minus transmitted frequency (Hz) of a signal at `frequency_hz`; arrays broadcast."""
    f = np.asarray(frequency_hz, dtype=np.float64)
    rr = np.asarray(range_rate_km_s, dtype=np.float64)
    return np.asarray(-f * rr / SPEED_OF_LIGHT_KM_S, dtype=np.float64)


def received_frequency_hz(frequency_hz: ArrayLike, range_rate_km_s: ArrayLike) -> F64:
    """Frequency (Hz) at which a downlink transmitted at `frequency_hz` arrives at the station."""
    f = np.asarray(frequency_hz, dtype=np.float64)
    return np.asarray(f + doppler_shift_hz(f, range_rate_km_s), dtype=np.float64)


def uplink_frequency_hz(target_frequency_hz: ArrayLike, range_rate_km_s: ArrayLike) -> F64:
    """Frequency (Hz) to transmit so that the satellite receives `target_frequency_hz` (pre-compensation)."""
    f = np.asarray(target_frequency_hz, dtype=np.float64)
    rr = np.asarray(range_rate_km_s, dtype=np.float64)
    return np.asarray(f / (1.0 - rr / SPEED_OF_LIGHT_KM_S), dtype=np.float64)
