"""Satellite passes reused across plans: a bounded cache in front of `visibility.satellite_windows`.

Successive plans of one day share almost all their passes: the horizon slides by the minutes between replans and
the element sets and stations rarely change. Passes are computed per block of `BLOCK_S` seconds aligned to UTC
(whole blocks, so the next plan finds them whatever its start) and kept per (stations, satellite element set,
block, grid step); a plan computes only the blocks and satellites it does not find: the new tail of the horizon,
and every block for a satellite whose elements (or band, minimum elevation) changed. Blocks are computed as if
every station were online and open; a station going offline or closing for weather filters the joined windows
(with the same reasons) and reuses the blocks. A change to the stations' geometry, masks, bands or minimum
elevation makes a new station key: every pass is computed again.

A plan's windows are the blocks' passes joined where a pass runs across a block boundary, then clipped to the plan
window; the minimum pass length and the stations' unavailability are applied after joining, as
`satellite_windows` applies them, with the same reasons. Every plan goes through the blocks, cached or not, so a
plan is the same with and without the cache (`VisibilityCache(0)` caches nothing). Against one
`satellite_windows` call over the plan window the windows agree to the refinement's tolerance, except that a pass
clipped by the plan window keeps the azimuth of its real AOS / LOS (outside the window) as its end azimuth, and a
(satellite, station) pair whose only passes lie outside the window is explained NEVER_VISIBLE unless a block found
it BELOW_HORIZON_MASK.

Memory is bounded: least recently used blocks are dropped past `max_bytes` (the service's
`--visibility-cache-mb`). Thread-safe: the service may plan on several threads.

Imports: numpy, `skymesh.core`, the scheduler's visibility and reasons; never grpc.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from skymesh.core.model import SatelliteTarget, Station, StationState, TimeWindow, Weather
from skymesh.scheduler.reasons import FilterLog, ReasonCode
from skymesh.scheduler.visibility import Windows, satellite_windows, subtract_unavailable

__all__ = ["BLOCK_S", "VisibilityCache"]

# Block length: a replan a few minutes later finds every block but (at most) the last; the first plan computes up
# to one block more than its horizon (4 h on 24 h), and a replan that enters a new block computes a sixth of a day.
BLOCK_S = 14400.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COLS = ("start_s", "end_s", "tca_s", "max_elevation_deg", "az0", "el0", "az1", "el1", "az_mid")
_JOIN_TOL_S = 1e-3  # a pass clipped at a block boundary ends (starts) there to float precision
_PAIR_CODES = (ReasonCode.NEVER_VISIBLE, ReasonCode.BELOW_HORIZON_MASK)

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
I32 = NDArray[np.int32]


@dataclass(frozen=True)
class _Block:
    """One satellite's passes over every station in one block; times in seconds from the block start."""

    station: I64
    cols: dict[str, F64]
    reasons: tuple[tuple[ReasonCode, str, int], ...]  # those that do not depend on time (offline, weather, ...)
    capable: I32  # stations that could see it (a pass, or none: never visible / below the mask in this block)
    below: I32  # stations where the mask hid it in this block

    @property
    def nbytes(self) -> int:
        arrays = self.station.nbytes + self.capable.nbytes + self.below.nbytes
        return int(arrays + sum(c.nbytes for c in self.cols.values()) + 64 * len(self.reasons) + 512)


def _stations_key(stations: Sequence[Station]) -> str:
    """What `satellite_windows` reads of the stations, less what is applied after the blocks (unavailability, and
    whether each is schedulable and open: blocks are computed as if all were)."""
    parts = [
        (
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
        for s in stations
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _sat_key(t: SatelliteTarget) -> tuple[str, str, str, str, float]:
    return t.tle_line1, t.tle_line2, t.name, t.band.upper(), float(t.min_elevation_deg)


class VisibilityCache:
    """Per-block satellite passes, least recently used dropped past `max_bytes` (0: nothing kept)."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._blocks: OrderedDict[tuple[str, tuple[str, str, str, str, float], int, float], _Block] = OrderedDict()
        self.nbytes = 0
        self.hits = 0  # (satellite, block) pairs found
        self.misses = 0  # (satellite, block) pairs computed

    def __len__(self) -> int:
        return len(self._blocks)

    def clear(self) -> None:
        with self._lock:
            self._blocks.clear()
            self.nbytes = 0

    def _get(self, key: tuple[str, tuple[str, str, str, str, float], int, float]) -> _Block | None:
        with self._lock:
            block = self._blocks.get(key)
            if block is not None:
                self._blocks.move_to_end(key)
            return block

    def _put(self, key: tuple[str, tuple[str, str, str, str, float], int, float], block: _Block) -> None:
        size = block.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._blocks.pop(key, None)
            if old is not None:
                self.nbytes -= old.nbytes
            self._blocks[key] = block
            self.nbytes += size
            while self.nbytes > self.max_bytes:
                _, dropped = self._blocks.popitem(last=False)
                self.nbytes -= dropped.nbytes

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
        # Blocks are computed with every station online and open: a station going offline, closing for weather or
        # coming back (a dropped stream, a storm) filters the joined windows instead of making every block anew.
        usable = np.asarray([s.state.schedulable and s.weather.allows(s.kind) for s in stations], dtype=bool)
        geometry = [
            s
            if s.state == StationState.ONLINE and s.weather == Weather.UNSPECIFIED
            else replace(s, state=StationState.ONLINE, weather=Weather.UNSPECIFIED)
            for s in stations
        ]
        # Keyed in station id order, whatever the caller's: a plan lists its disconnected stations last, so a drop
        # reorders the list. `perm` maps a block's station index back to the caller's.
        perm = np.asarray(sorted(range(len(stations)), key=lambda i: stations[i].station_id), dtype=np.int64)
        geometry = [geometry[i] for i in perm.tolist()]
        st_key = _stations_key(geometry)
        keys = [_sat_key(t) for _, t in targets]
        first = math.floor((window.start - _EPOCH).total_seconds() / BLOCK_S)
        last = math.ceil((window.end - _EPOCH).total_seconds() / BLOCK_S)
        blocks: list[dict[tuple[str, str, str, str, float], _Block]] = []
        for b in range(first, last):
            found: dict[tuple[str, str, str, str, float], _Block] = {}
            todo: dict[tuple[str, str, str, str, float], tuple[int, SatelliteTarget]] = {}
            for k, key in enumerate(keys):
                if key in found or key in todo:
                    continue
                hit = self._get((st_key, key, b, step_s))
                if hit is not None:
                    found[key] = hit
                else:
                    todo[key] = targets[k]
            self.hits += len(found)
            self.misses += len(todo)
            if todo:
                computed = _compute_block(geometry, list(todo.items()), b, step_s)
                for key, block in computed.items():
                    self._put((st_key, key, b, step_s), block)
                found.update(computed)
            blocks.append(found)
        _assemble(out, stations, perm, usable, targets, keys, blocks, first, window, log, min_pass_s, unavailable_s)
        return out


def _compute_block(
    stations: Sequence[Station],
    todo: list[tuple[tuple[str, str, str, str, float], tuple[int, SatelliteTarget]]],
    b: int,
    step_s: float,
) -> dict[tuple[str, str, str, str, float], _Block]:
    """One `satellite_windows` call over block `b` for the satellites not found, split per satellite."""
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
    station = win.column("station", np.int64).astype(np.int64)[order]
    cols = {name: win.column(name).astype(np.float64)[order] for name in _COLS}
    station_index = {s.station_id: i for i, s in enumerate(stations)}
    out: dict[tuple[str, str, str, str, float], _Block] = {}
    for key, (rq, _) in todo:
        lo, hi = np.searchsorted(target, [rq, rq + 1])
        reasons: list[tuple[ReasonCode, str, int]] = []
        missing: list[int] = []
        below: list[int] = []
        for (code, sid), n in block_log.for_target(rq).items():
            if code in _PAIR_CODES:
                missing.append(station_index[sid])
                if code == ReasonCode.BELOW_HORIZON_MASK:
                    below.append(station_index[sid])
            else:
                reasons.append((code, sid, n))
        capable = np.union1d(station[lo:hi], np.asarray(missing, dtype=np.int64)).astype(np.int32)
        out[key] = _Block(
            station[lo:hi].copy(),
            {name: c[lo:hi].copy() for name, c in cols.items()},
            tuple(reasons),
            capable,
            np.asarray(below, dtype=np.int32),
        )
    return out


def _assemble(
    out: Windows,
    stations: Sequence[Station],
    perm: I64,
    usable: NDArray[np.bool_],
    targets: Sequence[tuple[int, SatelliteTarget]],
    keys: Sequence[tuple[str, str, str, str, float]],
    blocks: list[dict[tuple[str, str, str, str, float], _Block]],
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
    parts_c: dict[str, list[F64]] = {name: [] for name in _COLS}
    for (rq, _), key in zip(targets, keys, strict=True):
        for i, found in enumerate(blocks):
            block = found[key]
            shift = offset0 + i * BLOCK_S
            parts_t.append(np.full(len(block.station), rq, dtype=np.int64))
            parts_s.append(perm[block.station])
            for name in _COLS:
                c = block.cols[name]
                parts_c[name].append(c + shift if name in ("start_s", "end_s", "tca_s") else c)
        # Reasons that do not depend on time (no capable station, offline, weather) are the same in every block.
        for code, sid, n in blocks[0][key].reasons if blocks else ():
            if code not in _PAIR_CODES:
                log.add(rq, code, sid, n)
    target = np.concatenate(parts_t) if parts_t else np.zeros(0, dtype=np.int64)
    station = np.concatenate(parts_s) if parts_s else np.zeros(0, dtype=np.int64)
    cols = {name: (np.concatenate(p) if p else np.zeros(0)) for name, p in parts_c.items()}

    # Join a pass clipped at a block's end with the one that starts at that boundary (chains: a geostationary
    # satellite is one pass over the whole window).
    # One sort key, (target, station, start): cheaper than a lexsort of the three.
    n_st = max(1, len(stations))
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
    capable_parts: list[I64] = []
    below_parts: list[I64] = []
    for (rq, _), key in zip(targets, keys, strict=True):
        for found in blocks:
            capable_parts.append(rq * n_st + perm[found[key].capable])
            below_parts.append(rq * n_st + perm[found[key].below])
    pairs = np.unique(np.concatenate(capable_parts)) if capable_parts else np.zeros(0, dtype=np.int64)
    below_pairs = np.unique(np.concatenate(below_parts)) if below_parts else np.zeros(0, dtype=np.int64)
    lonely = pairs[~np.isin(pairs, target * n_st + station)]
    hidden = np.isin(lonely, below_pairs)
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
