"""skymesh.sim: PASEOS's spacecraft-operations models (power, thermal, radiation, communication windows, activities
with constraints), vectorised over whole fleets, in fast-simulation and real-time modes, plus the functions the
scheduler calls to value contacts and check plans.

Modules, one concept each: `orbit` (Kepler, SGP4, Hermite), `eclipse`, `comms`, `power`, `thermal`, `radiation`,
`activities`, `spacecraft` (parameters), `events` (edge refinement), `engine` (the run), `scenario` (YAML),
`output`/`plot`, `windows` (find_next_window), `realtime`, `inloop`. `fleet` is the demo network's generator and
unrelated to the models.

Astronomy (time scales, the Sun, precession/nutation, Earth rotation, WGS84) comes from `skymesh.astro`; PASEOS's
historical frame quirks are reproduced only in tests/sim/test_paseos_agreement.py. Imports numpy, sgp4, PyYAML and
skymesh.astro/core (matplotlib and pyarrow inside the functions that need them); never grpc, protobuf, SQLAlchemy or
a service package.
"""

from skymesh.sim.activities import (
    Activity,
    ActivityChange,
    Comparison,
    Condition,
    CustomProperty,
    FleetState,
    ModeRule,
)
from skymesh.sim.comms import GroundStation
from skymesh.sim.engine import EngineConfig, EventKind, SimResult, SimState, Simulation
from skymesh.sim.orbit import KeplerOrbits, TLEOrbits, walker_constellation
from skymesh.sim.spacecraft import RadiationParams, SpacecraftParams, ThermalParams
from skymesh.sim.windows import Window, find_next_window

__all__ = [
    "Activity",
    "ActivityChange",
    "Comparison",
    "Condition",
    "CustomProperty",
    "EngineConfig",
    "EventKind",
    "FleetState",
    "GroundStation",
    "KeplerOrbits",
    "ModeRule",
    "RadiationParams",
    "SimResult",
    "SimState",
    "Simulation",
    "SpacecraftParams",
    "TLEOrbits",
    "ThermalParams",
    "Window",
    "find_next_window",
    "walker_constellation",
]
