"""Visibility windows of targets from stations, with a reason for every window or station thrown away.

Satellites: `skymesh.astro.passes.find_passes` over the ground stations that carry the satellite's band, with each
station's minimum elevation raised to the target's and its horizon mask applied; a second, mask-free search over the
masked stations tells BELOW_HORIZON_MASK apart from NEVER_VISIBLE. Celestial targets: see `skymesh.scheduler.sky`.

Windows are in seconds from the plan start. Imports: numpy, `skymesh.astro`, `skymesh.core` and the scheduler's
reason codes; never grpc or protobuf.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from skymesh.astro.frames import SECONDS_PER_DAY, datetime_to_jd
from skymesh.astro.passes import HorizonMask as AstroMask
from skymesh.astro.passes import find_passes
from skymesh.astro.propagate import SatelliteBatch
from skymesh.core.errors import SkyMeshError
from skymesh.core.model import SatelliteTarget, Station, StationKind, TimeWindow
from skymesh.scheduler.elements import cached_satrec, cached_tle
from skymesh.scheduler.reasons import FilterLog, ReasonCode

__all__ = ["Windows", "satellite_can_use", "satellite_windows", "subtract_unavailable"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass
class Windows:
    """Candidate windows as columns; `target` and `station` index the caller's lists."""

    target: list[I64] = field(default_factory=list)
    station: list[I64] = field(default_factory=list)
    start_s: list[F64] = field(default_factory=list)
    end_s: list[F64] = field(default_factory=list)
    tca_s: list[F64] = field(default_factory=list)
    max_elevation_deg: list[F64] = field(default_factory=list)
    az0: list[F64] = field(default_factory=list)
    el0: list[F64] = field(default_factory=list)
    az1: list[F64] = field(default_factory=list)
    el1: list[F64] = field(default_factory=list)
    # Azimuth at the culmination (satellite passes; NaN where unknown): which way round the pass sweeps, for the
    # rotator's cable wrap (`skymesh.core.rotator.pass_wraps_both_ways`).
    az_mid: list[F64] = field(default_factory=list)
    filter_name: list[str] = field(default_factory=list)  # one per window (celestial), else empty

    def extend(self, **cols: F64 | I64) -> None:
        for name, values in cols.items():
            getattr(self, name).append(np.asarray(values))
        if "az_mid" not in cols:
            self.az_mid.append(np.full(len(cols["target"]), np.nan))

    def column(self, name: str, dtype: type = np.float64) -> NDArray[np.generic]:
        parts = getattr(self, name)
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    def __len__(self) -> int:
        return int(sum(len(p) for p in self.target))


def satellite_can_use(station: Station, target: SatelliteTarget) -> bool:
    """A ground station observes a satellite only if it lists the satellite's band (any band when none is set)."""
    if station.kind != StationKind.GROUND_STATION:
        return False
    return not target.band or target.band.upper() in {b.upper() for b in station.bands}


def _key(target: SatelliteTarget) -> tuple[str, str, str]:
    return target.tle_line1, target.tle_line2, target.name


def _capable(stations: Sequence[Station], targets: Sequence[SatelliteTarget]) -> NDArray[np.bool_]:
    """`satellite_can_use` for every (target, station) pair at once."""
    out = np.zeros((len(targets), len(stations)), dtype=bool)
    index: dict[str, list[int]] = {}
    any_band = []
    for j, st in enumerate(stations):
        if st.kind != StationKind.GROUND_STATION:
            continue
        any_band.append(j)
        for b in {b.upper() for b in st.bands}:
            index.setdefault(b, []).append(j)
    for k, t in enumerate(targets):
        cols = index.get(t.band.upper(), []) if t.band else any_band
        out[k, cols] = True
    return out


def subtract_unavailable(
    start_s: F64, end_s: F64, station: I64, unavailable: Sequence[Sequence[tuple[float, float]]]
) -> NDArray[np.bool_]:
    """Windows that overlap one of their station's unavailability windows (True = drop)."""
    drop = np.zeros(len(start_s), dtype=bool)
    for s, spans in enumerate(unavailable):
        if not spans:
            continue
        on = station == s
        for a, b in spans:
            drop |= on & (start_s < b) & (a < end_s)
    return drop


def _mask(station: Station) -> AstroMask | None:
    m = station.horizon_mask
    if not m.azimuth_deg:
        return None
    return AstroMask(tuple(m.azimuth_deg), tuple(m.min_elevation_deg))


def satellite_windows(
    stations: Sequence[Station],
    targets: Sequence[tuple[int, SatelliteTarget]],
    window: TimeWindow,
    log: FilterLog,
    *,
    step_s: float = 60.0,
    min_pass_s: float = 60.0,
    unavailable_s: Sequence[Sequence[tuple[float, float]]] = (),
) -> Windows:
    """Passes of `targets` (request index, target) over capable, schedulable ground stations not CLOSED by weather."""
    out = Windows()
    if not targets:
        return out
    jd0 = datetime_to_jd(window.start)
    tles = []
    for req_i, t in targets:
        try:
            tles.append(cached_tle(t.tle_line1, t.tle_line2, t.name))
        except SkyMeshError as exc:
            exc.field = f"targets[{req_i}].target.satellite.{exc.field or 'tle_line1'}"
            raise
    online = np.asarray([s.state.schedulable for s in stations], dtype=bool)
    open_ = np.asarray([s.weather.allows(s.kind) for s in stations], dtype=bool)
    capable = _capable(stations, [t for _, t in targets])  # (targets, stations)
    # Group satellites by their own minimum elevation: find_passes takes one threshold per station.
    by_min: dict[float, list[int]] = {}
    for k, (rq, t) in enumerate(targets):
        usable_at = capable[k].tolist()
        if not any(usable_at):
            log.add(rq, ReasonCode.NO_CAPABLE_STATION, "", len(stations))
            continue
        for s, ok in enumerate(usable_at):
            if ok and not online[s]:
                log.add(rq, ReasonCode.STATION_OFFLINE, stations[s].station_id)
            elif ok and not open_[s]:
                log.add(rq, ReasonCode.WEATHER, stations[s].station_id)
        if not any(ok and online[s] and open_[s] for s, ok in enumerate(usable_at)):
            continue
        by_min.setdefault(t.min_elevation_deg, []).append(k)

    gs = [i for i, s in enumerate(stations) if s.kind == StationKind.GROUND_STATION and online[i] and open_[i]]
    if not gs:
        return out
    lat = np.asarray([stations[i].location.latitude_deg for i in gs])
    lon = np.asarray([stations[i].location.longitude_deg for i in gs])
    alt = np.asarray([stations[i].location.altitude_m for i in gs])
    masks = [_mask(stations[i]) for i in gs]
    masked = [j for j, m in enumerate(masks) if m is not None]
    gs_arr = np.asarray(gs, dtype=np.int64)
    for target_min, ks in by_min.items():
        batch = SatelliteBatch([tles[k] for k in ks], satrecs=[cached_satrec(*_key(targets[k][1])) for k in ks])
        min_el = np.maximum(np.asarray([stations[i].min_elevation_deg for i in gs]), target_min)
        table = find_passes(
            batch,
            lat,
            lon,
            alt,
            window.start,
            window.end,
            min_el,
            step_s=step_s,
            horizon_masks=masks if masked else None,
        )
        req_of = np.asarray([targets[k][0] for k in ks], dtype=np.int64)
        st_global = gs_arr[table.station_index]
        can = capable[np.asarray(ks, dtype=np.int64)][:, gs_arr]
        capable_pass = can[table.sat_index, table.station_index]
        start = (table.aos_jd - jd0) * SECONDS_PER_DAY
        end = (table.los_jd - jd0) * SECONDS_PER_DAY
        req = req_of[table.sat_index]
        keep = capable_pass.copy()
        short = keep & (end - start < min_pass_s)
        keep &= ~short
        busy = (
            keep & subtract_unavailable(start, end, st_global, unavailable_s) if unavailable_s else np.zeros_like(keep)
        )
        keep &= ~busy
        for code, which in ((ReasonCode.TOO_SHORT, short), (ReasonCode.STATION_UNAVAILABLE, busy)):
            for r, s in zip(req[which].tolist(), st_global[which].tolist(), strict=True):
                log.add(r, code, stations[s].station_id)
        # Capable stations with no pass at all: hidden by the mask, or never above the minimum elevation.
        free = _unmasked_passes(batch, stations, gs_arr, masked, min_el, window, step_s, req_of) if masked else set()
        # Capable (satellite, station) pairs without a pass: only these few need a Python loop.
        has_pass = np.zeros(can.shape, dtype=bool)
        has_pass[table.sat_index[capable_pass], table.station_index[capable_pass]] = True
        masked_set = set(masked)
        for k_local, j in zip(*np.nonzero(can & ~has_pass), strict=True):
            r, s = int(req_of[k_local]), int(gs[int(j)])
            hidden = (r, s) in free and int(j) in masked_set
            log.add(r, ReasonCode.BELOW_HORIZON_MASK if hidden else ReasonCode.NEVER_VISIBLE, stations[s].station_id)
        el_thr = min_el[table.station_index]
        out.extend(
            target=req[keep],
            station=st_global[keep],
            start_s=start[keep],
            end_s=end[keep],
            tca_s=((table.tca_jd - jd0) * SECONDS_PER_DAY)[keep],
            max_elevation_deg=table.max_elevation_deg[keep],
            az0=table.aos_azimuth_deg[keep],
            el0=el_thr[keep],
            az1=table.los_azimuth_deg[keep],
            el1=el_thr[keep],
            az_mid=table.tca_azimuth_deg[keep],
        )
    return out


def _unmasked_passes(
    batch: SatelliteBatch,
    stations: Sequence[Station],
    gs: I64,
    masked: list[int],
    min_el: F64,
    window: TimeWindow,
    step_s: float,
    req_of: I64,
) -> set[tuple[int, int]]:
    """(request, station) pairs that have a pass when the horizon masks are ignored (masked stations only)."""
    sub = np.asarray(masked, dtype=np.int64)
    st = [stations[int(gs[j])] for j in masked]
    table = find_passes(
        batch,
        [s.location.latitude_deg for s in st],
        [s.location.longitude_deg for s in st],
        [s.location.altitude_m for s in st],
        window.start,
        window.end,
        min_el[sub],
        step_s=step_s,
    )
    return set(zip(req_of[table.sat_index].tolist(), gs[sub[table.station_index]].tolist(), strict=True))
