"""Battery model (PASEOS `paseos/power/charge_model.py` and `discharge_model.py`), in closed form.

PASEOS: a battery of fixed capacity (Ws) charges at a constant rate while the spacecraft is not eclipsed (a solar
panel; an RTG charges always), is drained at the current activity's power, and is clipped to [0, capacity]. Between
events (eclipse edges, activity changes) the net power is constant, so the energy after h seconds is exactly
clip(E + (charge - draw) * h, 0, capacity) and a threshold crossing time is a division. No time stepping.

Imports numpy only.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["advance_energy_ws", "net_power_w", "time_to_energy_s"]

F64 = NDArray[np.float64]
B = NDArray[np.bool_]


def net_power_w(charge_power_w: F64, draw_w: F64, sunlit: B, rtg: B) -> F64:
    """Net power into the battery: charging when sunlit (or always for an RTG) minus the activity's draw."""
    return np.where(sunlit | rtg, charge_power_w, 0.0) - draw_w


def advance_energy_ws(energy_ws: F64, capacity_ws: F64, net_w: F64, h_s: F64) -> F64:
    """Energy after h_s seconds at constant net power, clipped to [0, capacity] (exact for constant net power)."""
    out: F64 = np.minimum(np.maximum(energy_ws + net_w * h_s, 0.0), capacity_ws)
    return out


def time_to_energy_s(energy_ws: F64, target_ws: F64, net_w: F64) -> F64:
    """Seconds until the energy reaches target at constant net power (inf when it never does)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        dt = (target_ws - energy_ws) / net_w
    return np.where(np.isfinite(dt) & (dt >= 0), dt, np.inf)
