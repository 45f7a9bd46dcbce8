"""Per-spacecraft parameters (frozen dataclasses) and their array form for the engine.

`SpacecraftParams` gathers what PASEOS sets with `ActorBuilder.set_power_devices`, `set_thermal_model`,
`set_radiation_model` and `add_comm_device`, with units in the names (Wh for the battery, where PASEOS uses Ws).
`FleetArrays.build` turns a list of them into arrays of shape (n,), which is what every model function takes.

`ThermalParams` (and `PYKEP_EARTH_RADIUS_M`) live in `skymesh.core.model`, next to `SpacecraftProfile` which
carries them over the wire; they are re-exported here. Imports numpy and `skymesh.core` only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from skymesh.core.errors import InvalidArgument
from skymesh.core.model import PYKEP_EARTH_RADIUS_M, ThermalParams
from skymesh.sim.activities import Activity
from skymesh.sim.thermal import ThermalCoefficients

__all__ = ["PYKEP_EARTH_RADIUS_M", "FleetArrays", "RadiationParams", "SpacecraftParams", "ThermalParams"]

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class RadiationParams:
    """Poisson rates (events per second) for bit flips, activity-interrupting restarts and device failure."""

    data_corruption_events_per_s: float = 0.0
    restart_events_per_s: float = 0.0
    failure_events_per_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("data_corruption_events_per_s", "restart_events_per_s", "failure_events_per_s"):
            if not getattr(self, name) >= 0:
                raise InvalidArgument("must be >= 0", field=f"radiation.{name}")


@dataclass(frozen=True)
class SpacecraftParams:
    """One spacecraft's power, thermal, data and radiation parameters.

    Stored data grows at the running activity's `data_rate_bytes_per_s` (up to `storage_capacity_bytes`) and drains
    at `downlink_rate_bytes_per_s` while a ground station sees the spacecraft, and at `isl_rate_bytes_per_s` while a
    relay satellite (`Simulation(relays=...)`, e.g. a GEO data relay) does; both add up when both links are open.
    Links between fleet members move no data (their windows are sized by rate x duration, as PASEOS does).
    `comm_devices` are named links with their own rates in bytes/s (PASEOS's `add_comm_device(actor, name,
    bandwidth_in_kbps)`; 1 kbps = 125 bytes/s), used by `windows.find_next_window`. `activity_power_w` overrides an
    activity's draw for this spacecraft.
    """

    name: str = "sat"
    battery_capacity_wh: float = 100.0
    initial_soc: float = 1.0
    charge_power_w: float = 0.0
    rtg: bool = False
    thermal: ThermalParams | None = None
    storage_capacity_bytes: float = math.inf
    initial_stored_bytes: float = 0.0
    downlink_rate_bytes_per_s: float = 0.0
    isl_rate_bytes_per_s: float = 0.0
    radiation: RadiationParams = field(default_factory=RadiationParams)
    activity_power_w: Mapping[str, float] = field(default_factory=dict)
    comm_devices: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for device, rate in self.comm_devices.items():
            if not rate > 0:
                raise InvalidArgument("a device's rate must be > 0 bytes/s", field=f"comm_devices.{device}")
        if not self.battery_capacity_wh > 0:
            raise InvalidArgument("must be > 0", field="battery_capacity_wh")
        if not 0.0 <= self.initial_soc <= 1.0:
            raise InvalidArgument("must be in [0, 1]", field="initial_soc")
        if not self.charge_power_w >= 0:
            raise InvalidArgument("must be >= 0", field="charge_power_w")
        if not self.storage_capacity_bytes >= 0:
            raise InvalidArgument("must be >= 0", field="storage_capacity_bytes")
        if not 0 <= self.initial_stored_bytes <= self.storage_capacity_bytes:
            raise InvalidArgument("must be in [0, storage_capacity_bytes]", field="initial_stored_bytes")
        if not self.downlink_rate_bytes_per_s >= 0:
            raise InvalidArgument("must be >= 0", field="downlink_rate_bytes_per_s")
        if not self.isl_rate_bytes_per_s >= 0:
            raise InvalidArgument("must be >= 0", field="isl_rate_bytes_per_s")


@dataclass(frozen=True)
class FleetArrays:
    """Arrays of shape (n,) (and (n, activities + 1) for draws; the last column is 'off', 0 W)."""

    names: tuple[str, ...]
    capacity_ws: F64
    initial_energy_ws: F64
    charge_power_w: F64
    rtg: NDArray[np.bool_]
    has_thermal: NDArray[np.bool_]
    initial_temperature_k: F64
    thermal: ThermalCoefficients
    storage_capacity_bytes: F64
    initial_stored_bytes: F64
    downlink_rate_bytes_per_s: F64
    isl_rate_bytes_per_s: F64
    restart_events_per_s: F64
    failure_events_per_s: F64
    data_corruption_events_per_s: F64
    draw_w: F64
    data_rate_bytes_per_s: F64

    @property
    def n(self) -> int:
        return len(self.names)

    @classmethod
    def build(cls, spacecraft: Sequence[SpacecraftParams], activities: Sequence[Activity]) -> FleetArrays:
        n = len(spacecraft)

        def arr(fn: object) -> F64:
            return np.array([fn(sc) for sc in spacecraft], dtype=np.float64)  # type: ignore[operator]

        # Spacecraft without a thermal model get a placeholder (they report NaN temperature).
        placeholder = ThermalParams(1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0)
        th = [sc.thermal or placeholder for sc in spacecraft]

        def tarr(name: str) -> F64:
            return np.array([getattr(t, name) for t in th], dtype=np.float64)

        coeff = ThermalCoefficients.from_params(
            tarr("mass_kg"), tarr("thermal_capacity_j_per_kg_k"), tarr("sun_absorptance"),
            tarr("infrared_absorptance"), tarr("sun_facing_area_m2"), tarr("body_facing_area_m2"),
            tarr("emissive_area_m2"), tarr("body_solar_irradiance_w_m2"), tarr("body_surface_temperature_k"),
            tarr("body_emissivity"), tarr("body_reflectance"), tarr("heat_ratio"), tarr("body_radius_m"),
        )  # fmt: skip
        draw = np.zeros((n, len(activities) + 1))
        rate = np.zeros((n, len(activities) + 1))
        for j, act in enumerate(activities):
            draw[:, j] = act.power_w
            rate[:, j] = act.data_rate_bytes_per_s
        for i, sc in enumerate(spacecraft):
            for name, watts in sc.activity_power_w.items():
                col = next((k for k, a in enumerate(activities) if a.name == name), None)
                if col is None:
                    raise InvalidArgument(f"unknown activity {name!r}", field=f"{sc.name}.activity_power_w")
                draw[i, col] = watts
        capacity = arr(lambda sc: sc.battery_capacity_wh * 3600.0)
        return cls(
            names=tuple(sc.name for sc in spacecraft),
            capacity_ws=capacity,
            initial_energy_ws=capacity * arr(lambda sc: sc.initial_soc),
            charge_power_w=arr(lambda sc: sc.charge_power_w),
            rtg=np.array([sc.rtg for sc in spacecraft], dtype=np.bool_),
            has_thermal=np.array([sc.thermal is not None for sc in spacecraft], dtype=np.bool_),
            initial_temperature_k=tarr("initial_temperature_k"),
            thermal=coeff,
            storage_capacity_bytes=arr(lambda sc: sc.storage_capacity_bytes),
            initial_stored_bytes=arr(lambda sc: sc.initial_stored_bytes),
            downlink_rate_bytes_per_s=arr(lambda sc: sc.downlink_rate_bytes_per_s),
            isl_rate_bytes_per_s=arr(lambda sc: sc.isl_rate_bytes_per_s),
            restart_events_per_s=arr(lambda sc: sc.radiation.restart_events_per_s),
            failure_events_per_s=arr(lambda sc: sc.radiation.failure_events_per_s),
            data_corruption_events_per_s=arr(lambda sc: sc.radiation.data_corruption_events_per_s),
            draw_w=draw,
            data_rate_bytes_per_s=rate,
        )
