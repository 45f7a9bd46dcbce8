"""Satellite passes reused across plans: a bounded cache in front of `visibility.satellite_windows`.

Successive plans of one day share almost all their passes: the horizon slides by the minutes between replans and
the element sets and stations rarely change. Passes are computed per block of `BLOCK_S` seconds aligned to UTC
(whole blocks, so the next plan finds them whatever its start) and kept per (satellite element set, block, grid
step), each block holding the passes over the stations it was computed for, named by their geometry (`_station_key`:
position, masks, bands, minimum elevation). A plan computes only what it does not find: the new tail of the horizon,
every block of a satellite whose elements (or band, minimum elevation) changed, and for a station added or moved
that station's passes alone (one `satellite_windows` call over the stations a block lacks; the rows of stations no
longer in the plan are dropped then). Blocks are computed as if every station were online and open; a station going
offline or closing for weather filters the joined windows (with the same reasons) and reuses the blocks.

A plan's windows are the blocks' passes joined where a pass runs across a block boundary, then clipped to the plan
window; the minimum pass length and the stations' unavailability are applied after joining, as
`satellite_windows` applies them, with the same reasons. Every plan goes through the blocks, cached or not, so a
plan is the same with and without the cache (`VisibilityCache(0)` caches nothing). Against one
`satellite_windows` call over the plan window the windows agree to the refinement's tolerance, except that a pass
clipped by the plan window keeps the azimuth of its real AOS / LOS (outside the window) as its end azimuth, and a
(satellite, station) pair whose only passes lie outside the window is explained NEVER_VISIBLE unless a block found
it BELOW_HORIZON_MASK.

Memory is bounded: least recently used blocks are dropped past `max_bytes` (the service's
`--visibility-cache-mb`), never one the running plan uses: a plan whose passes do not all fit keeps those that do
from plan to plan, where least-recently-used order alone would drop each block just before the next plan asks for
it (500 stations x 3,000 satellites in 256 MB: no hit at all). Thread-safe: the service may plan on several threads.

Imports: numpy, `skymesh.core`, the scheduler's visibility and reasons; never grpc.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from skymesh.core.model import SatelliteTarget, Station, StationState, TimeWindow, Weather
from skymesh.scheduler.isolation import CancelScope
from skymesh.scheduler.reasons import FilterLog, ReasonCode
from skymesh.scheduler.visibility import Windows, satellite_windows, subtract_unavailable

__all__ = ["BLOCK_S", "VisibilityCache"]

# Block length: a replan a few minutes later finds every block but (at most) the last; the first plan computes up
# to one block more than its horizon (4 h on 24 h), and a replan that enters a new block computes a sixth of a day.
BLOCK_S = 14400.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COLS = ("start_s", "end_s", "tca_s", "max_elevation_deg", "az0", "el0", "az1", "el1", "az_mid")
# Times and the culmination's elevation (an assignment's `max_elevation_deg`) stay float64; the pointings, read only
# for slew times, are kept as float32 (1e-5 degrees: a 1e-6 s slew difference): 56 bytes a pass instead of 80.
_DTYPES = {name: np.float64 if name.endswith("_s") or name.startswith("max_") else np.float32 for name in _COLS}
_JOIN_TOL_S = 1e-3  # a pass clipped at a block boundary ends (starts) there to float precision
_PAIR_CODES = (ReasonCode.NEVER_VISIBLE, ReasonCode.BELOW_HORIZON_MASK)

F64 = NDArray[np.float64]
F32 = NDArray[np.float32]
I64 = NDArray[np.int64]
I32 = NDArray[np.int32]


_SatKey = tuple[str, str, str, str, float]
_Key = tuple[_SatKey, int, float]  # (satellite, block, grid step)


@dataclass(frozen=True)
class _Block:
    """One satellite's passes in one block over the stations `stations` (their geometry keys; rows index them).

    Times in seconds from the block start. Blocks computed together share one `stations` tuple (not counted in
    `nbytes`: a few distinct tuples at a time, ~50 bytes per station each)."""

    stations: tuple[bytes, ...]
    station: I32
    cols: dict[str, NDArray[np.floating[Any]]]
    capable: I32  # stations that could see it (a pass, or none: never visible / below the mask in this block)
    below: I32  # stations where the mask hid it in this block

    @property
    def nbytes(self) -> int:
        arrays = self.station.nbytes + self.capable.nbytes + self.below.nbytes
        return int(arrays + sum(c.nbytes for c in self.cols.values()) + 512)


def _station_key(s: Station) -> bytes:
    """What `satellite_windows` reads of one station, less what is applied after the blocks (unavailability, and
    whether it is schedulable and open: blocks are computed as if it were)."""
    part = (
        s.station_id,
        s.kind.value,
        s.location.latitude_deg,
        s.location.longitude_deg,
        s.location.altitude_m,
        s.min_elevation_deg,
        tuple(s.horizon_mask.azimuth_deg),
        tuple(s.horizon_mask.min_elevation_deg),
        tuple(b.upper() for b in s.bands),
    )
    return hashlib.sha256(repr(part).encode()).digest()[:16]


def _sat_key(t: SatelliteTarget) -> _SatKey:
    return t.tle_line1, t.tle_line2, t.name, t.band.upper(), float(t.min_elevation_deg)


@dataclass
class _Todo:
    """Satellites of one block whose cached passes lack the same stations (`lacking`: indices in the plan's list)."""

    lacking: list[int]
    sats: dict[_SatKey, tuple[int, SatelliteTarget]] = field(default_factory=dict)
    old: dict[_SatKey, _Block | None] = field(default_factory=dict)


class VisibilityCache:
    """Per-block satellite passes, least recently used dropped past `max_bytes` (0: nothing kept)."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        # Values: (the call that last used the block, the block).
        self._blocks: OrderedDict[_Key, tuple[int, _Block]] = OrderedDict()
        self._call = 0
        self.nbytes = 0
        self.hits = 0  # (satellite, block) pairs found for every station
        self.misses = 0  # (satellite, block) pairs where at least one station was computed
        self.station_misses = 0  # (satellite, block, station) triples computed

    def __len__(self) -> int:
        return len(self._blocks)

    def clear(self) -> None:
        with self._lock:
            self._blocks.clear()
            self.nbytes = 0

    def _get(self, key: _Key, call: int) -> _Block | None:
        with self._lock:
            found = self._blocks.get(key)
            if found is None:
                return None
            self._blocks[key] = (call, found[1])
            self._blocks.move_to_end(key)
            return found[1]

    def _put(self, key: _Key, block: _Block, call: int) -> None:
        """Keep `block`, dropping least recently used blocks, but none that the running call uses: when a plan's
        passes do not all fit, the blocks kept stay the same from plan to plan (least-recently-used order alone
        would drop each block just before the next plan asks for it, and find none)."""
        size = block.nbytes
        with self._lock:
            old = self._blocks.pop(key, None)
            if old is not None:
                self.nbytes -= old[1].nbytes
            while self.nbytes + size > self.max_bytes and self._blocks:
                oldest = next(iter(self._blocks))
                used, dropped = self._blocks[oldest]
                if used == call:
                    return
                del self._blocks[oldest]
                self.nbytes -= dropped.nbytes
            if self.nbytes + size > self.max_bytes:
                return
            self._blocks[key] = (call, block)
            self.nbytes += size

    def satellite_windows(
        self,
        stations: Sequence[Station],
        targets: Sequence[tuple[int, SatelliteTarget]],
        window: TimeWindow,
        log: FilterLog,
        *,
        step_s: float = 60.0,
        min_pass_s: float = 60.0,
        unavailable_s: Sequence[Sequence[tuple[float, float]]] = (),
    ) -> Windows:
        """`visibility.satellite_windows`, from cached blocks where the stations and element sets are unchanged."""
        out = Windows()
        if not targets:
            return out
        with self._lock:
            self._call += 1
            call = self._call
        # Blocks are computed with every station online and open: a station going offline, closing for weather or
        # coming back (a dropped stream, a storm) filters the joined windows instead of making every block anew.
        usable = np.asarray([s.state.schedulable and s.weather.allows(s.kind) for s in stations], dtype=bool)
        geometry = [
            s
            if s.state == StationState.ONLINE and s.weather == Weather.UNSPECIFIED
            else replace(s, state=StationState.ONLINE, weather=Weather.UNSPECIFIED)
            for s in stations
        ]
        st_keys = [_station_key(s) for s in geometry]
        index = {k: i for i, k in enumerate(st_keys)}
        keys = [_sat_key(t) for _, t in targets]
        first = math.floor((window.start - _EPOCH).total_seconds() / BLOCK_S)
        last = math.ceil((window.end - _EPOCH).total_seconds() / BLOCK_S)
        blocks: list[dict[_SatKey, _Block]] = []
        seen_todo: set[_SatKey] = set()
        for b in range(first, last):
            # A cancelled plan stops between blocks and keeps the ones it finished: the caller's retry (the server
            # asks again after its scheduler timeout) continues where it stopped. Without this a cold plan longer
            # than that timeout (500 x 3,000 x 24 h at load 6) started over at every retry and never finished.
            CancelScope.checkpoint()
            found: dict[_SatKey, _Block] = {}
            # Satellites to compute, grouped by the stations their cached block lacks (the same for all, mostly:
            # every station for a new block, or the one station just added or moved): one computation per group.
            todo: dict[int, _Todo] = {}
            for k, key in enumerate(keys):
                if key in found or key in seen_todo:
                    continue
                hit = self._get((key, b, step_s), call)
                group_id = 0 if hit is None else id(hit.stations)
                group = todo.get(group_id)
                if group is None:
                    have = set() if hit is None else set(hit.stations)
                    group = todo[group_id] = _Todo([i for i, sk in enumerate(st_keys) if sk not in have])
                if hit is not None and not group.lacking:
                    found[key] = hit
                    continue
                seen_todo.add(key)
                group.sats[key] = targets[k]
                group.old[key] = hit
            seen_todo.clear()
            self.hits += len(found)
            for group in todo.values():
                if not group.sats:
                    continue
                self.misses += len(group.sats)
                self.station_misses += len(group.sats) * len(group.lacking)
                lacking = group.lacking
                computed = _compute_block([geometry[i] for i in lacking], list(group.sats.items()), b, step_s)
                merged = _merge_blocks(computed, [st_keys[i] for i in lacking], index, group.old)
                for key, block in merged.items():
                    self._put((key, b, step_s), block, call)
                found.update(merged)
            blocks.append(found)
        _assemble(out, stations, index, usable, targets, keys, blocks, first, window, log, min_pass_s, unavailable_s)
        return out


def _compute_block(
    stations: Sequence[Station],
    todo: list[tuple[_SatKey, tuple[int, SatelliteTarget]]],
    b: int,
    step_s: float,
) -> dict[_SatKey, tuple[I32, dict[str, NDArray[np.floating[Any]]], I32, I32]]:
    """One `satellite_windows` call over block `b` for these satellites at these stations, split per satellite:
    (station, columns, capable, below), stations indexing `stations`."""
    start = _EPOCH + timedelta(seconds=b * BLOCK_S)
    block_log = FilterLog()
    # Request indices as the caller's (errors name the caller's field); each satellite key once.
    win = satellite_windows(
        stations,
        [t for _, t in todo],
        TimeWindow(start, start + timedelta(seconds=BLOCK_S)),
        block_log,
        step_s=step_s,
        min_pass_s=0.0,
    )
    target = win.column("target", np.int64).astype(np.int64)
    order = np.argsort(target, kind="stable")
    target = target[order]
    station = win.column("station", np.int64).astype(np.int32)[order]
    cols: dict[str, NDArray[np.floating[Any]]] = {
        name: cast(NDArray[np.floating[Any]], win.column(name).astype(_DTYPES[name])[order]) for name in _COLS
    }
    station_index = {s.station_id: i for i, s in enumerate(stations)}
    out: dict[_SatKey, tuple[I32, dict[str, NDArray[np.floating[Any]]], I32, I32]] = {}
    for key, (rq, _) in todo:
        lo, hi = np.searchsorted(target, [rq, rq + 1])
        missing: list[int] = []
        below: list[int] = []
        for (code, sid), _n in block_log.for_target(rq).items():
            # The only other reason with every station online and open is NO_CAPABLE_STATION, which depends on the
            # whole station list: `_assemble` gives it.
            if code in _PAIR_CODES:
                missing.append(station_index[sid])
                if code == ReasonCode.BELOW_HORIZON_MASK:
                    below.append(station_index[sid])
        capable = np.union1d(station[lo:hi], np.asarray(missing, dtype=np.int32)).astype(np.int32)
        out[key] = (
            station[lo:hi].copy(),
            {name: c[lo:hi].copy() for name, c in cols.items()},
            capable,
            np.asarray(below, dtype=np.int32),
        )
    return out


def _merge_blocks(
    computed: dict[_SatKey, tuple[I32, dict[str, NDArray[np.floating[Any]]], I32, I32]],
    new_keys: list[bytes],
    index: dict[bytes, int],
    old: dict[_SatKey, _Block | None],
) -> dict[_SatKey, _Block]:
    """The computed stations' passes added to each satellite's cached block (where there is one), less the rows of
    stations no longer in the plan (`index`: the plan's station keys)."""
    out: dict[_SatKey, _Block] = {}
    shared: dict[int, tuple[tuple[bytes, ...], NDArray[np.bool_], I32]] = {}
    fresh = tuple(new_keys)
    for key, (station, cols, capable, below) in computed.items():
        prev = old.get(key)
        if prev is None:
            out[key] = _Block(fresh, station, cols, capable, below)
            continue
        merge = shared.get(id(prev.stations))
        if merge is None:
            keep = np.asarray([sk in index for sk in prev.stations], dtype=bool)
            renumber = (np.cumsum(keep) - 1).astype(np.int32)
            kept = tuple(sk for sk, k in zip(prev.stations, keep.tolist(), strict=True) if k)
            merge = shared[id(prev.stations)] = (kept + fresh, keep, renumber)
        both, keep, renumber = merge
        n_kept = int(keep.sum())
        rows = keep[prev.station]

        out[key] = _Block(
            both,
            _joined(renumber, prev.station, station, rows, n_kept),
            {name: np.concatenate([prev.cols[name][rows], cols[name]]) for name in _COLS},
            _joined(renumber, prev.capable, capable, keep[prev.capable], n_kept),
            _joined(renumber, prev.below, below, keep[prev.below], n_kept),
        )
    return out


def _joined(renumber: I32, old: I32, new: I32, rows: NDArray[np.bool_], n_kept: int) -> I32:
    """Station numbers of a merged block: the old block's kept stations renumbered, then the new ones after them."""
    return np.concatenate([renumber[old[rows]], new + n_kept]).astype(np.int32)


def _assemble(
    out: Windows,
    stations: Sequence[Station],
    index: dict[bytes, int],
    usable: NDArray[np.bool_],
    targets: Sequence[tuple[int, SatelliteTarget]],
    keys: Sequence[_SatKey],
    blocks: list[dict[_SatKey, _Block]],
    first: int,
    window: TimeWindow,
    log: FilterLog,
    min_pass_s: float,
    unavailable_s: Sequence[Sequence[tuple[float, float]]],
) -> None:
    """Join the blocks' passes per target, clip them to `window`, filter and log them as `satellite_windows` does."""
    offset0 = first * BLOCK_S - (window.start - _EPOCH).total_seconds()  # first block's start, from the window's
    duration = window.duration_s
    parts_t: list[I64] = []
    parts_s: list[I64] = []
    parts_c: dict[str, list[NDArray[np.floating[Any]]]] = {name: [] for name in _COLS}
    # A block's station numbers to the plan's (-1: a station no longer in the plan), once per stations tuple.
    maps: dict[int, I64] = {}

    def plan_index(block: _Block) -> I64:
        m = maps.get(id(block.stations))
        if m is None:
            m = maps[id(block.stations)] = np.asarray([index.get(k, -1) for k in block.stations], dtype=np.int64)
        return m

    parts_b: list[I64] = []
    # Capable and mask-hidden (target, station) pairs: targets and (block) stations, filtered once at the end.
    pair_t: dict[str, list[I64]] = {"capable": [], "below": []}
    pair_s: dict[str, list[I64]] = {"capable": [], "below": []}
    n_st = max(1, len(stations))
    # Per (target, block) only what cannot wait: the station numbers; shifts and filters run once on the whole.
    for (rq, _), key in zip(targets, keys, strict=True):
        for i, found in enumerate(blocks):
            block = found[key]
            m = plan_index(block)
            n = len(block.station)
            parts_t.append(np.full(n, rq, dtype=np.int64))
            parts_b.append(np.full(n, i, dtype=np.int64))
            parts_s.append(m[block.station])
            for name in _COLS:
                parts_c[name].append(block.cols[name])
            for kind, st in (("capable", block.capable), ("below", block.below)):
                pair_t[kind].append(np.full(len(st), rq, dtype=np.int64))
                pair_s[kind].append(m[st])
    target = np.concatenate(parts_t) if parts_t else np.zeros(0, dtype=np.int64)
    station = np.concatenate(parts_s) if parts_s else np.zeros(0, dtype=np.int64)
    shift = offset0 + (np.concatenate(parts_b) if parts_b else np.zeros(0, dtype=np.int64)) * BLOCK_S
    del parts_t, parts_s, parts_b
    cols: dict[str, F64] = {}
    for name in _COLS:
        p = parts_c.pop(name)
        c = np.concatenate(p).astype(np.float64) if p else np.zeros(0)
        cols[name] = c + shift if name in ("start_s", "end_s", "tca_s") else c
    del shift
    rows = station >= 0  # a station no longer in the plan (its rows dropped when the block is next extended)
    if not rows.all():
        target, station = target[rows], station[rows]
        cols = {name: c[rows] for name, c in cols.items()}
    # The pairs as sets (marks in a target x station grid: no sort).
    n_req = max(rq for rq, _ in targets) + 1
    marks: dict[str, NDArray[np.bool_]] = {}
    for kind in ("capable", "below"):
        grid = np.zeros(n_req * n_st, dtype=bool)
        if pair_t[kind]:
            t, st = np.concatenate(pair_t[kind]), np.concatenate(pair_s[kind])
            ok = st >= 0
            grid[t[ok] * n_st + st[ok]] = True
        marks[kind] = grid

    # Join a pass clipped at a block's end with the one that starts at that boundary (chains: a geostationary
    # satellite is one pass over the whole window).
    # One sort key, (target, station, start): cheaper than a lexsort of the three.
    span = (len(blocks) + 1) * BLOCK_S
    order = np.argsort((target * n_st + station) * span + (cols["start_s"] - offset0), kind="stable")
    target, station = target[order], station[order]
    cols = {name: c[order] for name, c in cols.items()}
    start, end = cols["start_s"], cols["end_s"]
    rel = (start - offset0) / BLOCK_S
    at_boundary = np.abs(rel - np.round(rel)) * BLOCK_S < _JOIN_TOL_S
    joins = np.zeros(len(start), dtype=bool)
    if len(start) > 1:
        joins[1:] = (
            (target[1:] == target[:-1])
            & (station[1:] == station[:-1])
            & at_boundary[1:]
            & (np.abs(start[1:] - end[:-1]) < _JOIN_TOL_S)
        )
    group = np.cumsum(~joins) - 1
    heads = np.flatnonzero(~joins)
    if len(heads):
        tails = np.r_[heads[1:], len(start)] - 1
        # The culmination of a joined pass: its first part with the highest maximum elevation.
        max_el = cols["max_elevation_deg"]
        top = np.flatnonzero(max_el == np.maximum.reduceat(max_el, heads)[group])
        peak = top[np.r_[0, np.flatnonzero(np.diff(group[top])) + 1]]
        target, station = target[heads], station[heads]
        cols = {
            "start_s": start[heads],
            "end_s": end[tails],
            "tca_s": cols["tca_s"][peak],
            "max_elevation_deg": cols["max_elevation_deg"][peak],
            "az0": cols["az0"][heads],
            "el0": cols["el0"][heads],
            "az1": cols["az1"][tails],
            "el1": cols["el1"][tails],
            "az_mid": cols["az_mid"][peak],
        }
    inside = (cols["end_s"] > 0.0) & (cols["start_s"] < duration) & usable[station]
    target, station = target[inside], station[inside]
    cols = {name: c[inside] for name, c in cols.items()}
    cols["start_s"] = np.maximum(cols["start_s"], 0.0)
    cols["end_s"] = np.minimum(cols["end_s"], duration)
    cols["tca_s"] = np.clip(cols["tca_s"], cols["start_s"], cols["end_s"])

    # Pairs without a pass in the window: their station offline or closed, else hidden by the mask (in any block) or
    # never visible, as the blocks found.
    pairs = np.flatnonzero(marks["capable"])
    # No capable station in the plan (the band): as `satellite_windows` says it, counting every station.
    has_capable: NDArray[np.bool_] = np.asarray(marks["capable"].reshape(n_req, n_st).any(axis=1))
    for rq, _ in targets:
        if not has_capable[rq]:
            log.add(rq, ReasonCode.NO_CAPABLE_STATION, "", len(stations))
    with_pass = np.zeros(n_req * n_st, dtype=bool)
    with_pass[target * n_st + station] = True
    lonely = pairs[~with_pass[pairs]]
    hidden = marks["below"][lonely]
    for pair, masked in zip(lonely.tolist(), hidden.tolist(), strict=True):
        st = stations[pair % n_st]
        if not st.state.schedulable:
            code = ReasonCode.STATION_OFFLINE
        elif not usable[pair % n_st]:
            code = ReasonCode.WEATHER
        else:
            code = ReasonCode.BELOW_HORIZON_MASK if masked else ReasonCode.NEVER_VISIBLE
        log.add(pair // n_st, code, st.station_id)

    start, end = cols["start_s"], cols["end_s"]
    keep = np.ones(len(start), dtype=bool)
    short = end - start < min_pass_s
    keep &= ~short
    busy = keep & subtract_unavailable(start, end, station, unavailable_s) if unavailable_s else np.zeros_like(keep)
    keep &= ~busy
    for code, which in ((ReasonCode.TOO_SHORT, short), (ReasonCode.STATION_UNAVAILABLE, busy)):
        for r, s in zip(target[which].tolist(), station[which].tolist(), strict=True):
            log.add(r, code, stations[s].station_id)
    if keep.any():
        out.extend(target=target[keep], station=station[keep], **{name: c[keep] for name, c in cols.items()})
