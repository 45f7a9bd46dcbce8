"""The fleet simulator: PASEOS's models for n spacecraft at once, event-driven between coarse grid knots.

How a run works (per chunk of satellites; chunks are independent unless inter-satellite links couple them):

1. Sample orbits on a coarse grid (`step_s`, default 60 s, plus every decision epoch). Evaluate the eclipse,
   ground-link and inter-satellite-link functions there; find the sign flips, and the extrema between knots that
   turn towards zero (windows shorter than the grid), and bisect them on Hermite-interpolated positions to
   `tolerance_s` (default 0.1 s; `events.find_edges`). Radiation restarts and failures are pre-sampled Poisson times.
2. Merge every edge into one time-sorted event list. Walk the grid; inside an interval each satellite is advanced
   from event to event with closed forms: the battery is linear (exact clip), stored data is linear, temperature is
   RK4 on the T^4 ODE. Only the satellites that have an event are touched at that event.
3. An activity's constraint (a vectorised predicate) is checked at the end of each piece; when it fails the crossing
   is bisected (re-integrating from the piece's start) and the satellite falls back to the activity's fallback.
4. Mode rules pick activities at decision epochs (every `decision_step_s`), like the paper's constellation that
   "decides every 600 s". A forced schedule (from `inloop.check_plan`) replaces the rules.

Nothing loops over satellites or over seconds in Python; the Python loop is over grid intervals and over event
ranks within an interval (usually 0-2). State is exact at every grid knot and event; `run(start_s=..., state=...)`
continues from any recorded knot with the same grid, so the state at any second is reproducible.

Imports numpy and skymesh.astro/core; no grpc, protobuf, SQLAlchemy or service packages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from skymesh.astro.frames import datetime_to_jd
from skymesh.core.clock import ensure_utc
from skymesh.core.errors import InvalidArgument
from skymesh.sim.activities import Activity, CustomProperty, ModeRule
from skymesh.sim.comms import GroundStation
from skymesh.sim.eclipse import PASEOS_BODY_RADIUS_M
from skymesh.sim.orbit import Orbits
from skymesh.sim.radiation import sample_poisson_times
from skymesh.sim.spacecraft import FleetArrays, SpacecraftParams

__all__ = ["SERIES_KEYS", "EngineConfig", "EventKind", "SimResult", "SimState", "Simulation"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]


SERIES_KEYS = ("soc", "temperature_k", "stored_bytes", "activity", "in_eclipse", "in_contact", "isl_contact")


class EventKind:
    """Codes in `SimResult.event_kind`."""

    ECLIPSE = 0  # value 1 = enters eclipse, 0 = leaves
    CONTACT = 1  # arg = station index (or window index), value +1 = AOS, -1 = LOS
    ISL = 2  # arg = pair index, value +1 / -1
    RESTART = 3
    FAILURE = 4
    SCHEDULE = 5  # arg = activity index (-1: back to the default activity)
    PROBE = 6  # arg = probe index
    ACTIVITY = 7  # logged only: arg = new activity index, value = previous one


@dataclass(frozen=True)
class EngineConfig:
    step_s: float = 60.0
    decision_step_s: float = 600.0
    tolerance_s: float = 0.1
    record_step_s: float | None = None  # from the run's start; None: every knot. Record times become knots.
    eclipse_radius_m: float = PASEOS_BODY_RADIUS_M
    isl_radius_m: float = PASEOS_BODY_RADIUS_M
    isl_pairs: tuple[tuple[int, int], ...] = ()
    isl_flows: tuple[tuple[int, int], ...] = ()  # (from, to): data moves while that pair is in line of sight
    earth_rotation_offset_s: float = 0.0
    thermal_max_step_s: float = 60.0
    seed: int = 0
    max_chunk_elements: int = 3_000_000  # satellites x knots per chunk; bounds memory (~0.75 GB at 3 M)

    def __post_init__(self) -> None:
        if not self.step_s > 0:
            raise InvalidArgument("must be > 0 s", field="step_s")
        if not self.decision_step_s > 0:
            raise InvalidArgument("must be > 0 s", field="decision_step_s")
        if not 0 < self.tolerance_s <= self.step_s:
            raise InvalidArgument("must be in (0, step_s]", field="tolerance_s")
        if self.record_step_s is not None and not self.record_step_s >= self.tolerance_s:
            raise InvalidArgument("must be >= tolerance_s", field="record_step_s")


@dataclass(frozen=True)
class SimState:
    """What carries over between runs (arrays of shape (n,)), at `time_s` seconds after the epoch."""

    time_s: float
    energy_ws: F64
    temperature_k: F64
    stored_bytes: F64
    activity: I64
    alive: B
    custom: F64 = field(default_factory=lambda: np.zeros((0, 0)))  # (custom properties, n)


@dataclass
class SimResult:
    """Time series at record knots (shape (records, n)), the event log and the final state."""

    names: tuple[str, ...]
    activity_names: tuple[str, ...]
    epoch: datetime
    times_s: F64
    soc: F64
    temperature_k: F64
    stored_bytes: F64
    activity: NDArray[np.int16]
    in_eclipse: B
    in_contact: B
    isl_contact: B
    event_sat: I64
    event_time_s: F64
    event_kind: I64
    event_arg: I64
    event_value: F64
    downlinked_bytes: F64  # to ground stations and relays
    exposure_bit_s: F64
    data_corruption_events_per_s: F64
    seed: int
    final_state: SimState
    probe_soc: F64 = field(default_factory=lambda: np.zeros(0))
    probe_stored_bytes: F64 = field(default_factory=lambda: np.zeros(0))
    floor_sat: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    floor_time_s: F64 = field(default_factory=lambda: np.zeros(0))
    floor_activity: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    custom: dict[str, F64] = field(default_factory=dict)  # custom property -> (records, n)
    isl_sent_bytes: F64 = field(default_factory=lambda: np.zeros(0))  # over `isl_flows`, per spacecraft
    isl_received_bytes: F64 = field(default_factory=lambda: np.zeros(0))

    def corrupted_bits(self) -> I64:
        """Bits flipped while stored on board during the run: Poisson with mean rate x (bit-seconds stored), the
        per-bit rate of PASEOS's `model_data_corruption`; drawn from (seed, run start) so it is reproducible."""
        rng = np.random.default_rng([self.seed, 1, int(self.times_s[0] * 1000) if self.times_s.size else 0])
        return rng.poisson(self.data_corruption_events_per_s * self.exposure_bit_s).astype(np.int64)

    def edges(self, kind: int, sat: int | None = None) -> tuple[F64, F64]:
        """(times, values) of logged events of one kind, optionally for one satellite."""
        mask = self.event_kind == kind
        if sat is not None:
            mask &= self.event_sat == sat
        return self.event_time_s[mask], self.event_value[mask]


class Simulation:
    """A fleet, its activities and mode rules, ground stations, and the engine settings."""

    def __init__(
        self,
        orbits: Orbits,
        spacecraft: Sequence[SpacecraftParams],
        activities: Sequence[Activity],
        rules: Sequence[ModeRule],
        epoch: datetime,
        stations: Sequence[GroundStation] = (),
        config: EngineConfig | None = None,
        relays: Orbits | None = None,
        custom_properties: Sequence[CustomProperty] = (),
    ) -> None:
        self.epoch = ensure_utc(epoch, "epoch")
        self.config = config or EngineConfig()
        if len(spacecraft) == 1 and orbits.n > 1:
            spacecraft = [
                SpacecraftParams(**{**spacecraft[0].__dict__, "name": f"{spacecraft[0].name}-{k}"})
                for k in range(orbits.n)
            ]
        if len(spacecraft) != orbits.n:
            raise InvalidArgument(f"{len(spacecraft)} spacecraft for {orbits.n} orbits", field="spacecraft")
        if not activities:
            raise InvalidArgument("at least one activity is needed", field="activities")
        self.orbits = orbits
        self.spacecraft = tuple(spacecraft)
        self.activities = tuple(activities)
        self.activity_index = {a.name: k for k, a in enumerate(self.activities)}
        if len(self.activity_index) != len(self.activities):
            raise InvalidArgument("activity names must be unique", field="activities")
        for a in self.activities:
            if a.fallback is not None and a.fallback not in self.activity_index:
                raise InvalidArgument(f"unknown fallback {a.fallback!r}", field=f"activities.{a.name}.fallback")
        self.rules = tuple(rules)
        self.custom_properties = tuple(custom_properties)
        if len({p.name for p in self.custom_properties}) != len(self.custom_properties):
            raise InvalidArgument("custom property names must be unique", field="custom_properties")
        for r in self.rules:
            if r.activity not in self.activity_index:
                raise InvalidArgument(f"unknown activity {r.activity!r}", field="modes")
        self.default_activity = self.activity_index[self.rules[-1].activity] if self.rules else 0
        self.off = len(self.activities)  # index of "off" (dead), 0 W
        fb = [self.activity_index[a.fallback] if a.fallback else self.default_activity for a in self.activities]
        self.fallback = np.array([*fb, self.off], dtype=np.int64)
        self.stations = tuple(stations)
        # Relay satellites (e.g. the paper's GEO "GeoSat"): link partners only, not simulated spacecraft. Every
        # spacecraft's line of sight to each relay counts as an inter-satellite contact (event arg = -1 - relay).
        if relays is not None and relays.frame != orbits.frame:
            raise InvalidArgument(f"relays are in {relays.frame}, the fleet in {orbits.frame}", field="relays")
        self.relays = relays
        self.fleet = FleetArrays.build(spacecraft, self.activities)
        self.jd0 = datetime_to_jd(self.epoch)
        for pa, pb in self.config.isl_pairs:
            if not (0 <= pa < orbits.n and 0 <= pb < orbits.n and pa != pb):
                raise InvalidArgument(f"bad pair ({pa}, {pb})", field="isl_pairs")
        index = {frozenset(p): k for k, p in enumerate(self.config.isl_pairs)}
        flows = []
        for sender, receiver in self.config.isl_flows:
            k = index.get(frozenset((sender, receiver)))
            if k is None:
                raise InvalidArgument(f"flow ({sender}, {receiver}) is not one of the isl_pairs", field="isl_flows")
            flows.append((sender, receiver, k))
        self.flows = tuple(flows)

    # ----------------------------------------------------------------------------------------------------------
    def initial_state(self) -> SimState:
        f = self.fleet
        return SimState(
            0.0, f.initial_energy_ws.copy(), f.initial_temperature_k.copy(), f.initial_stored_bytes.copy(),
            np.full(f.n, self.default_activity, dtype=np.int64), np.ones(f.n, dtype=np.bool_),
            np.array([[p.initial] * f.n for p in self.custom_properties], dtype=np.float64).reshape(-1, f.n),
        )  # fmt: skip

    def record_times(self, start_s: float, end_s: float) -> F64:
        """Times at which a run records its time series: every `record_step_s` from the start (every knot when
        None), and the end. They are knots of the run, so the recorded state is exact, never interpolated."""
        step = self.config.record_step_s
        if step is None:
            return self.knots(start_s, end_s)[0]
        n = math.floor((end_s - start_s) / step + 1e-9)
        # rounded to the microsecond so that a record time on a grid knot is that knot, not a neighbour 1e-13 s away
        return np.unique(np.append(np.round(start_s + np.arange(n + 1) * step, 6), end_s))

    def knots(self, start_s: float, end_s: float) -> tuple[F64, B]:
        """Grid knots anchored at absolute multiples of step and decision step, record times, start and end."""
        c = self.config
        grid = np.round(np.arange(math.floor(start_s / c.step_s) + 1, math.ceil(end_s / c.step_s)) * c.step_s, 6)
        dec = np.arange(math.ceil(start_s / c.decision_step_s), math.ceil(end_s / c.decision_step_s))
        dec = np.round(dec * c.decision_step_s, 6)
        rec = self.record_times(start_s, end_s) if c.record_step_s is not None else np.zeros(0)
        t = np.unique(np.concatenate([[start_s], grid, dec, rec, [end_s]]))
        t = t[(t >= start_s) & (t <= end_s)]
        rem = np.mod(t, c.decision_step_s)
        is_decision = (np.minimum(rem, c.decision_step_s - rem) < 1e-9) & (t < end_s)
        return t, is_decision

    def _radiation_events(self, start_s: float, end_s: float) -> tuple[I64, F64, I64]:
        """Restart and failure times in [start, end): sampled per simulated day from (seed, day) so they do not
        depend on where a run starts or how the fleet is chunked."""
        f = self.fleet
        sats: list[I64] = []
        times: list[F64] = []
        kinds: list[I64] = []
        if not (np.any(f.restart_events_per_s > 0) or np.any(f.failure_events_per_s > 0)):
            return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
        for day in range(int(start_s // 86400), math.ceil(end_s / 86400)):
            rng = np.random.default_rng([self.config.seed, day % (1 << 32)])  # days before the epoch too
            for kind, rates in (
                (EventKind.RESTART, f.restart_events_per_s),
                (EventKind.FAILURE, f.failure_events_per_s),
            ):
                s, t = sample_poisson_times(rates, 86400.0, rng)
                t = t + day * 86400.0
                keep = (t >= start_s) & (t < end_s)
                sats.append(s[keep])
                times.append(t[keep])
                kinds.append(np.full(int(keep.sum()), kind, dtype=np.int64))
        return np.concatenate(sats), np.concatenate(times), np.concatenate(kinds)

    def run(
        self,
        duration_s: float,
        *,
        start_s: float = 0.0,
        state: SimState | None = None,
        schedule: Sequence[tuple[int, float, int]] = (),
        contact_windows: Sequence[tuple[int, float, float]] | None = None,
        probes: Sequence[tuple[int, float]] = (),
        soc_floor: F64 | None = None,
        progress: Callable[[float], None] | None = None,
        workers: int = 1,
        series_sink: Callable[[int, F64, dict[str, np.ndarray]], None] | None = None,
    ) -> SimResult:
        """Simulate [start_s, start_s + duration_s].

        workers > 1 runs independent chunks of satellites in forked worker processes (POSIX only; results are
        identical to workers=1 because chunks never share state). Progress is then reported per finished chunk.

        schedule: (sat, time_s, activity index or -1) forced switches; when given, mode rules are not used.
        contact_windows: (sat, start_s, end_s) replace geometric ground contacts (candidate passes to value).
        probes: (sat, time_s) at which SoC and stored data are reported (`SimResult.probe_*`).
        soc_floor: per-satellite SoC; downward crossings are logged with the running activity (`floor_*`).
        series_sink: called as sink(first_satellite, times_s, series) once per satellite chunk, in satellite order,
        with arrays of shape (records, chunk) for the keys of `SERIES_KEYS`; the result then holds no time series
        (arrays of shape (records, 0)), so memory stays bounded by one chunk (`output.SeriesWriter` streams them).
        """
        if not duration_s > 0:
            raise InvalidArgument("must be > 0 s", field="duration_s")
        from skymesh.sim._chunk import ChunkRun

        state = state or self.initial_state()
        end_s = start_s + duration_s
        knots, is_decision = self.knots(start_s, end_s)
        n = self.fleet.n
        coupled = bool(self.config.isl_pairs)
        chunk = n if coupled else max(1, self.config.max_chunk_elements // max(1, knots.size))
        rad = self._radiation_events(start_s, end_s)
        if workers < 1:
            raise InvalidArgument("must be >= 1", field="workers")
        starts = list(range(0, n, chunk))

        def one(lo: int, report: Callable[[float], None]) -> dict[str, np.ndarray]:
            idx = np.arange(lo, min(n, lo + chunk), dtype=np.int64)
            run = ChunkRun(self, idx, knots, is_decision, state, rad, schedule, contact_windows, probes, soc_floor)
            return run.run(report)

        def sink(lo: int, part: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            if series_sink is None:
                return part
            series_sink(lo, part["times_s"], {k: part[k] for k in SERIES_KEYS})
            return {**part, **{k: np.empty((part[k].shape[0], 0), part[k].dtype) for k in SERIES_KEYS}}  # no views

        if workers > 1 and len(starts) > 1:
            parts = _run_forked(one, starts, workers, progress, sink)
        else:
            parts = []
            for lo in starts:
                size = min(n, lo + chunk) - lo

                def report(frac: float, lo: int = lo, size: int = size) -> None:
                    if progress is not None:
                        progress((lo + frac * size) / n)

                parts.append(sink(lo, one(lo, report)))
        return _merge(self, parts, knots, probes)


_FORK_JOB: list[Callable[[int, Callable[[float], None]], dict[str, np.ndarray]]] = []


def _forked_chunk(lo: int) -> dict[str, np.ndarray]:
    return _FORK_JOB[0](lo, lambda frac: None)


def _run_forked(
    one: Callable[[int, Callable[[float], None]], dict[str, np.ndarray]],
    starts: list[int],
    workers: int,
    progress: Callable[[float], None] | None,
    sink: Callable[[int, dict[str, np.ndarray]], dict[str, np.ndarray]],
) -> list[dict[str, np.ndarray]]:
    """Chunks in forked processes: the children inherit the simulation (constraints may be lambdas, which do not
    pickle), only chunk starts and result arrays cross the process boundary."""
    import multiprocessing

    _FORK_JOB[:] = [one]
    try:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(min(workers, len(starts))) as pool:
            parts: list[dict[str, np.ndarray]] = []
            for k, part in enumerate(pool.imap(_forked_chunk, starts)):
                parts.append(sink(starts[k], part))
                if progress is not None:
                    progress((k + 1) / len(starts))
        return parts
    finally:
        _FORK_JOB.clear()


def _merge(sim: Simulation, parts: list[dict[str, np.ndarray]], knots: F64, probes: Sequence[object]) -> SimResult:
    def cat(key: str, axis: int = 1) -> np.ndarray:
        return np.concatenate([p[key] for p in parts], axis=axis)

    ev_t = cat("event_time_s", 0)
    order = np.argsort(ev_t, kind="stable")
    probe_soc = np.full(len(probes), np.nan)
    probe_stored = np.full(len(probes), np.nan)
    for p in parts:
        ids = p["probe_id"]
        probe_soc[ids] = p["probe_soc"]
        probe_stored[ids] = p["probe_stored"]
    final = SimState(
        float(knots[-1]), cat("final_energy", 0), cat("final_temperature", 0), cat("final_stored", 0),
        cat("final_activity", 0), cat("final_alive", 0), cat("final_custom", 1),
    )  # fmt: skip
    custom = cat("custom", 2)
    return SimResult(
        names=sim.fleet.names,
        activity_names=(*(a.name for a in sim.activities), "off"),
        epoch=sim.epoch,
        times_s=parts[0]["times_s"],
        soc=cat("soc"),
        temperature_k=cat("temperature_k"),
        stored_bytes=cat("stored_bytes"),
        activity=cat("activity"),
        in_eclipse=cat("in_eclipse"),
        in_contact=cat("in_contact"),
        isl_contact=cat("isl_contact"),
        event_sat=cat("event_sat", 0)[order],
        event_time_s=ev_t[order],
        event_kind=cat("event_kind", 0)[order],
        event_arg=cat("event_arg", 0)[order],
        event_value=cat("event_value", 0)[order],
        downlinked_bytes=cat("downlinked", 0),
        exposure_bit_s=cat("exposure", 0),
        data_corruption_events_per_s=sim.fleet.data_corruption_events_per_s.copy(),
        seed=sim.config.seed,
        final_state=final,
        probe_soc=probe_soc,
        probe_stored_bytes=probe_stored,
        floor_sat=cat("floor_sat", 0),
        floor_time_s=cat("floor_time", 0),
        floor_activity=cat("floor_activity", 0),
        custom={p.name: custom[:, j, :] for j, p in enumerate(sim.custom_properties)},
        isl_sent_bytes=cat("isl_sent", 0),
        isl_received_bytes=cat("isl_received", 0),
    )
