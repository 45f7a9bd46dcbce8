"""Activities, operational constraints and mode rules, evaluated on whole fleets at once.

An `Activity` draws power (and heats the spacecraft through equation 5), may produce payload data, and may carry a
`constraint`: a vectorised predicate on the fleet's `FleetState` that must stay true while it runs (a plain or an
`async` function, as PASEOS's constraint functions). `on_start` and `on_end` are user code run when spacecraft
start or stop the activity (PASEOS's activity bodies and `termination_function`), with an `ActivityChange` naming
the spacecraft, the times and why it ended ("decision", "constraint", "schedule", "restart", "failure").
Coroutine functions are run to completion on a private event loop, so `Simulation.run` must not be called from
inside a running event loop when they are used. When it turns
false the activity is interrupted (PASEOS checks its constraint function every `activity_timestep`; here the
crossing is bisected to the engine's tolerance) and the spacecraft falls back to the activity's `fallback` until the
next decision. PASEOS runs one activity at a time per spacecraft; so does the engine.

Mode rules choose the activity at each decision epoch: the first rule whose `when` holds wins, the last rule should
be unconditional. `Condition` is the declarative form used by scenario files (all comparisons must hold); any
callable `FleetState -> bool array` works from Python.

Imports numpy only.
"""

from __future__ import annotations

import asyncio
import inspect
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from skymesh.core.errors import InvalidArgument

__all__ = [
    "STATE_FIELDS", "Activity", "ActivityChange", "AllOf", "AnyOf", "Comparison", "Condition", "CustomProperty",
    "FleetState", "ModeRule", "Predicate",
]  # fmt: skip

F64 = NDArray[np.float64]
B = NDArray[np.bool_]


@dataclass(frozen=True)
class FleetState:
    """A read-only view of the fleet's state at one instant (arrays of shape (n,)); what predicates see."""

    time_s: F64
    soc: F64
    energy_wh: F64
    temperature_k: F64
    stored_bytes: F64
    storage_fill: F64
    in_eclipse: B
    in_contact: B
    isl_contact: B
    alive: B
    custom: Mapping[str, F64] = field(default_factory=dict)  # custom properties by name
    station_contact: B = field(default_factory=lambda: np.zeros((0, 0), dtype=np.bool_))  # (n, stations)
    station_names: tuple[str, ...] = ()
    power_w: F64 = field(default_factory=lambda: np.zeros(0))  # the running activity's draw

    def in_contact_with(self, station: str) -> B:
        """Whether each spacecraft sees the named ground station now (PASEOS's is_in_line_of_sight)."""
        if station not in self.station_names:
            raise InvalidArgument(f"unknown station {station!r}; one of {', '.join(self.station_names)}",
                                  field="station")  # fmt: skip
        return np.asarray(self.station_contact[:, self.station_names.index(station)], dtype=np.bool_)


# the scalar fields a Comparison can name directly; custom properties are named "custom.NAME"
STATE_FIELDS = tuple(f for f in FleetState.__dataclass_fields__ if f not in ("custom", "station_contact",
                                                                              "station_names", "power_w"))  # fmt: skip

UpdateFn = Callable[[FleetState, F64, F64], F64]


@dataclass(frozen=True)
class CustomProperty:
    """A quantity PASEOS users attach with `ActorBuilder.add_custom_property(actor, name, initial, update_fn)`,
    vectorised: `update(state, values, dt_s) -> new values` for the whole fleet (arrays of shape (n,)). The engine
    calls it on every piece between events, in sub-steps of at most `thermal_max_step_s`. Constraints and mode rules
    read it as `state.custom[name]` (Python) or `custom.NAME` (scenario conditions)."""

    name: str
    initial: float = 0.0
    update: UpdateFn | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise InvalidArgument("must be an identifier (letters, digits, _)", field=f"custom_properties.{self.name}")


Predicate = Callable[[FleetState], B]

_OPS: dict[str, Callable[[F64, float], B]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Comparison:
    """`field op value`, e.g. Comparison("soc", ">", 0.2)."""

    field: str
    op: str
    value: float

    def __post_init__(self) -> None:
        if self.field not in STATE_FIELDS and not _prefixed(self.field):
            raise InvalidArgument(
                f"unknown state field {self.field!r}; one of {', '.join(STATE_FIELDS)}, custom.NAME or contact.STATION",
                field="field",
            )
        if self.op not in _OPS:
            raise InvalidArgument(f"unknown operator {self.op!r}; one of {' '.join(_OPS)}", field="op")

    def values(self, state: FleetState) -> F64:
        if self.field.startswith("contact."):
            return state.in_contact_with(self.field[len("contact.") :]).astype(np.float64)
        if self.field.startswith("custom."):
            name = self.field[len("custom.") :]
            if name not in state.custom:
                raise InvalidArgument(f"no custom property {name!r}", field=self.field)
            return np.asarray(state.custom[name], dtype=np.float64)
        return np.asarray(getattr(state, self.field), dtype=np.float64)

    def __call__(self, state: FleetState) -> B:
        return np.asarray(_OPS[self.op](self.values(state), float(self.value)), dtype=np.bool_)

    def margin(self, state: FleetState) -> F64 | None:
        """Signed distance to the threshold (> 0 while it holds) for ordering operators; None for == and !=."""
        values = self.values(state)
        if self.op in (">", ">="):
            return values - self.value
        if self.op in ("<", "<="):
            return self.value - values
        return None


def _prefixed(field: str) -> bool:
    """custom.NAME (a custom property) or contact.STATION (in contact with that ground station)."""
    head, _, name = field.partition(".")
    return head in ("custom", "contact") and bool(name)


@dataclass(frozen=True)
class AnyOf:
    """At least one part holds (parts: any predicates). No margins: crossings are bisected on the predicate."""

    parts: tuple[Predicate, ...]

    def __call__(self, state: FleetState) -> B:
        out = np.zeros(np.shape(state.soc), dtype=np.bool_)
        for part in self.parts:
            out |= np.asarray(part(state), dtype=np.bool_)
        return out


@dataclass(frozen=True)
class AllOf:
    """Every part holds (parts: any predicates, e.g. a Condition and an AnyOf)."""

    parts: tuple[Predicate, ...]

    def __call__(self, state: FleetState) -> B:
        out = np.ones(np.shape(state.soc), dtype=np.bool_)
        for part in self.parts:
            out &= np.asarray(part(state), dtype=np.bool_)
        return out


@dataclass(frozen=True)
class Condition:
    """All comparisons must hold (an empty condition always holds)."""

    all_of: tuple[Comparison, ...] = ()

    def __call__(self, state: FleetState) -> B:
        out = np.ones(np.shape(state.soc), dtype=np.bool_)
        for comparison in self.all_of:
            out &= comparison(state)
        return out

    def margins(self, state: FleetState) -> F64 | None:
        """Each comparison's margin, shape (comparisons, n): all > 0 exactly while the condition holds. The engine
        finds constraint crossings by regula falsi on the comparison that fails; None when a comparison has no
        margin (== or !=), and the engine then bisects on the predicate."""
        rows = []
        for comparison in self.all_of:
            m = comparison.margin(state)
            if m is None:
                return None
            rows.append(np.broadcast_to(m, np.shape(state.soc)))
        return np.array(rows) if rows else np.full((1, *np.shape(state.soc)), np.inf)


@dataclass(frozen=True)
class ActivityChange:
    """Spacecraft (fleet indices) starting or ending an activity at the given times (seconds since the epoch)."""

    activity: str
    sats: NDArray[np.int64]
    time_s: F64
    reason: str  # decision, constraint, schedule, restart, failure


Callback = Callable[[ActivityChange], object]


def run_sync(fn: Callable[..., object], *args: object) -> object:
    """Call a function; if it is a coroutine function (or returns an awaitable), run it to completion."""
    out = fn(*args)
    if inspect.isawaitable(out):
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(out)  # type: ignore[arg-type]
        finally:
            loop.close()
    return out


@dataclass(frozen=True)
class Activity:
    """Something a spacecraft does: power draw, payload data produced, the constraint that interrupts it, and user
    code run when it starts and ends."""

    name: str
    power_w: float
    data_rate_bytes_per_s: float = 0.0
    constraint: Predicate | None = None
    fallback: str | None = None
    on_start: Callback | None = None
    on_end: Callback | None = None

    def __post_init__(self) -> None:
        constraint = self.constraint
        if constraint is not None and inspect.iscoroutinefunction(constraint):

            def sync_constraint(state: FleetState) -> B:
                return np.asarray(run_sync(constraint, state), dtype=np.bool_)

            object.__setattr__(self, "constraint", sync_constraint)
        if self.power_w < 0:
            raise InvalidArgument("power must be >= 0 W", field=f"activities.{self.name}.power_w")
        if self.data_rate_bytes_per_s < 0:
            raise InvalidArgument("must be >= 0", field=f"activities.{self.name}.data_rate_bytes_per_s")


@dataclass(frozen=True)
class ModeRule:
    """At a decision epoch, spacecraft for which `when` holds (and no earlier rule matched) run `activity`."""

    activity: str
    when: Predicate = field(default_factory=Condition)
