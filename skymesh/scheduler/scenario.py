"""Scenario files (JSON or YAML) for `skymesh plan` and the benchmarks, and the seeded TALOS workload generator.

A scenario is one `PlanRequest` written out by hand or by `generate_talos`: a window, stations, targets with their
demand, frozen jobs and the mapping options. The same arguments always give the same file (seeded numpy RNG and
`skymesh.astro.tle_gen`), so a benchmark number can be reproduced from its command line.

Imports: numpy, pyyaml, `skymesh.core`, `skymesh.astro.tle_gen`, the scheduler's inputs; never grpc.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from skymesh.core.errors import InvalidArgument
from skymesh.core.model import (
    CelestialTarget,
    GeoLocation,
    HorizonMask,
    SatelliteTarget,
    Station,
    StationKind,
    StationState,
    TimeWindow,
)
from skymesh.core.rotator import AxisLimits, RotatorModel
from skymesh.scheduler.inputs import Demand, FrozenJob, MappingOptions, PlanRequest, PlanTarget, SolverKind

__all__ = ["LEO_MIX", "generate_talos", "load_scenario", "request_from_dict", "request_to_dict", "save_scenario"]

# Orbit families of the generated fleet and their shares (skymesh.astro.tle_gen families).
LEO_MIX: Mapping[str, float] = {"sso": 0.4, "iss": 0.15, "starlink": 0.15, "polar": 0.15, "cubesat": 0.15}


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_ts(text: str, field: str) -> datetime:
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidArgument(f"not an ISO 8601 time: {text!r}", field=field) from exc
    if value.tzinfo is None:
        raise InvalidArgument("must carry a time zone (e.g. Z)", field=field)
    return value.astimezone(UTC)


def _window(d: Mapping[str, Any], field: str) -> TimeWindow:
    try:
        return TimeWindow(_parse_ts(d["start"], f"{field}.start"), _parse_ts(d["end"], f"{field}.end"))
    except KeyError as exc:
        raise InvalidArgument(f"missing {exc}", field=field) from exc
    except InvalidArgument as exc:
        if exc.field in ("start", "end"):
            exc.field = f"{field}.{exc.field}"
        raise


def _window_dict(w: TimeWindow) -> dict[str, str]:
    return {"start": _ts(w.start), "end": _ts(w.end)}


def _station_dict(s: Station) -> dict[str, Any]:
    d: dict[str, Any] = {
        "station_id": s.station_id,
        "name": s.name,
        "kind": s.kind.name.lower(),
        "latitude_deg": s.location.latitude_deg,
        "longitude_deg": s.location.longitude_deg,
        "altitude_m": s.location.altitude_m,
        "min_elevation_deg": s.min_elevation_deg,
        "slew_rate_deg_s": s.slew_rate_deg_s,
        "state": s.state.name.lower(),
    }
    if s.bands:
        d["bands"] = list(s.bands)
    if s.kind == StationKind.TELESCOPE:
        d.update(aperture_m=s.aperture_m, filters=list(s.filters), limiting_magnitude=s.limiting_magnitude)
    if s.horizon_mask.azimuth_deg:
        d["horizon_mask"] = {
            "azimuth_deg": list(s.horizon_mask.azimuth_deg),
            "min_elevation_deg": list(s.horizon_mask.min_elevation_deg),
        }
    if s.unavailable:
        d["unavailable"] = [_window_dict(w) for w in s.unavailable]
    if s.rotator is not None:
        d["rotator"] = {
            name: {
                "min_deg": a.min_deg,
                "max_deg": a.max_deg,
                "rate_deg_s": a.rate_deg_s,
                "accel_deg_s2": a.accel_deg_s2,
            }
            for name, a in (("azimuth", s.rotator.azimuth), ("elevation", s.rotator.elevation))
        }
    return d


def _rotator(d: Mapping[str, Any] | None) -> RotatorModel | None:
    if not d:
        return None
    axes = [
        AxisLimits(
            float(d[name]["min_deg"]),
            float(d[name]["max_deg"]),
            float(d[name]["rate_deg_s"]),
            float(d[name].get("accel_deg_s2", 0.0)),
        )
        for name in ("azimuth", "elevation")
    ]
    return RotatorModel(azimuth=axes[0], elevation=axes[1])


def _station(d: Mapping[str, Any], field: str) -> Station:
    try:
        mask = d.get("horizon_mask") or {}
        return Station(
            station_id=str(d["station_id"]),
            name=str(d.get("name", d["station_id"])),
            kind=StationKind[str(d.get("kind", "ground_station")).upper()],
            location=GeoLocation(float(d["latitude_deg"]), float(d["longitude_deg"]), float(d.get("altitude_m", 0.0))),
            min_elevation_deg=float(d.get("min_elevation_deg", 10.0)),
            horizon_mask=HorizonMask(
                tuple(float(a) for a in mask.get("azimuth_deg", ())),
                tuple(float(e) for e in mask.get("min_elevation_deg", ())),
            ),
            bands=tuple(d.get("bands", ())),
            slew_rate_deg_s=float(d.get("slew_rate_deg_s", 5.0)),
            aperture_m=float(d.get("aperture_m", 0.0)),
            filters=tuple(d.get("filters", ())),
            limiting_magnitude=float(d.get("limiting_magnitude", 0.0)),
            state=StationState[str(d.get("state", "online")).upper()],
            unavailable=tuple(_window(w, f"{field}.unavailable[{i}]") for i, w in enumerate(d.get("unavailable", ()))),
            rotator=_rotator(d.get("rotator")),
        )
    except KeyError as exc:
        raise InvalidArgument(f"missing or unknown value {exc}", field=field) from exc
    except InvalidArgument as exc:
        exc.field = f"{field}.{exc.field}" if exc.field else field
        raise


def _target_dict(pt: PlanTarget) -> dict[str, Any]:
    t = pt.target
    d: dict[str, Any] = {"target_id": t.target_id, "name": t.name, "priority": t.priority}
    if pt.campaign_id:
        d["campaign_id"] = pt.campaign_id
    if isinstance(t, SatelliteTarget):
        d["satellite"] = {
            "norad_id": t.norad_id,
            "tle_line1": t.tle_line1,
            "tle_line2": t.tle_line2,
            "band": t.band,
            "min_elevation_deg": t.min_elevation_deg,
        }
    else:
        d["celestial"] = {
            "ra_deg": t.ra_deg,
            "dec_deg": t.dec_deg,
            "magnitude": t.magnitude,
            "filters": list(t.filters),
            "exposure_s": t.exposure_s,
            "exposure_count": t.exposure_count,
            "max_airmass": t.max_airmass,
            "min_moon_separation_deg": t.min_moon_separation_deg,
            "cadence_s": t.cadence_s,
        }
    dem = pt.demand
    if dem != Demand():
        default = asdict(Demand())
        dd = {k: v for k, v in asdict(dem).items() if v != default[k]}
        if dem.time_critical:
            dd["time_critical"] = [_window_dict(w) for w in dem.time_critical]
        d["demand"] = dd
    return d


def _target(d: Mapping[str, Any], field: str) -> PlanTarget:
    try:
        tid = str(d["target_id"])
        name = str(d.get("name", tid))
        prio = int(d.get("priority", 5))
        if not 1 <= prio <= 10:
            raise InvalidArgument("must be within [1, 10]", field="priority")
        target: SatelliteTarget | CelestialTarget
        if "satellite" in d:
            s = d["satellite"]
            target = SatelliteTarget(
                tid,
                name,
                int(s.get("norad_id", 0)),
                str(s["tle_line1"]),
                str(s["tle_line2"]),
                band=str(s.get("band", "")),
                priority=prio,
                min_elevation_deg=float(s.get("min_elevation_deg", 0.0)),
            )
        elif "celestial" in d:
            c = d["celestial"]
            target = CelestialTarget(
                tid,
                name,
                float(c["ra_deg"]),
                float(c["dec_deg"]),
                magnitude=float(c.get("magnitude", 10.0)),
                priority=prio,
                filters=tuple(c.get("filters", ())),
                exposure_s=float(c.get("exposure_s", 60.0)),
                exposure_count=int(c.get("exposure_count", 1)),
                max_airmass=float(c.get("max_airmass", 2.0)),
                min_moon_separation_deg=float(c.get("min_moon_separation_deg", 20.0)),
                cadence_s=float(c.get("cadence_s", 0.0)),
            )
        else:
            raise InvalidArgument("must have a satellite or a celestial section", field="kind")
        dem = dict(d.get("demand") or {})
        tc = tuple(_window(w, f"demand.time_critical[{i}]") for i, w in enumerate(dem.pop("time_critical", ())))
        return PlanTarget(target, Demand(time_critical=tc, **dem), str(d.get("campaign_id", "")))
    except KeyError as exc:
        raise InvalidArgument(f"missing {exc}", field=field) from exc
    except TypeError as exc:
        raise InvalidArgument(str(exc), field=field) from exc
    except InvalidArgument as exc:
        exc.field = f"{field}.{exc.field}" if exc.field else field
        raise


def request_to_dict(req: PlanRequest, name: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "window": _window_dict(req.window),
        "turnaround_s": req.turnaround_s,
        "solver": req.solver.value,
        "time_limit_s": req.time_limit_s,
        "options": asdict(req.options),
        "stations": [_station_dict(s) for s in req.stations],
        "targets": [_target_dict(t) for t in req.targets],
        "frozen": [
            {
                "job_id": f.job_id,
                "station_id": f.station_id,
                "target_id": f.target_id,
                "window": _window_dict(f.window),
                "preemptible": f.preemptible,
            }
            for f in req.frozen
        ],
    }


def request_from_dict(d: Mapping[str, Any]) -> PlanRequest:
    if "window" not in d:
        raise InvalidArgument("is required", field="window")
    try:
        options = MappingOptions(**dict(d.get("options") or {}))
    except TypeError as exc:
        raise InvalidArgument(str(exc), field="options") from exc
    return PlanRequest(
        window=_window(d["window"], "window"),
        stations=[_station(s, f"stations[{i}]") for i, s in enumerate(d.get("stations", ()))],
        targets=[_target(t, f"targets[{i}]") for i, t in enumerate(d.get("targets", ()))],
        frozen=[
            FrozenJob(
                str(f["job_id"]),
                str(f["station_id"]),
                str(f["target_id"]),
                _window(f["window"], f"frozen[{i}].window"),
                bool(f.get("preemptible", False)),
            )
            for i, f in enumerate(d.get("frozen", ()))
        ],
        solver=SolverKind(str(d.get("solver", "greedy"))),
        time_limit_s=float(d.get("time_limit_s", 10.0)),
        turnaround_s=float(d.get("turnaround_s", 60.0)),
        request_id=str(d.get("name", "")),
        options=options,
    )


def load_scenario(path: str | Path) -> PlanRequest:
    p = Path(path)
    text = p.read_text()
    if p.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise InvalidArgument("a scenario file holds one mapping", field=str(p))
    return request_from_dict(data)


def save_scenario(req: PlanRequest, path: str | Path, name: str = "") -> None:
    p = Path(path)
    data = request_to_dict(req, name)
    if p.suffix in (".yaml", ".yml"):
        import yaml

        p.write_text(yaml.safe_dump(data, sort_keys=False))
    else:
        p.write_text(json.dumps(data, indent=1) + "\n")


def generate_talos(
    *,
    stations: int = 50,
    satellites: int = 200,
    hours: float = 24.0,
    seed: int = 1,
    start: datetime | None = None,
    turnaround_s: float = 60.0,
    period_s: float = 7200.0,
    min_pass_s: float = 120.0,
) -> PlanRequest:
    """The TALOS workload: ground stations over the globe, LEO satellites of real orbit families, priorities 1-10,
    60 s turnaround, at most one contact per satellite per `period_s` (anchored at the window start)."""
    from skymesh.astro.tle_gen import generate_tles

    if stations < 1 or satellites < 1 or not hours > 0:
        raise InvalidArgument("stations, satellites and hours must be positive", field="generate")
    rng = np.random.default_rng(seed)
    t0 = start or datetime(2026, 1, 1, tzinfo=UTC)
    window = TimeWindow(t0, t0 + timedelta(hours=hours))
    # Mid-northern latitudes heavy (where most amateur and university stations are), some southern and polar.
    bands = rng.choice(4, size=stations, p=[0.6, 0.2, 0.1, 0.1])
    lat_lo = np.asarray([30.0, -45.0, 60.0, -10.0])[bands]
    lat_hi = np.asarray([60.0, -10.0, 78.0, 30.0])[bands]
    lat = rng.uniform(lat_lo, lat_hi)
    lon = rng.uniform(-180.0, 180.0, size=stations)
    sts = [
        Station(
            station_id=f"gs-{i:04d}",
            name=f"GS {i:04d}",
            kind=StationKind.GROUND_STATION,
            location=GeoLocation(
                round(float(lat[i]), 4), round(float(lon[i]), 4), round(float(rng.uniform(0, 1500)), 1)
            ),
            min_elevation_deg=10.0,
            bands=("VHF", "UHF", "S"),
            slew_rate_deg_s=5.0,
            state=StationState.ONLINE,
        )
        for i in range(stations)
    ]
    families = list(LEO_MIX)
    counts = rng.multinomial(satellites, list(LEO_MIX.values()))
    tles = []
    for fam, n in zip(families, counts.tolist(), strict=True):
        tles += generate_tles(fam, int(n), t0 - timedelta(hours=6), seed=seed * 1000 + families.index(fam))
    prio = rng.integers(1, 11, size=len(tles))
    band = rng.choice(["UHF", "S", "VHF"], size=len(tles), p=[0.6, 0.3, 0.1])
    targets = [
        PlanTarget(
            SatelliteTarget(
                target_id=f"sat-{t.norad_id}",
                name=t.name,
                norad_id=t.norad_id,
                tle_line1=t.lines()[0],
                tle_line2=t.lines()[1],
                band=str(band[k]),
                priority=int(prio[k]),
            ),
            Demand(max_per_period=1, period_s=period_s),
        )
        for k, t in enumerate(tles)
    ]
    return PlanRequest(
        window=window,
        stations=sts,
        targets=targets,
        turnaround_s=turnaround_s,
        request_id=f"talos-{stations}x{satellites}-{hours:g}h-s{seed}",
        options=MappingOptions(min_pass_s=min_pass_s),
    )
