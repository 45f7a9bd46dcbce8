"""Communication-window queries, PASEOS's `find_next_window` and `get_communication_window` for skymesh.sim.

`find_next_window(sim, sat, station=... | partner=..., start_s, search_window_s, device=...)` returns the first
window (spacecraft to ground station, or spacecraft to spacecraft) that is open at some time in
[start_s, start_s + search_window_s], with its start, end, length and the volume a named communication device moves
in it (rate x length, as PASEOS). Unlike PASEOS, which steps 10 s at a time and so reports edges up to one step
late, the edges are the engine's: grid search plus extremum search plus bisection to `tolerance_s`, so a grazing
window shorter than the grid is found too. A window already open at start_s starts at start_s (PASEOS does the
same). None when there is no window in the search range.

Only the geometry is simulated (a one- or two-spacecraft run with a 0 W activity); the fleet's power and thermal
state play no part in whether a link is geometrically open. Imports numpy and skymesh.sim only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skymesh.core.errors import InvalidArgument
from skymesh.sim.activities import Activity, ModeRule
from skymesh.sim.comms import GroundStation
from skymesh.sim.engine import EngineConfig, EventKind, Simulation
from skymesh.sim.spacecraft import SpacecraftParams

__all__ = ["Window", "find_next_window"]

DEFAULT_MAX_WINDOW_S = 7200.0  # PASEOS's window_timeout_value_in_s


@dataclass(frozen=True)
class Window:
    """A communication window in seconds since the simulation's epoch; `end_s` is capped at the search's end plus
    `max_window_s` (then `complete` is False)."""

    start_s: float
    end_s: float
    volume_bytes: float
    complete: bool = True

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def volume_bits(self) -> float:
        return self.volume_bytes * 8.0


def _rate(sim: Simulation, sat: int, device: str | None, rate_bytes_per_s: float | None) -> float:
    if rate_bytes_per_s is not None:
        if not rate_bytes_per_s >= 0:
            raise InvalidArgument("must be >= 0", field="rate_bytes_per_s")
        return float(rate_bytes_per_s)
    if device is None:
        return 0.0
    devices = sim.spacecraft[sat].comm_devices
    if device not in devices:
        known = ", ".join(sorted(devices)) or "none"
        raise InvalidArgument(f"{sim.spacecraft[sat].name} has no device {device!r} (has: {known})", field="device")
    return float(devices[device])


def find_next_window(
    sim: Simulation,
    sat: int,
    *,
    station: str | int | None = None,
    partner: int | None = None,
    start_s: float = 0.0,
    search_window_s: float,
    device: str | None = None,
    rate_bytes_per_s: float | None = None,
    max_window_s: float = DEFAULT_MAX_WINDOW_S,
) -> Window | None:
    """The first window of spacecraft `sat` with a ground station (name or index) or another spacecraft of the
    fleet (`partner`) that is open somewhere in [start_s, start_s + search_window_s]."""
    n = sim.orbits.n
    if not 0 <= sat < n:
        raise InvalidArgument(f"no spacecraft {sat} in a fleet of {n}", field="sat")
    if (station is None) == (partner is None):
        raise InvalidArgument("give exactly one of station or partner", field="station")
    if not search_window_s > 0:
        raise InvalidArgument("must be > 0 s", field="search_window_s")
    if not max_window_s > 0:
        raise InvalidArgument("must be > 0 s", field="max_window_s")
    rate = _rate(sim, sat, device, rate_bytes_per_s)
    cfg = sim.config
    if station is not None:
        names = [s.name for s in sim.stations]
        index = names.index(station) if isinstance(station, str) and station in names else station
        if not isinstance(index, int) or not 0 <= index < len(sim.stations):
            raise InvalidArgument(f"unknown station {station!r}; one of {', '.join(names)}", field="station")
        orbits = sim.orbits.subset(np.array([sat], dtype=np.int64))
        stations: tuple[GroundStation, ...] = (sim.stations[index],)
        pairs: tuple[tuple[int, int], ...] = ()
        kind, arg = EventKind.CONTACT, 0
    else:
        assert partner is not None
        if not 0 <= partner < n or partner == sat:
            raise InvalidArgument(f"partner must be another spacecraft of the fleet (0..{n - 1})", field="partner")
        orbits = sim.orbits.subset(np.array([sat, partner], dtype=np.int64))
        stations = ()
        pairs = ((0, 1),)
        kind, arg = EventKind.ISL, 0
    config = EngineConfig(
        step_s=cfg.step_s, decision_step_s=1e12, tolerance_s=cfg.tolerance_s, eclipse_radius_m=cfg.eclipse_radius_m,
        isl_radius_m=cfg.isl_radius_m, isl_pairs=pairs, earth_rotation_offset_s=cfg.earth_rotation_offset_s,
    )  # fmt: skip
    probe = Simulation(orbits, [SpacecraftParams()] * orbits.n, [Activity("idle", 0.0)], [ModeRule("idle")],
                       sim.epoch, stations, config)  # fmt: skip
    horizon = search_window_s + max_window_s
    res = probe.run(horizon, start_s=start_s)
    open_at_start = bool((res.isl_contact if kind == EventKind.ISL else res.in_contact)[0, 0])
    m = (res.event_kind == kind) & (res.event_sat == 0) & (res.event_arg == arg)
    times, values = res.event_time_s[m], res.event_value[m]
    search_end = start_s + search_window_s
    if open_at_start:
        begin = start_s
        closes = times[values < 0]
    else:
        opens = times[(values > 0) & (times <= search_end)]
        if opens.size == 0:
            return None
        begin = float(opens[0])
        closes = times[(values < 0) & (times > begin)]
    complete = closes.size > 0
    end = float(closes[0]) if complete else start_s + horizon
    return Window(begin, end, rate * (end - begin), complete)
