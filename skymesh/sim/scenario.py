"""Scenario files: YAML in, a validated `Scenario` (and from it a `Simulation`) out.

A scenario names an epoch, a duration, orbits (a Walker pattern, Keplerian elements, state vectors or TLEs), the
spacecraft parameters (shared defaults plus per-spacecraft overrides), activities with their constraints, mode
rules, ground stations, optional inter-satellite links (`isl.pairs`) and optional relay satellites (`relays`, same
forms as `orbits`; link partners such as a GEO relay, not simulated spacecraft). See `examples/sim/*.yaml`.
Conditions are written `"soc > 0.2"` or `[soc, ">", 0.2]`; every field of `FleetState` can be used.

Every bad value raises `InvalidArgument` whose `field` is the dotted path of the offending key (for example
`spacecraft.thermal.mass_kg` or `activities[1].power_w`), and nothing is built from a half-valid file.

Imports numpy, PyYAML and sgp4 (through `orbit`); no service packages.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from skymesh.core.errors import InvalidArgument
from skymesh.sim.activities import (
    STATE_FIELDS,
    Activity,
    AllOf,
    AnyOf,
    Comparison,
    Condition,
    CustomProperty,
    FleetState,
    ModeRule,
)
from skymesh.sim.comms import GroundStation
from skymesh.sim.engine import EngineConfig, Simulation
from skymesh.sim.orbit import KeplerOrbits, Orbits, TLEOrbits, walker_constellation
from skymesh.sim.spacecraft import RadiationParams, SpacecraftParams, ThermalParams

__all__ = ["Scenario", "load_scenario", "parse_condition", "parse_scenario"]

F64 = NDArray[np.float64]

_TOP_KEYS = {
    "name", "description", "epoch", "duration_s", "step_s", "decision_step_s", "record_step_s", "tolerance_s",
    "seed", "orbits", "spacecraft", "activities", "modes", "stations", "isl", "earth_rotation_offset_s", "relays",
    "custom_properties",
}  # fmt: skip


def _constant_rate(rate_per_s: float, when: Condition | AnyOf | AllOf | None) -> Callable[[FleetState, F64, F64], F64]:
    def update(state: FleetState, values: F64, dt_s: F64) -> F64:
        grow = rate_per_s * dt_s if when is None else np.where(when(state), rate_per_s * dt_s, 0.0)
        return np.asarray(values + grow, dtype=np.float64)

    return update


def _custom_properties(raw: Any) -> list[CustomProperty]:
    """`custom_properties: [{name: dose, initial: 0, rate_per_s: 1e-3, when: "in_eclipse == 0"}]`: a quantity that
    grows at a constant rate (while `when` holds). Any other update is a Python function (`CustomProperty`)."""
    out = []
    for j, item in enumerate(_list(raw, "custom_properties")):
        path = f"custom_properties[{j}]"
        item = _mapping(item, path)
        _no_unknown(item, {"name", "initial", "rate_per_s", "when"}, path)
        name = str(_require(item, "name", path))
        rate = _number(item.get("rate_per_s", 0.0), f"{path}.rate_per_s")
        when = None if item.get("when") is None else parse_condition(item["when"], f"{path}.when")
        try:
            out.append(CustomProperty(name, _number(item.get("initial", 0.0), f"{path}.initial"),
                                      _constant_rate(rate, when) if rate != 0 else None))  # fmt: skip
        except InvalidArgument as exc:
            raise InvalidArgument(exc.message, field=f"{path}.name") from None
    return out


@dataclass(frozen=True)
class Scenario:
    name: str
    epoch: datetime
    duration_s: float
    simulation: Simulation


def _require(mapping: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in mapping:
        raise InvalidArgument("is required", field=f"{path}.{key}" if path else key)
    return mapping[key]


def _number(value: Any, field: str, *, minimum: float | None = None, maximum: float | None = None,
            strict_min: bool = False) -> float:  # fmt: skip
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # YAML 1.1 reads 2.0e9 (no sign in the exponent) as a string
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"must be a number, got {value!r}", field=field)
    x = float(value)
    if math.isnan(x):
        raise InvalidArgument("must not be NaN", field=field)
    if minimum is not None and (x < minimum or (strict_min and x == minimum)):
        raise InvalidArgument(f"must be {'>' if strict_min else '>='} {minimum}, got {x}", field=field)
    if maximum is not None and x > maximum:
        raise InvalidArgument(f"must be <= {maximum}, got {x}", field=field)
    return x


def _mapping(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"must be a mapping, got {type(value).__name__}", field=field)
    return value


def _list(value: Any, field: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise InvalidArgument(f"must be a list, got {type(value).__name__}", field=field)
    return value


def _no_unknown(mapping: Mapping[str, Any], allowed: set[str], path: str) -> None:
    for key in mapping:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise InvalidArgument(f"unknown key; allowed: {', '.join(sorted(allowed))}", field=where)


def parse_condition(value: Any, field: str) -> Condition | AnyOf | AllOf:
    """`"soc > 0.2"`, `[soc, ">", 0.2]`, a list of those (all must hold), or `{any_of: [...]}` / `{all_of: [...]}`
    whose items are any of these forms (nested freely). Fields: FleetState's, custom.NAME, contact.STATION."""
    if value is None:
        return Condition()
    if isinstance(value, Mapping):
        if len(value) != 1 or next(iter(value)) not in ("any_of", "all_of"):
            raise InvalidArgument("a mapping condition is {any_of: [...]} or {all_of: [...]}", field=field)
        key = next(iter(value))
        items_ = _list(value[key], f"{field}.{key}")
        if not items_:
            raise InvalidArgument("needs at least one condition", field=f"{field}.{key}")
        sub = tuple(parse_condition(item, f"{field}.{key}[{k}]") for k, item in enumerate(items_))
        return AnyOf(sub) if key == "any_of" else AllOf(sub)
    items = (
        [value]
        if isinstance(value, str)
        or (
            isinstance(value, list)
            and value
            and isinstance(value[0], str)
            and len(value) == 3
            and not isinstance(value[1], list)
        )
        else value
    )
    if not isinstance(items, list):
        raise InvalidArgument("must be a comparison like 'soc > 0.2' or a list of them", field=field)
    out: list[Comparison] = []
    nested: list[Condition | AnyOf | AllOf] = []
    for k, item in enumerate(items):
        where = f"{field}[{k}]"
        if isinstance(item, Mapping):
            nested.append(parse_condition(item, where))
            continue
        parts = item.split() if isinstance(item, str) else item
        if not isinstance(parts, list) or len(parts) != 3:
            raise InvalidArgument("a comparison is 'field op value'", field=where)
        name, op, raw = parts
        head, _, rest = str(name).partition(".")
        if name not in STATE_FIELDS and not (head in ("custom", "contact") and rest):
            raise InvalidArgument(f"unknown state field {name!r}; one of {', '.join(STATE_FIELDS)}, custom.NAME or "
                                  "contact.STATION", field=where)  # fmt: skip
        if isinstance(raw, str):
            lowered = raw.lower()
            raw = {"true": 1.0, "false": 0.0}.get(lowered, raw)
            try:
                raw = float(raw)
            except ValueError:
                raise InvalidArgument(f"comparison value {raw!r} is not a number", field=where) from None
        try:
            out.append(Comparison(str(name), str(op), _number(raw, where)))
        except InvalidArgument as exc:
            raise InvalidArgument(exc.message, field=where) from None
    return AllOf((Condition(tuple(out)), *nested)) if nested else Condition(tuple(out))


def _orbits(
    spec: Mapping[str, Any], epoch: datetime, base: Path, where: str = "orbits", default_frame: str = "j2000"
) -> Orbits:
    _no_unknown(spec, {"walker", "keplerian", "states", "tles", "tle_file", "frame"}, where)
    kinds = [k for k in ("walker", "keplerian", "states", "tles", "tle_file") if k in spec]
    if len(kinds) != 1:
        raise InvalidArgument("give exactly one of walker, keplerian, states, tles, tle_file", field=where)
    kind = kinds[0]
    frame = spec.get("frame", default_frame)
    if frame not in ("j2000", "teme"):
        raise InvalidArgument("must be j2000 or teme", field=f"{where}.frame")
    if kind == "walker":
        w = _mapping(spec["walker"], f"{where}.walker")
        _no_unknown(w, {"altitude_m", "inclination_deg", "planes", "sats_per_plane", "phasing", "argp_deg"},
                    f"{where}.walker")  # fmt: skip
        planes = int(_number(_require(w, "planes", f"{where}.walker"), f"{where}.walker.planes", minimum=1))
        per = int(
            _number(_require(w, "sats_per_plane", f"{where}.walker"), f"{where}.walker.sats_per_plane", minimum=1)
        )
        return walker_constellation(
            _number(_require(w, "altitude_m", f"{where}.walker"), f"{where}.walker.altitude_m", minimum=0),
            _number(_require(w, "inclination_deg", f"{where}.walker"), f"{where}.walker.inclination_deg", minimum=0,
                    maximum=180),
            planes, per, int(_number(w.get("phasing", 0), f"{where}.walker.phasing", minimum=0)),
            argp_deg=_number(w.get("argp_deg", 0.0), f"{where}.walker.argp_deg"),
        )  # fmt: skip
    if kind == "keplerian":
        rows = _list(spec["keplerian"], f"{where}.keplerian")
        cols: dict[str, list[float]] = {
            k: [] for k in ("a_m", "e", "i_deg", "raan_deg", "argp_deg", "mean_anomaly_deg")
        }
        for j, row in enumerate(rows):
            path = f"{where}.keplerian[{j}]"
            row = _mapping(row, path)
            _no_unknown(row, set(cols), path)
            for key in cols:
                cols[key].append(_number(_require(row, key, path), f"{path}.{key}"))
        arr = {k: np.array(v) for k, v in cols.items()}
        return KeplerOrbits(arr["a_m"], arr["e"], np.deg2rad(arr["i_deg"]), np.deg2rad(arr["raan_deg"]),
                            np.deg2rad(arr["argp_deg"]), np.deg2rad(arr["mean_anomaly_deg"]), frame=frame)  # fmt: skip
    if kind == "states":
        rows = _list(spec["states"], f"{where}.states")
        r: list[list[float]] = []
        v: list[list[float]] = []
        for j, row in enumerate(rows):
            path = f"{where}.states[{j}]"
            row = _mapping(row, path)
            _no_unknown(row, {"r_m", "v_m_s"}, path)
            for key, out in (("r_m", r), ("v_m_s", v)):
                vec = _list(_require(row, key, path), f"{path}.{key}")
                if len(vec) != 3:
                    raise InvalidArgument("must have 3 components", field=f"{path}.{key}")
                out.append([_number(x, f"{path}.{key}") for x in vec])
        return KeplerOrbits.from_state(np.array(r), np.array(v), frame=frame)
    if kind == "tles":
        rows = _list(spec["tles"], f"{where}.tles")
        pairs = []
        for j, row in enumerate(rows):
            if not (isinstance(row, list) and len(row) in (2, 3) and all(isinstance(x, str) for x in row)):
                raise InvalidArgument("each TLE is [line1, line2] or [name, line1, line2]", field=f"{where}.tles[{j}]")
            pairs.append((row[-2], row[-1]))
        return TLEOrbits(pairs, epoch)
    tle_path = Path(str(spec["tle_file"]))
    tle_path = tle_path if tle_path.is_absolute() else base / tle_path
    try:
        lines = [ln.rstrip() for ln in tle_path.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise InvalidArgument(f"cannot read {tle_path}: {exc.strerror}", field=f"{where}.tle_file") from None
    tle_pairs = [(lines[k], lines[k + 1]) for k in range(len(lines) - 1) if lines[k].startswith("1 ")
                 and lines[k + 1].startswith("2 ")]  # fmt: skip
    if not tle_pairs:
        raise InvalidArgument("no TLEs found", field=f"{where}.tle_file")
    return TLEOrbits(tle_pairs, epoch)


_SC_KEYS = {"battery_capacity_wh", "initial_soc", "charge_power_w", "rtg", "thermal", "storage_capacity_bytes",
            "initial_stored_bytes", "downlink_rate_bytes_per_s", "isl_rate_bytes_per_s", "radiation",
            "activity_power_w", "comm_devices", "name"}  # fmt: skip


def _spacecraft(spec: Mapping[str, Any], n: int, rng: np.random.Generator) -> list[SpacecraftParams]:
    defaults = dict(spec)
    overrides = _list(defaults.pop("overrides", []), "spacecraft.overrides")
    _no_unknown(defaults, _SC_KEYS, "spacecraft")
    out = []
    prefix = str(defaults.pop("name", "sat"))
    for k in range(n):
        merged = dict(defaults)
        merged["name"] = f"{prefix}-{k:03d}"
        for j, o in enumerate(overrides):
            o = _mapping(o, f"spacecraft.overrides[{j}]")
            if int(_number(_require(o, "index", f"spacecraft.overrides[{j}]"), "index")) == k:
                _no_unknown(o, _SC_KEYS | {"index"}, f"spacecraft.overrides[{j}]")
                merged.update({key: val for key, val in o.items() if key != "index"})
        out.append(_one_spacecraft(merged, k, rng))
    return out


def _value(raw: Any, field: str, rng: np.random.Generator, **limits: Any) -> float:
    """A number, or {uniform: [lo, hi]} drawn from the scenario's seeded generator."""
    if isinstance(raw, Mapping) and "uniform" in raw:
        bounds = _list(raw["uniform"], f"{field}.uniform")
        if len(bounds) != 2:
            raise InvalidArgument("uniform needs [low, high]", field=f"{field}.uniform")
        lo, hi = (_number(b, f"{field}.uniform", **limits) for b in bounds)
        if lo > hi:
            raise InvalidArgument("low must be <= high", field=f"{field}.uniform")
        return float(rng.uniform(lo, hi))
    return _number(raw, field, **limits)


def _one_spacecraft(d: Mapping[str, Any], k: int, rng: np.random.Generator) -> SpacecraftParams:
    thermal = None
    if d.get("thermal") is not None:
        t = _mapping(d["thermal"], "spacecraft.thermal")
        fields = set(ThermalParams.__dataclass_fields__)
        _no_unknown(t, fields, "spacecraft.thermal")
        args = {key: _number(val, f"spacecraft.thermal.{key}") for key, val in t.items()}
        for key in fields:
            if key not in args and ThermalParams.__dataclass_fields__[key].default is MISSING:
                raise InvalidArgument("is required", field=f"spacecraft.thermal.{key}")
        try:
            thermal = ThermalParams(**args)
        except InvalidArgument as exc:
            raise InvalidArgument(exc.message, field=f"spacecraft.{exc.field}") from None
    radiation = RadiationParams()
    if d.get("radiation") is not None:
        r = _mapping(d["radiation"], "spacecraft.radiation")
        _no_unknown(r, set(RadiationParams.__dataclass_fields__), "spacecraft.radiation")
        radiation = RadiationParams(
            **{key: _number(v, f"spacecraft.radiation.{key}", minimum=0) for key, v in r.items()}
        )
    powers = _mapping(d.get("activity_power_w", {}), "spacecraft.activity_power_w")
    devices = _mapping(d.get("comm_devices", {}), "spacecraft.comm_devices")
    return SpacecraftParams(
        name=str(d["name"]),
        battery_capacity_wh=_value(_require(d, "battery_capacity_wh", "spacecraft"), "spacecraft.battery_capacity_wh",
                                   rng, minimum=0, strict_min=True),
        initial_soc=_value(d.get("initial_soc", 1.0), "spacecraft.initial_soc", rng, minimum=0, maximum=1),
        charge_power_w=_value(d.get("charge_power_w", 0.0), "spacecraft.charge_power_w", rng, minimum=0),
        rtg=bool(d.get("rtg", False)),
        thermal=thermal,
        storage_capacity_bytes=_number(d.get("storage_capacity_bytes", math.inf), "spacecraft.storage_capacity_bytes",
                                       minimum=0),
        initial_stored_bytes=_number(d.get("initial_stored_bytes", 0.0), "spacecraft.initial_stored_bytes", minimum=0),
        downlink_rate_bytes_per_s=_number(d.get("downlink_rate_bytes_per_s", 0.0),
                                          "spacecraft.downlink_rate_bytes_per_s", minimum=0),
        isl_rate_bytes_per_s=_number(d.get("isl_rate_bytes_per_s", 0.0), "spacecraft.isl_rate_bytes_per_s", minimum=0),
        radiation=radiation,
        activity_power_w={str(key): _number(v, f"spacecraft.activity_power_w.{key}", minimum=0)
                          for key, v in powers.items()},
        comm_devices={str(key): _number(v, f"spacecraft.comm_devices.{key}", minimum=0, strict_min=True)
                      for key, v in devices.items()},
    )  # fmt: skip


def parse_scenario(doc: Any, base_dir: Path | None = None) -> Scenario:
    """Validate a parsed YAML document and build the scenario's `Simulation`."""
    doc = _mapping(doc, "scenario")
    _no_unknown(doc, _TOP_KEYS, "")
    raw_epoch = _require(doc, "epoch", "")
    if isinstance(raw_epoch, datetime):
        epoch = raw_epoch if raw_epoch.tzinfo else raw_epoch.replace(tzinfo=UTC)
    else:
        try:
            epoch = datetime.fromisoformat(str(raw_epoch).replace("Z", "+00:00"))
        except ValueError:
            raise InvalidArgument(f"not an ISO 8601 time: {raw_epoch!r}", field="epoch") from None
        if epoch.tzinfo is None:
            raise InvalidArgument("must carry a time zone (e.g. 2023-01-04T20:00:00Z)", field="epoch")
    duration = _number(_require(doc, "duration_s", ""), "duration_s", minimum=0, strict_min=True)
    step = _number(doc.get("step_s", 60.0), "step_s", minimum=0, strict_min=True)
    decision = _number(doc.get("decision_step_s", 600.0), "decision_step_s", minimum=0, strict_min=True)
    record = doc.get("record_step_s")
    record_s = None if record is None else _number(record, "record_step_s", minimum=0, strict_min=True)
    tolerance = _number(doc.get("tolerance_s", min(0.1, step)), "tolerance_s", minimum=0, strict_min=True, maximum=step)
    seed = int(_number(doc.get("seed", 0), "seed", minimum=0))
    rng = np.random.default_rng(seed)
    orbits = _orbits(_mapping(_require(doc, "orbits", ""), "orbits"), epoch, base_dir or Path("."))
    spacecraft = _spacecraft(_mapping(_require(doc, "spacecraft", ""), "spacecraft"), orbits.n, rng)

    activities = []
    for j, a in enumerate(_list(_require(doc, "activities", ""), "activities")):
        path = f"activities[{j}]"
        a = _mapping(a, path)
        _no_unknown(a, {"name", "power_w", "data_rate_bytes_per_s", "constraint", "fallback"}, path)
        constraint = a.get("constraint")
        activities.append(Activity(
            name=str(_require(a, "name", path)),
            power_w=_number(_require(a, "power_w", path), f"{path}.power_w", minimum=0),
            data_rate_bytes_per_s=_number(a.get("data_rate_bytes_per_s", 0.0), f"{path}.data_rate_bytes_per_s",
                                          minimum=0),
            constraint=None if constraint is None else parse_condition(constraint, f"{path}.constraint"),
            fallback=None if a.get("fallback") is None else str(a["fallback"]),
        ))  # fmt: skip
    names = {a.name for a in activities}
    rules = []
    for j, m in enumerate(_list(doc.get("modes", [{"activity": activities[-1].name if activities else ""}]), "modes")):
        path = f"modes[{j}]"
        m = _mapping(m, path)
        _no_unknown(m, {"activity", "when"}, path)
        act = str(_require(m, "activity", path))
        if act not in names:
            raise InvalidArgument(f"unknown activity {act!r}", field=f"{path}.activity")
        rules.append(ModeRule(act, parse_condition(m.get("when"), f"{path}.when")))
    for j, a in enumerate(activities):
        if a.fallback is not None and a.fallback not in names:
            raise InvalidArgument(f"unknown activity {a.fallback!r}", field=f"activities[{j}].fallback")

    stations = []
    for j, s in enumerate(_list(doc.get("stations", []), "stations")):
        path = f"stations[{j}]"
        s = _mapping(s, path)
        _no_unknown(s, {"name", "latitude_deg", "longitude_deg", "altitude_m", "min_elevation_deg"}, path)
        stations.append(GroundStation(
            name=str(s.get("name", f"gs-{j}")),
            latitude_deg=_number(_require(s, "latitude_deg", path), f"{path}.latitude_deg", minimum=-90, maximum=90),
            longitude_deg=_number(_require(s, "longitude_deg", path), f"{path}.longitude_deg", minimum=-180,
                                  maximum=360),
            altitude_m=_number(s.get("altitude_m", 0.0), f"{path}.altitude_m"),
            min_elevation_deg=_number(s.get("min_elevation_deg", 5.0), f"{path}.min_elevation_deg", minimum=0,
                                      maximum=89.999),
        ))  # fmt: skip

    pairs: tuple[tuple[int, int], ...] = ()
    flows: tuple[tuple[int, int], ...] = ()
    isl_radius = 6_371_000.0
    if doc.get("isl") is not None:
        isl = _mapping(doc["isl"], "isl")
        _no_unknown(isl, {"pairs", "radius_m", "flows"}, "isl")
        isl_radius = _number(isl.get("radius_m", isl_radius), "isl.radius_m", minimum=0, strict_min=True)
        raw_pairs = isl.get("pairs", "all")
        if raw_pairs == "all":
            pairs = tuple((a, b) for a in range(orbits.n) for b in range(a + 1, orbits.n))
        else:
            plist = []
            for j, p in enumerate(_list(raw_pairs, "isl.pairs")):
                if not (isinstance(p, list) and len(p) == 2):
                    raise InvalidArgument("a pair is [i, j]", field=f"isl.pairs[{j}]")
                a, b = (int(_number(x, f"isl.pairs[{j}]", minimum=0, maximum=orbits.n - 1)) for x in p)
                if a == b:
                    raise InvalidArgument("a pair needs two different spacecraft", field=f"isl.pairs[{j}]")
                plist.append((a, b))
            pairs = tuple(plist)
        known = {frozenset(p) for p in pairs}
        flist = []
        for j, p in enumerate(_list(isl.get("flows", []), "isl.flows")):
            if not (isinstance(p, list) and len(p) == 2):
                raise InvalidArgument("a flow is [from, to]", field=f"isl.flows[{j}]")
            a, b = (int(_number(x, f"isl.flows[{j}]", minimum=0, maximum=orbits.n - 1)) for x in p)
            if frozenset((a, b)) not in known or a == b:
                raise InvalidArgument("a flow must follow one of the isl pairs", field=f"isl.flows[{j}]")
            flist.append((a, b))
        flows = tuple(flist)
    config = EngineConfig(
        step_s=step, decision_step_s=decision, tolerance_s=tolerance, record_step_s=record_s, isl_pairs=pairs,
        isl_flows=flows, isl_radius_m=isl_radius, seed=seed,
        earth_rotation_offset_s=_number(doc.get("earth_rotation_offset_s", 0.0), "earth_rotation_offset_s"),
    )  # fmt: skip
    relays = None
    if doc.get("relays") is not None:
        # relay elements default to the fleet's frame (TEME for a TLE fleet)
        relays = _orbits(_mapping(doc["relays"], "relays"), epoch, base_dir or Path("."), "relays", orbits.frame)
    custom = _custom_properties(doc.get("custom_properties", []))
    sim = Simulation(orbits, spacecraft, activities, rules, epoch, stations, config, relays, custom)
    return Scenario(str(doc.get("name", "scenario")), epoch, duration, sim)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a YAML scenario file."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise InvalidArgument(f"cannot read scenario: {exc.strerror}", field="scenario") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"not valid YAML: {exc}", field="scenario") from None
    return parse_scenario(doc, p.parent)
