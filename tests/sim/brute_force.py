"""A brute-force reference for eclipse and contact windows: every satellite evaluated at every second, exact orbits
(no interpolation), each sign change placed by the root of the cubic through the four surrounding 1 s samples.

It shares the model's definitions (PASEOS's eclipse test, the elevation mask) and the Sun and Earth rotation of
skymesh.astro with the engine, so a difference measures only the engine's search: the coarse grid, the Hermite
interpolation, the extremum search and the bisection tolerance. Used by tests/sim/test_edges.py and
benchmarks/sim_edges.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from skymesh.astro.inertial import ecef_to_inertial
from skymesh.astro.sun import sun_position_km
from skymesh.sim.comms import elevation_function
from skymesh.sim.eclipse import eclipse_function_m2
from skymesh.sim.engine import EventKind, SimResult, Simulation

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass(frozen=True)
class Edges:
    """Edges of one kind: satellite, argument (station index; 0 for eclipse), time, +1 opening / -1 closing."""

    sat: I64
    arg: I64
    time_s: F64
    sign: I64


def _cubic_roots(f: F64, k: I64) -> F64:
    """Root in [k, k+1] of the cubic through samples k-1..k+2 of each row's series (rows of f), by bisection."""
    n = f.shape[1]
    idx = np.clip(k[:, None] + np.arange(-1, 3)[None, :], 0, n - 1)
    nodes = (idx - k[:, None]).astype(np.float64)  # -1, 0, 1, 2 except at the ends (duplicates are fine: below)
    y = np.take_along_axis(f, idx, axis=1)

    def cubic(x: F64) -> F64:
        out = np.zeros_like(x)
        for i in range(4):
            term = y[:, i].copy()
            for j in range(4):
                if j != i:
                    den = nodes[:, i] - nodes[:, j]
                    safe = np.where(den == 0, 1.0, den)
                    term = np.where(den == 0, 0.0, term * (x - nodes[:, j]) / safe)
            out = out + term
        return out

    edge = (idx[:, 0] == idx[:, 1]) | (idx[:, 2] == idx[:, 3])
    lo, hi = np.zeros(k.size), np.ones(k.size)
    y_lo = y[:, 1]
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        same = (cubic(mid) > 0) == (y_lo > 0)
        lo, hi = np.where(same, mid, lo), np.where(same, hi, mid)
    root = 0.5 * (lo + hi)
    linear = y[:, 1] / (y[:, 1] - y[:, 2])  # at the ends of the scan, where the cubic is not defined
    return np.asarray(k + np.where(edge, linear, root), dtype=np.float64)


def _flips(values: F64, start_s: float) -> tuple[I64, F64, I64]:
    pos = values > 0
    rows, k = np.nonzero(pos[:, 1:] != pos[:, :-1])
    t = start_s + _cubic_roots(values[rows], k.astype(np.int64))
    sign = np.where(pos[rows, k], -1, 1).astype(np.int64)
    return rows.astype(np.int64), t, sign


def brute_force_edges(sim: Simulation, duration_s: float, sats_per_block: int = 25) -> dict[int, Edges]:
    """Eclipse (positive = eclipsed) and ground-contact edges of every satellite from a 1 s scan."""
    t = np.arange(0.0, duration_s + 0.5, 1.0)
    jd = sim.jd0 + t / 86400.0
    frame = sim.orbits.frame
    sun = sun_position_km(jd, frame) * 1000.0
    offset = sim.config.earth_rotation_offset_s
    stations = []
    for st in sim.stations:
        ecef, up = st.ecef_m()
        stations.append((ecef_to_inertial(ecef, jd, frame, offset), ecef_to_inertial(up, jd, frame, offset),
                         np.deg2rad(st.min_elevation_deg)))  # fmt: skip
    out: dict[int, list[tuple[I64, I64, F64, I64]]] = {EventKind.ECLIPSE: [], EventKind.CONTACT: []}
    for lo in range(0, sim.orbits.n, sats_per_block):
        idx = np.arange(lo, min(sim.orbits.n, lo + sats_per_block), dtype=np.int64)
        pos, _ = sim.orbits.subset(idx).state(t)
        g = -eclipse_function_m2(pos, sun[None], sim.config.eclipse_radius_m)
        rows, te, sign = _flips(g, 0.0)
        out[EventKind.ECLIPSE].append((idx[rows], np.zeros(rows.size, np.int64), te, sign))
        for s, (sp, su, minel) in enumerate(stations):
            vis = elevation_function(pos, sp[None], su[None], minel)
            rows, tc, sign = _flips(vis, 0.0)
            out[EventKind.CONTACT].append((idx[rows], np.full(rows.size, s, np.int64), tc, sign))
    return {
        kind: Edges(*(np.concatenate([p[i] for p in parts]) for i in range(4)))  # type: ignore[arg-type]
        for kind, parts in out.items()
    }


def engine_edges(result: SimResult, kind: int) -> Edges:
    m = result.event_kind == kind
    sign = np.where(result.event_value[m] > 0, 1, -1).astype(np.int64)
    arg = result.event_arg[m] if kind == EventKind.CONTACT else np.zeros(int(m.sum()), np.int64)
    return Edges(result.event_sat[m], arg, result.event_time_s[m], sign)


@dataclass(frozen=True)
class Comparison:
    windows: int  # reference windows (opening and closing both inside the run)
    short_windows: int  # of those, shorter than the engine's grid step
    between_knots: int  # of those, with no grid knot inside (a sign-change search cannot see them)
    missed_windows: int  # reference windows of >= min_window_s with an edge the engine does not have within 1 s
    missed_short: int  # reference windows shorter than min_window_s the engine does not have (allowed)
    extra_edges: int  # engine edges with no reference edge within 1 s
    errors_s: F64  # |engine - reference| for every matched edge
    shortest_found_s: float  # the shortest reference window the engine has (both edges within 1 s)


def compare(reference: Edges, engine: Edges, knots: F64, step_s: float, min_window_s: float = 5.0) -> Comparison:
    """Match edges by (satellite, argument, direction) to the nearest time; pair reference edges into windows."""
    key_ref = reference.sat * 10_000 + reference.arg * 2 + (reference.sign > 0)
    key_eng = engine.sat * 10_000 + engine.arg * 2 + (engine.sign > 0)
    errors = np.full(reference.time_s.size, np.inf)
    used = np.zeros(engine.time_s.size, dtype=bool)
    for key in np.unique(np.concatenate([key_ref, key_eng])):
        r = np.flatnonzero(key_ref == key)
        e = np.flatnonzero(key_eng == key)
        if r.size == 0 or e.size == 0:
            continue
        d = np.abs(reference.time_s[r][:, None] - engine.time_s[e][None, :])
        nearest = np.argmin(d, axis=1)
        errors[r] = d[np.arange(r.size), nearest]
        used[e[nearest[errors[r] <= 1.0]]] = True
    # windows: an opening followed by the next closing of the same satellite and argument
    order = np.lexsort((reference.time_s, reference.arg, reference.sat))
    s, a, t, g = reference.sat[order], reference.arg[order], reference.time_s[order], reference.sign[order]
    err = errors[order]
    pair = (g[:-1] > 0) & (g[1:] < 0) & (s[:-1] == s[1:]) & (a[:-1] == a[1:])
    starts = np.flatnonzero(pair)
    length = t[starts + 1] - t[starts]
    missed = (err[starts] > 1.0) | (err[starts + 1] > 1.0)
    knot_inside = np.searchsorted(knots, t[starts], side="right") != np.searchsorted(knots, t[starts + 1], side="right")
    return Comparison(
        windows=int(starts.size),
        short_windows=int(np.sum(length < step_s)),
        between_knots=int(np.sum(~knot_inside)),
        missed_windows=int(np.sum(missed & (length >= min_window_s))),
        missed_short=int(np.sum(missed & (length < min_window_s))),
        extra_edges=int(np.sum(~used)),
        errors_s=errors[np.isfinite(errors) & (errors <= 1.0)],
        shortest_found_s=float(np.min(length[~missed], initial=np.inf)),
    )
