"""Satellite passes (AOS, TCA, LOS) over many ground stations at once: coarse SGP4 grid, then vectorised refinement.

Algorithm (`find_passes`):
1. SGP4 for a block of satellites at nodes every few grid steps (240 s in LEO, up to 600 s for slow orbits:
   `propagate.node_step_s`), and the states on a uniform grid (default 60 s) by quintic Hermite interpolation
   between the nodes (`GridBlock`). The grid runs one step before the window start to one step past its end, so
   passes that straddle the window edges are bracketed like any other.
2. sin(elevation) - sin(mask) for every (satellite, grid time, station) as two float32 matrix products in
   homogeneous coordinates (station up vector . (r - p) and |r - p|^2), in cache-sized pieces. A station's mask
   is its minimum elevation, raised by its horizon mask (if any) at the satellite's azimuth. float32 only
   brackets events: every value that is reported is recomputed in float64. Skipping samples was tried twice and
   measured slower than this dense scan at 100 stations: a per-(satellite, station, block of grid steps) ball
   test (1.1-1.3x the CPU of the whole call, it kept a quarter of the samples), and a per-sample test of the
   angle between satellite and station against the horizon cone for the satellite's altitude (5 % kept, but
   the test's own product, the transposed `flatnonzero` and the gathered float64 evaluation of the kept samples
   took 0.31-0.32 s against 0.15-0.20 s for the dense scan, 200 x 100, load 5): numpy's gathers cost more than
   BLAS computes.
3. Brackets: sign changes between grid points (AOS/LOS), and local maxima of the sampled function that are
   above the mask or close below it (a short pass can peak between grid points and hide from the samples).
4. Refinement, vectorised over every bracket of the block at once (no Python loop per satellite or per pass):
   safeguarded Newton steps (analytic d sin(el)/dt) on sin el - sin mask for AOS/LOS (derivative-free secant
   steps at stations with a horizon mask, whose slope the derivative does not know), and safeguarded secant
   steps on d sin(el)/dt for TCA, started at the vertex of the parabola through the three samples. Each step
   evaluates only the bracketed (satellite, station, time) items. The satellite state between nodes is the
   quintic Hermite polynomial through the SGP4 positions and velocities and the J2 gravity at the two nodes:
   measured 0.9-1.9 m off SGP4 over 24 h for the LEO families at 240 s nodes (the cubic through positions and
   velocities needs 60 s nodes for that: 6 m at 120 s, 30 m at 180 s), far below the 1 s / 0.05 deg promised.
   `sgp4.api.SatrecArray` evaluates satellites x times as a full product, so exact SGP4 at one scattered time
   per bracket would need a Python loop per satellite: that loop was the measured bottleneck (144 s of 218 s at
   20,000 satellites), and SGP4 on every 60 s grid point was a quarter of the time.
5. A local maximum below the mask whose refined peak rises above it becomes a short pass (roots found on both
   sides of the peak). Passes are assembled per (satellite, station) from the time-sorted events, clipped to
   [start, end] with `aos_clipped` / `los_clipped` flags, and filtered by `min_duration_s`. The look angles at
   AOS, LOS and TCA come from the refinement's last evaluations (only window-clipped edges, masked stations and
   maxima above 78 deg are evaluated again), and the orders come from one checked `argsort` instead of
   `np.lexsort` (`_order_by_pair`, `_order_by_time`).

Precision: TEME -> Earth-fixed by GMST-82, UT1 = UTC, no polar motion; measured against Skyfield's `find_events`
in tests/astro/test_passes.py (AOS/LOS within 1 s, max elevation within 0.05 deg).
Memory: satellites are processed in blocks (states of `block_sats` satellites; elevation in sub-blocks of about
`max_grid_elements` values), so working memory does not grow with the number of satellites; the result table
does (about 100 bytes per pass).

Short passes are found through elevation maxima between grid samples. At stations with a horizon mask, the grid's
passes are corrected by a 2 s sampling around every grid sample where the mask could open or close a pass before the
next one (a narrow notch of a ridge, far from the elevation peak, opens for seconds; a ridge can close a pass for
less than a grid step): measured, 200 satellites x 50 stations x 24 h took 0.6 s without masks and 1.9-4.2 s
with a notched ridge at 10 of the stations (2 busy cores). Known limits: `min_elevation_deg` and masks are
geometric (no refraction); the masked search assumes the elevation changes by less than 5 degrees between grid
samples near the mask's lowest point (a 60 s grid for LEO).

Compiled kernels: where numba is importable (the `scheduler` extra), steps 2-4 at stations without a horizon mask
and the Newton/secant loops of step 4 run compiled (`_pass_jit`): the same algorithm item by item, the grid's
positions and values evaluated one time row at a time instead of stored. Same passes as the numpy code
(tests/astro/test_pass_jit.py: AOS/LOS within 0.05 s, max elevation within 1e-4 deg); CPU measured 1.95 -> 1.00 s at
1,000 x 100 and 44-48 -> 27-33 s at 20,000 x 100 (benchmarks/results/visibility.md, section F).
`compiled=False` or SKYMESH_NO_NUMBA=1 runs the numpy code. The first call in a process loads the machine code
from numba's cache next to the module (__pycache__), or compiles it there if absent (see section F for both
times).

Runtime imports: numpy, sgp4 and skymesh; numba where importable.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from skymesh.astro._mask_search import masked_passes
from skymesh.astro._pass_kernels import (
    GMST_RATE_RAD_S,
    GridBlock,
    GridScan,
    HorizonMask,
    compiled_kernels,
    prepare_stations,
    scan_block_compiled,
    scan_grid,
    solve_crossings_look,
    solve_maxima,
)
from skymesh.astro.frames import SECONDS_PER_DAY, datetime_to_jd, gmst_rad, jd_to_datetime, require_utc
from skymesh.astro.propagate import SatelliteBatch, split_jd
from skymesh.core.errors import InvalidArgument

__all__ = ["HorizonMask", "Pass", "PassTable", "find_passes"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]


# ---------------------------------------------------------------------------------------------------- types


@dataclass(frozen=True)
class Pass:
    """One pass of one satellite over one station. Times are tz-aware UTC."""

    sat_index: int
    station_index: int
    norad_id: int
    name: str
    aos: datetime
    tca: datetime
    los: datetime
    max_elevation_deg: float
    aos_azimuth_deg: float
    tca_azimuth_deg: float
    los_azimuth_deg: float
    aos_clipped: bool  # already in progress at the window start: `aos` is the window start
    los_clipped: bool  # still in progress at the window end: `los` is the window end

    @property
    def duration_s(self) -> float:
        return (self.los - self.aos).total_seconds()


@dataclass(frozen=True)
class PassTable:
    """Passes as parallel numpy arrays, in chronological order of AOS (ties by satellite, then station)."""

    sat_index: I64
    station_index: I64
    norad_id: I64
    aos_jd: F64
    tca_jd: F64
    los_jd: F64
    max_elevation_deg: F64
    aos_azimuth_deg: F64
    tca_azimuth_deg: F64
    los_azimuth_deg: F64
    aos_clipped: B
    los_clipped: B
    names: tuple[str, ...] = ()  # satellite names, indexed by sat_index
    stats: Mapping[str, float] = field(default_factory=dict)  # timings (s) and counts of the run
    window_start: datetime | None = None  # clipped AOS / LOS are exactly these in `to_list`
    window_end: datetime | None = None

    def __len__(self) -> int:
        return int(self.sat_index.size)

    @property
    def duration_s(self) -> F64:
        return np.asarray((self.los_jd - self.aos_jd) * SECONDS_PER_DAY, dtype=np.float64)

    def select(self, which: ArrayLike) -> PassTable:
        """The passes picked by a boolean mask or an index array, in that order."""
        idx = np.asarray(which)
        return PassTable(
            sat_index=self.sat_index[idx],
            station_index=self.station_index[idx],
            norad_id=self.norad_id[idx],
            aos_jd=self.aos_jd[idx],
            tca_jd=self.tca_jd[idx],
            los_jd=self.los_jd[idx],
            max_elevation_deg=self.max_elevation_deg[idx],
            aos_azimuth_deg=self.aos_azimuth_deg[idx],
            tca_azimuth_deg=self.tca_azimuth_deg[idx],
            los_azimuth_deg=self.los_azimuth_deg[idx],
            aos_clipped=self.aos_clipped[idx],
            los_clipped=self.los_clipped[idx],
            names=self.names,
            stats=self.stats,
            window_start=self.window_start,
            window_end=self.window_end,
        )

    def to_list(self) -> list[Pass]:
        out: list[Pass] = []
        for i in range(len(self)):
            sat = int(self.sat_index[i])
            out.append(
                Pass(
                    sat_index=sat,
                    station_index=int(self.station_index[i]),
                    norad_id=int(self.norad_id[i]),
                    name=self.names[sat] if sat < len(self.names) else "",
                    aos=(
                        self.window_start
                        if self.aos_clipped[i] and self.window_start is not None
                        else jd_to_datetime(float(self.aos_jd[i]))
                    ),
                    tca=jd_to_datetime(float(self.tca_jd[i])),
                    los=(
                        self.window_end
                        if self.los_clipped[i] and self.window_end is not None
                        else jd_to_datetime(float(self.los_jd[i]))
                    ),
                    max_elevation_deg=float(self.max_elevation_deg[i]),
                    aos_azimuth_deg=float(self.aos_azimuth_deg[i]),
                    tca_azimuth_deg=float(self.tca_azimuth_deg[i]),
                    los_azimuth_deg=float(self.los_azimuth_deg[i]),
                    aos_clipped=bool(self.aos_clipped[i]),
                    los_clipped=bool(self.los_clipped[i]),
                )
            )
        return out


# ---------------------------------------------------------------------------------------------------- the search


@dataclass
class _Events:
    """Per-block results before assembly, times in seconds from the window start."""

    rise_p: list[I64] = field(default_factory=list)
    rise_t: list[F64] = field(default_factory=list)
    rise_sin: list[F64] = field(default_factory=list)  # sin(elevation) and azimuth (deg) from the refinement
    rise_az: list[F64] = field(default_factory=list)
    set_p: list[I64] = field(default_factory=list)
    set_t: list[F64] = field(default_factory=list)
    set_sin: list[F64] = field(default_factory=list)
    set_az: list[F64] = field(default_factory=list)
    max_p: list[I64] = field(default_factory=list)
    max_t: list[F64] = field(default_factory=list)
    max_sin: list[F64] = field(default_factory=list)
    max_az: list[F64] = field(default_factory=list)
    up_pairs: list[I64] = field(default_factory=list)


def find_passes(
    batch: SatelliteBatch,
    stations_lat_deg: ArrayLike,
    stations_lon_deg: ArrayLike,
    stations_alt_m: ArrayLike,
    start: datetime,
    end: datetime,
    min_elevation_deg: float | ArrayLike,
    *,
    step_s: float = 60.0,
    horizon_masks: Sequence[HorizonMask | tuple[ArrayLike, ArrayLike] | None] | None = None,
    min_duration_s: float = 0.0,
    max_grid_elements: int = 600_000,
    block_sats: int = 1000,
    compiled: bool = True,
) -> PassTable:
    """Every pass of every satellite in `batch` over every station between `start` and `end` (tz-aware UTC).

    `min_elevation_deg` is one value or one per station; `horizon_masks` is None or one entry (a `HorizonMask`,
    an (azimuths, elevations) pair, or None) per station, raising that station's mask where it is higher.
    `step_s` is the coarse grid step: keep it well below the shortest pass you care about (60 s suits LEO).
    `compiled=False` runs the numpy code even where numba is importable (the compiled kernels give the same passes).
    """
    t_begin = time.perf_counter()
    start_utc = require_utc(start, "start")
    end_utc = require_utc(end, "end")
    if end_utc <= start_utc:
        raise InvalidArgument("end must be after start", field="end")
    if not (math.isfinite(step_s) and 1.0 <= step_s <= 600.0):
        raise InvalidArgument(f"step must be within 1..600 s, got {step_s}", field="step_s")
    if not (math.isfinite(min_duration_s) and min_duration_s >= 0.0):
        raise InvalidArgument("minimum duration must be >= 0 s", field="min_duration_s")
    st = prepare_stations(stations_lat_deg, stations_lon_deg, stations_alt_m, min_elevation_deg, horizon_masks)
    n_sta = st.site_km.shape[0]
    n_sat = len(batch)

    jd0 = datetime_to_jd(start_utc)
    window_s = (end_utc - start_utc).total_seconds()
    n_times = math.ceil((window_s + 2.0 * step_s) / step_s) + 1
    t_grid = -step_s + step_s * np.arange(n_times, dtype=np.float64)
    theta0 = float(gmst_rad(jd0))
    theta = theta0 + GMST_RATE_RAD_S * t_grid
    cos_t, sin_t = np.cos(theta)[None, :], np.sin(theta)[None, :]
    # How far below the mask a sampled local maximum may be and still hide a pass between grid points.
    margin_deg = np.maximum(5.0, 0.2 * np.abs(st.max_mask_deg)) * max(1.0, (step_s / 60.0) ** 2)
    near_sin = np.sin(np.radians(np.minimum(st.max_mask_deg, 90.0))) - np.sin(
        np.radians(np.maximum(st.max_mask_deg - margin_deg, -90.0))
    )
    timings = {"propagate_s": 0.0, "grid_s": 0.0, "refine_s": 0.0, "assemble_s": 0.0, "masked_s": 0.0}
    counts = {"crossings": 0, "maxima": 0, "short_passes": 0, "masked_passes": 0}
    has_mask = st.mask_row >= 0
    tables: list[dict[str, NDArray[np.generic]]] = []
    block_sats = max(1, int(block_sats))
    # 600,000 float32 values (4 satellites x 24 h x 100 stations) per scan: measured 25 % faster than 65,536 (one
    # satellite per call, whose ~60 numpy calls' overhead and 1,000 pieces per block to merge dominated), and no
    # slower than 900,000.
    sub_sats = max(1, int(max_grid_elements) // (n_times * n_sta))
    jit = compiled_kernels() if compiled else None
    # SGP4 every `stride` grid steps, per satellite (quintic Hermite in between, see `GridBlock`); one block holds
    # satellites of one stride.
    strides = np.maximum(1, np.floor(batch.node_step_s / step_s + 1e-9)).astype(np.int64)
    for stride in np.unique(strides).tolist():
        members = np.flatnonzero(strides == stride)
        n_nodes = (n_times - 1) // stride + 2
        node_whole, node_frac = split_jd(jd0 + (t_grid[0] + step_s * stride * np.arange(n_nodes)) / SECONDS_PER_DAY)
        for g0 in range(0, members.size, block_sats):
            sat_ids = members[g0 : g0 + block_sats]
            t0 = time.perf_counter()
            r, v, err = batch.propagate(node_whole, jd_fraction=node_frac, sat_slice=sat_ids)
            block = GridBlock(r, v, float(t_grid[0]), step_s, stride, theta0, st, jit)
            del r, v
            timings["propagate_s"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            if jit is not None and not has_mask.any():
                scan = scan_block_compiled(block, n_times, cos_t, sin_t, near_sin)
            else:
                r_grid = block.grid_positions(n_times, slice(None))
                scans: list[GridScan] = []
                for c0 in range(0, sat_ids.size, sub_sats):
                    rc = r_grid[c0 : min(sat_ids.size, c0 + sub_sats)]
                    scans.append(scan_grid(rc, c0, cos_t, sin_t, st, near_sin, bool(err.any())))
                del r_grid
                scan = GridScan(
                    *(np.concatenate([getattr(x, f) for x in scans]) for f in GridScan.__dataclass_fields__)
                )
            timings["grid_s"] += time.perf_counter() - t0

            t0 = time.perf_counter()
            ev = _refine(block, scan, t_grid, near_sin, 0, n_sta, counts)
            timings["refine_s"] += time.perf_counter() - t0

            t0 = time.perf_counter()
            table = _assemble(ev, block, 0, n_sta, window_s, min_duration_s)
            timings["assemble_s"] += time.perf_counter() - t0

            if scan.dip_n.size:
                # At masked stations the grid's passes, corrected by a fine sampling where the mask can fool the grid.
                t0 = time.perf_counter()
                fine = masked_passes(block, scan, t_grid, step_s, 0, n_sta, window_s, min_duration_s, table)
                grid_only = ~has_mask[np.asarray(table["station_index"], dtype=np.int64)]
                table = {key: np.concatenate([table[key][grid_only], fine[key]]) for key in table}
                counts["masked_passes"] += int(fine["sat_index"].size)
                timings["masked_s"] += time.perf_counter() - t0
            table["sat_index"] = sat_ids[np.asarray(table["sat_index"], dtype=np.int64)]
            tables.append(table)

    # One column at a time, each block's part released as it is merged: at 20,000 satellites the table is most of
    # the memory, and copying it whole twice set the peak.
    merged: dict[str, NDArray[np.generic]] = {}
    for key in list(tables[0]):
        merged[key] = np.concatenate([t.pop(key) for t in tables])
    del tables
    sat_all = merged.pop("sat_index").astype(np.int64)
    sta_all = merged.pop("station_index").astype(np.int64)
    order = _order_by_time(np.asarray(merged["aos_s"], dtype=np.float64), sat_all * n_sta + sta_all)
    sat_index = sat_all[order]
    del sat_all
    station_index = sta_all[order]
    del sta_all

    def column(key: str, dtype: type) -> NDArray[Any]:
        return np.asarray(merged.pop(key), dtype=dtype)[order]

    def jd(key: str) -> F64:
        out = column(key, np.float64)
        out /= SECONDS_PER_DAY
        out += jd0
        return out

    stats: dict[str, float] = {**timings, **{k: float(v) for k, v in counts.items()}}
    stats["total_s"] = time.perf_counter() - t_begin
    stats["grid_points"] = float(n_sat * n_times)
    return PassTable(
        sat_index=sat_index,
        station_index=station_index,
        norad_id=batch.norad_ids[sat_index],
        aos_jd=jd("aos_s"),
        tca_jd=jd("tca_s"),
        los_jd=jd("los_s"),
        max_elevation_deg=column("max_elevation_deg", np.float64),
        aos_azimuth_deg=column("aos_azimuth_deg", np.float64),
        tca_azimuth_deg=column("tca_azimuth_deg", np.float64),
        los_azimuth_deg=column("los_azimuth_deg", np.float64),
        aos_clipped=column("aos_clipped", np.bool_),
        los_clipped=column("los_clipped", np.bool_),
        names=batch.names,
        stats=stats,
        window_start=start_utc,
        window_end=end_utc,
    )


# ---------------------------------------------------------------------------------------------------- sorting
# `np.lexsort` was measured 3-6x slower than one `np.argsort` (0.46 s against 0.08 s for 1.4 million items):
# these give its exact order from one argsort, checked, with lexsort only where the check fails.


def _order_by_pair(major: I64, minor: F64, span: float, tie: NDArray[np.int8] | None = None) -> I64:
    """`np.lexsort((-tie, minor, major))` (or without `tie`) for |minor| < span / 2, from one argsort of
    major * span + minor; the order is checked and lexsort is used if float rounding broke it."""
    key = major * span + minor
    if key.size and np.isfinite(key).all():
        order = np.argsort(key)
        m, n = major[order], minor[order]
        same = m[1:] == m[:-1]
        bad = (m[1:] < m[:-1]) | (same & (n[1:] < n[:-1]))
        same &= n[1:] == n[:-1]
        if tie is not None:
            k = tie[order]
            bad |= same & (k[1:] > k[:-1])
            same &= k[1:] == k[:-1]
        bad |= same & (order[1:] < order[:-1])  # equal keys in their original order, as lexsort leaves them
        if not bad.any():
            return np.asarray(order, dtype=np.int64)
    keys: tuple[NDArray[Any], ...] = (minor, major) if tie is None else (-tie, minor, major)
    return np.asarray(np.lexsort(keys), dtype=np.int64)


def _order_by_time(t: F64, pair: I64) -> I64:
    """`np.lexsort((pair, t))`: one argsort of `t`, then lexsort only over runs of equal times."""
    order = np.argsort(t)
    ts = t[order]
    tied = np.zeros(ts.size, dtype=bool)
    eq = ts[1:] == ts[:-1]
    tied[1:] |= eq
    tied[:-1] |= eq
    if tied.any():
        # Runs of equal times are contiguous: sorting their members by (t, pair) keeps each run in its place.
        sub = np.sort(order[tied])  # lexsort is stable: equal keys in their original order
        order[tied] = sub[np.lexsort((pair[sub], t[sub]))]
    if not np.all(ts[1:] >= ts[:-1]):  # NaN: no order to check against
        return np.asarray(np.lexsort((pair, t)), dtype=np.int64)
    return np.asarray(order, dtype=np.int64)


def _refine(
    block: GridBlock, scan: GridScan, t_grid: F64, near_sin: F64, b0: int, n_sta: int, counts: dict[str, int]
) -> _Events:
    """Refine every bracket of a block at once: crossings, maxima, and short passes hidden between samples."""
    ev = _Events()
    t_cross, sin_cross, az_cross = solve_crossings_look(
        block, scan.cross_n, scan.cross_s, t_grid[scan.cross_k], t_grid[scan.cross_k + 1], scan.cross_ga, scan.cross_gb
    )
    p = (scan.cross_n + b0) * n_sta + scan.cross_s
    rise, fall = scan.cross_rise, ~scan.cross_rise
    ev.rise_p.append(p[rise])
    ev.rise_t.append(t_cross[rise])
    ev.rise_sin.append(sin_cross[rise])
    ev.rise_az.append(az_cross[rise])
    ev.set_p.append(p[fall])
    ev.set_t.append(t_cross[fall])
    ev.set_sin.append(sin_cross[fall])
    ev.set_az.append(az_cross[fall])
    counts["crossings"] += int(p.size)

    n, k, s = scan.max_n, scan.max_k, scan.max_s
    if n.size:
        t_max, sin_max, vis_max, az_max = solve_maxima(
            block, n, s, t_grid[k], scan.max_g_prev, scan.max_g, scan.max_g_next
        )
        ev.max_p.append((n + b0) * n_sta + s)
        ev.max_t.append(t_max)
        ev.max_sin.append(sin_max)
        ev.max_az.append(az_max)
        counts["maxima"] += int(n.size)
        # Short passes: sampled below the mask on both sides, but the refined peak is above it.
        hidden = (scan.max_g < 0.0) & (vis_max >= 0.0)
        if hidden.any():
            hn, hs, hk, ht, peak = n[hidden], s[hidden], k[hidden], t_max[hidden], vis_max[hidden]
            ga = block.visibility(hn, hs, t_grid[hk - 1])
            gb = block.visibility(hn, hs, t_grid[hk + 1])
            t_rise, sin_rise, az_rise = solve_crossings_look(block, hn, hs, t_grid[hk - 1], ht, ga, peak)
            t_set, sin_set, az_set = solve_crossings_look(block, hn, hs, ht, t_grid[hk + 1], peak, gb)
            hp = (hn + b0) * n_sta + hs
            ev.rise_p.append(hp)
            ev.rise_t.append(t_rise)
            ev.rise_sin.append(sin_rise)
            ev.rise_az.append(az_rise)
            ev.set_p.append(hp)
            ev.set_t.append(t_set)
            ev.set_sin.append(sin_set)
            ev.set_az.append(az_set)
            counts["short_passes"] += int(hn.size)
    ev.up_pairs.append((scan.up_n + b0) * n_sta + scan.up_s)
    return ev


def _assemble(
    ev: _Events,
    block: GridBlock,
    b0: int,
    n_sta: int,
    window_s: float,
    min_duration_s: float,
) -> dict[str, NDArray[np.generic]]:
    """Pair rises with sets per (satellite, station), clip to the window, attach TCA and look angles."""

    def cat_i(parts: list[I64]) -> I64:
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)

    def cat_f(parts: list[F64]) -> F64:
        return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0, dtype=np.float64)

    rise_p, rise_t = cat_i(ev.rise_p), cat_f(ev.rise_t)
    set_p, set_t = cat_i(ev.set_p), cat_f(ev.set_t)
    p_all = np.concatenate([rise_p, set_p])
    t_all = np.concatenate([rise_t, set_t]).astype(np.float64)
    kind = np.concatenate([np.ones(rise_p.size, np.int8), -np.ones(set_p.size, np.int8)])
    # at equal times a rise sorts before a set
    order = _order_by_pair(p_all, t_all, 4.0 * (window_s + 1e4), tie=kind)
    p_all, t_all, kind = p_all[order], t_all[order], kind[order]
    # Look angles at the events, from the refinement (no geometry is evaluated again for them).
    sin_all = np.concatenate([cat_f(ev.rise_sin), cat_f(ev.set_sin)])[order]
    az_all = np.concatenate([cat_f(ev.rise_az), cat_f(ev.set_az)])[order]

    before = -np.inf
    after = np.inf
    n_ev = p_all.size
    same_next = np.zeros(n_ev, dtype=bool)
    if n_ev > 1:
        same_next[:-1] = p_all[:-1] == p_all[1:]
    same_prev = np.zeros(n_ev, dtype=bool)
    same_prev[1:] = same_next[:-1]
    is_rise = kind == 1
    # A rise pairs with the next event (a set of the same pair), or lasts past the grid.
    r_idx = np.nonzero(is_rise)[0]
    r_has_set = np.zeros(r_idx.size, dtype=bool)
    if r_idx.size:
        nxt = np.minimum(r_idx + 1, n_ev - 1)
        r_has_set = same_next[r_idx] & (kind[nxt] == -1)
    pass_p = [p_all[r_idx]]
    pass_a = [t_all[r_idx]]
    pass_b = [np.where(r_has_set, t_all[np.minimum(r_idx + 1, n_ev - 1)], after)]
    ev_a = [r_idx]  # event of the AOS and of the LOS, -1 where the pass starts or ends beyond the grid
    ev_b = [np.where(r_has_set, r_idx + 1, -1)]
    # A set with no rise before it (in the same pair) started before the grid.
    s_idx = np.nonzero(~is_rise & ~(same_prev & np.roll(is_rise, 1)))[0]
    pass_p.append(p_all[s_idx])
    pass_a.append(np.full(s_idx.size, before))
    pass_b.append(t_all[s_idx])
    ev_a.append(np.full(s_idx.size, -1))
    ev_b.append(s_idx)
    up = cat_i(ev.up_pairs)
    pass_p.append(up)
    pass_a.append(np.full(up.size, before))
    pass_b.append(np.full(up.size, after))
    ev_a.append(np.full(up.size, -1))
    ev_b.append(np.full(up.size, -1))
    pp = np.concatenate(pass_p)
    aa = np.concatenate(pass_a)
    bb = np.concatenate(pass_b)
    ea = np.concatenate(ev_a).astype(np.int64)
    eb = np.concatenate(ev_b).astype(np.int64)

    keep = (bb > 0.0) & (aa < window_s)
    pp, aa, bb, ea, eb = pp[keep], aa[keep], bb[keep], ea[keep], eb[keep]
    aos_clipped = aa < 0.0
    los_clipped = bb > window_s
    aos = np.maximum(aa, 0.0)
    los = np.minimum(bb, window_s)
    long_enough = (los - aos) >= min_duration_s
    long_enough &= los > aos
    pp, aos, los, aos_clipped, los_clipped, ea, eb = (
        pp[long_enough],
        aos[long_enough],
        los[long_enough],
        aos_clipped[long_enough],
        los_clipped[long_enough],
        ea[long_enough],
        eb[long_enough],
    )
    n_pass = pp.size
    sat = pp // n_sta
    sta = pp % n_sta
    n_loc = sat - b0

    # TCA: the highest refined maximum inside [aos, los]; otherwise the higher window edge.
    mp, mt, ms, ma = cat_i(ev.max_p), cat_f(ev.max_t), cat_f(ev.max_sin), cat_f(ev.max_az)
    tca = np.full(n_pass, np.nan)
    best = np.full(n_pass, -np.inf)
    best_az = np.full(n_pass, np.nan)
    if n_pass and mp.size:
        span = 4.0 * (window_s + 1e4)
        order_p = _order_by_pair(pp, aos, span)
        key_pass = pp[order_p].astype(np.float64) * span + aos[order_p]
        key_max = mp.astype(np.float64) * span + mt
        j = np.searchsorted(key_pass, key_max, side="right") - 1
        ok = j >= 0
        jj = order_p[np.clip(j, 0, n_pass - 1)]
        ok &= (pp[jj] == mp) & (mt >= aos[jj] - 1e-6) & (mt <= los[jj] + 1e-6)
        m_ok = np.flatnonzero(ok)
        jj = jj[m_ok]
        by = _order_by_pair(jj, ms[m_ok], 4.0)
        jj, m_ok = jj[by], m_ok[by]
        last = np.ones(jj.size, dtype=bool)
        last[:-1] = jj[:-1] != jj[1:]
        tca[jj[last]] = mt[m_ok[last]]
        best[jj[last]] = ms[m_ok[last]]
        best_az[jj[last]] = ma[m_ok[last]]

    # Edges: the refined event's values, or (at the window edges) one evaluation.
    def edge_look(t_edge: F64, clipped: B, ev_idx: I64) -> tuple[F64, F64]:
        from_ev = ~clipped & (ev_idx >= 0)
        sin_e = np.where(from_ev, sin_all[np.maximum(ev_idx, 0)] if n_ev else np.nan, np.nan)
        az_e = np.where(from_ev, az_all[np.maximum(ev_idx, 0)] if n_ev else np.nan, np.nan)
        q = np.flatnonzero(~from_ev)
        if q.size:
            sin_q, _, az_q = block.geometry(n_loc[q], sta[q], t_edge[q], azimuth=True)
            assert az_q is not None
            sin_e[q], az_e[q] = sin_q, az_q
        return np.asarray(sin_e, dtype=np.float64), np.asarray(az_e, dtype=np.float64)

    sin_aos, az_aos = edge_look(aos, aos_clipped, ea)
    sin_los, az_los = edge_look(los, los_clipped, eb)
    no_max = ~np.isfinite(tca)
    aos_higher = sin_aos >= sin_los
    edge_t = np.where(aos_higher, aos, los)
    use_edge = no_max | (np.maximum(sin_aos, sin_los) > best)
    tca = np.where(use_edge, edge_t, tca)
    sin_tca = np.where(use_edge, np.where(aos_higher, sin_aos, sin_los), best)
    az_tca = np.where(use_edge, np.where(aos_higher, az_aos, az_los), best_az)
    max_el = np.degrees(np.arcsin(np.clip(sin_tca, -1.0, 1.0)))
    return {
        "sat_index": sat,
        "station_index": sta,
        "aos_s": aos,
        "tca_s": tca,
        "los_s": los,
        "max_elevation_deg": max_el,
        "aos_azimuth_deg": az_aos,
        "tca_azimuth_deg": az_tca,
        "los_azimuth_deg": az_los,
        "aos_clipped": aos_clipped,
        "los_clipped": los_clipped,
    }
