"""Spacecraft constraints in the plan: a `ContactValuer` backed by the simulator (`skymesh.sim.inloop`).

For satellites with a `SpacecraftProfile`, every candidate pass is simulated (`evaluate_contacts`: battery and data
on board at each window, as if all candidate windows were taken, which is conservative for the battery). A pass
that would leave the battery below the profile's minimum state of charge gets factor 0 (dropped, reason
SPACECRAFT_POWER); the others get 0.5 + 0.5 x (fraction of the pass's downlink capacity the data on board fills),
so full data stores win ties. Satellites without a profile keep factor 1.

Use: `compute_plan(req, valuer=sim_contact_valuer(profiles))`, or `SchedulerServicer(valuer=...)`.
Imports: numpy, `skymesh.sim` (allowed: the simulator sits below the services) and the scheduler's mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import numpy as np

from skymesh.core.model import SatelliteTarget
from skymesh.scheduler.opportunities import Compiled
from skymesh.scheduler.planning import ContactValuer
from skymesh.sim.inloop import ContactWindow, SpacecraftProfile, evaluate_contacts

__all__ = ["sim_contact_valuer"]


def sim_contact_valuer(profiles: Mapping[str, SpacecraftProfile], *, step_s: float = 60.0) -> ContactValuer:
    """A valuer for the satellites named in `profiles` (keyed by target_id)."""

    def value(c: Compiled) -> list[float]:
        ops = c.problem.opportunities
        factor = np.ones(len(ops))
        sats = [
            (r, pt.target)
            for r, pt in enumerate(c.targets)
            if isinstance(pt.target, SatelliteTarget) and pt.target_id in profiles
        ]
        if not sats or not len(ops):
            return factor.tolist()
        slot = {r: k for k, (r, _) in enumerate(sats)}
        prof = [profiles[t.target_id] for _, t in sats]
        tles = [(t.tle_line1, t.tle_line2) for _, t in sats]
        idx = [i for i in np.argsort(ops.start_s, kind="stable").tolist() if int(ops.request[i]) in slot]
        if not idx:
            return factor.tolist()
        windows = [
            ContactWindow(
                slot[int(ops.request[i])],
                c.t0 + timedelta(seconds=float(ops.start_s[i])),
                c.t0 + timedelta(seconds=float(ops.end_s[i])),
                c.stations[int(ops.resource[i])].station_id,
            )
            for i in idx
        ]
        end = c.t0 + timedelta(seconds=float(ops.end_s[idx].max()) + step_s)
        for i, v in zip(idx, evaluate_contacts(prof, tles, windows, c.t0, end, step_s=step_s), strict=True):
            p = prof[v.window.satellite]
            if not v.above_min_soc:
                factor[i] = 0.0
                continue
            capacity = p.downlink_rate_bytes_per_s * (ops.end_s[i] - ops.start_s[i])
            filled = min(1.0, v.downlinkable_bytes / capacity) if capacity > 0 else 1.0
            factor[i] = 0.5 + 0.5 * filled
        return factor.tolist()

    return value
