"""Station health: rolling robust z-score detectors on each station's 1 Hz telemetry (TALOS "anomaly detection").

For every station and channel the server keeps a baseline of recent normal samples and scores each new sample as
a robust z-score, `z = (x - median) / (1.4826 * MAD)`, with the scale floored at the channel's noise floor so a
quiet channel does not alarm on its last digit. A detector opens an event after `confirm` consecutive samples past
`threshold_z` in its bad direction, and closes it after `clear` consecutive normal samples. Samples scored as
anomalous do not enter the baseline, so a persistent fault keeps the event open instead of becoming "normal".

Channels (from the agents' telemetry):

- `rotator_pointing_error`: `rotator.pointing_error_deg` (tracking error vs the target) minus the target's own
  motion since the previous sample, outside the keyhole above 70 deg; bad when high (a rotator that lags, sticks
  or drifts).
- `radio_snr_residual`: `radio.snr_db` + free-space path loss (`target.range_km`, `radio.frequency_hz`) + the
  atmospheric loss at `target.elevation_deg`, i.e. SNR minus what the geometry predicts (up to the link's
  constant); bad when low (a 10 dB drop).
- `camera_temperature`: `camera.temperature_c`; bad when high (a cooler failing).
- `clock_offset`: agent clock minus server clock at each heartbeat; bad either way (a clock that steps or drifts).
- `heartbeat_jitter`: the interval since the previous heartbeat; bad when high (a stalling agent or link).

An opened event is stored (`station_health_events`, with the evidence window: the last samples, the baseline and
the peak z), counted in `skymesh_server_station_health_events_total{detector}`, and shown as
`skymesh_server_station_health_open{detector}`. Marking the station DEGRADED is the caller's (`on_change`).
Imports the standard library, core and the server's repository.
"""

from __future__ import annotations

import bisect
import logging
import math
import statistics
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from skymesh.core.sphere import separation_deg
from skymesh.observability.metrics import ServerMetrics
from skymesh.server.db.telemetry_blob import TelemetryColumns

__all__ = ["DETECTORS", "Deriver", "DetectorSpec", "HealthMonitor", "RobustZDetector", "Transition", "derive"]

log = logging.getLogger(__name__)

_MAD_TO_SIGMA = 1.4826
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
# Heartbeats further apart than this are a new session after an outage (liveness reports that), not jitter.
_SESSION_GAP_S = 300.0


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    direction: int  # +1: high is bad, -1: low is bad, 0: both
    min_scale: float  # noise floor of the robust sigma, in the channel's unit
    threshold_z: float = 6.0
    confirm: int = 5  # consecutive anomalous samples to open an event
    clear: int = 30  # consecutive normal samples to close it
    window: int = 600  # baseline: the last normal samples
    warmup: int = 120  # samples before the first score
    refit_every: int = 10  # baseline statistics recomputed every N normal samples
    evidence: int = 60  # samples kept as the event's evidence


DETECTORS: tuple[DetectorSpec, ...] = (
    DetectorSpec("rotator_pointing_error", +1, min_scale=0.25),
    DetectorSpec("radio_snr_residual", -1, min_scale=1.0),
    DetectorSpec("camera_temperature", +1, min_scale=0.1),
    # From heartbeats (every ~10 s): a shorter warm-up, so a station is watched within minutes of connecting.
    DetectorSpec("clock_offset", 0, min_scale=0.05, warmup=30, confirm=3, clear=6, window=360),
    DetectorSpec("heartbeat_jitter", +1, min_scale=0.5, warmup=30, confirm=3, clear=6, window=360),
)


# Above this elevation an az/el rotator's azimuth must swing fast (the keyhole): lag there is expected, not a fault.
KEYHOLE_ELEVATION_DEG = 70.0


class Deriver:
    """The detectors' inputs from one station's telemetry samples, in time order (it remembers the last sample).

    - Pointing: a healthy rotator commanded once per sample closes its error at its slew rate (at worst
      `slew_rate * cos(elevation)` in angle, the azimuth axis near the top of the sky) while the target moves on, so
      `error <= max(0, previous error + target motion - catch-up)`. The residual is the error beyond that bound: 0
      for a rotator that keeps up or catches up at full speed (after a wrap-around swing, say), positive for one
      that lags, sticks or drifts. Not scored in the keyhole (above 70 deg) or below 0 deg.
    - SNR: SNR plus free-space path loss (range and frequency) plus atmospheric loss, so what is left of the link
      budget is constant for a healthy station and a given transmitter; scored only while the signal is well
      above the noise (at least 3 dB) and the antenna points within 5 deg, where pointing loss is small.
    """

    # Every channel `__call__` reads: a sample with none of them gives no input and only forgets the last sample.
    INPUTS = frozenset(
        {
            "target.azimuth_deg",
            "target.elevation_deg",
            "rotator.pointing_error_deg",
            "rotator.azimuth_deg",
            "rotator.elevation_deg",
            "radio.snr_db",
            "target.range_km",
            "radio.frequency_hz",
            "camera.temperature_c",
        }
    )

    def __init__(self, slew_rate_deg_s: float = 6.0) -> None:
        self.slew_rate_deg_s = slew_rate_deg_s
        # t, target az, target el, pointing error, rotator az, rotator el
        self._last: tuple[float, float, float, float, float, float] | None = None

    def forget(self) -> None:
        """What a sample without target and pointing does to the memory of the last one."""
        self._last = None

    def __call__(self, t: float, values: Mapping[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        target_az, target_el = values.get("target.azimuth_deg"), values.get("target.elevation_deg")
        error = values.get("rotator.pointing_error_deg")
        rot_az, rot_el = values.get("rotator.azimuth_deg", math.nan), values.get("rotator.elevation_deg", math.nan)
        last = self._last
        self._last = None
        if target_az is not None and target_el is not None and error is not None:
            self._last = (t, float(target_az), float(target_el), float(error), float(rot_az), float(rot_el))
            dt = t - last[0] if last is not None else 0.0
            if last is not None and 0.0 < dt <= 2.0 and 0.0 <= target_el <= KEYHOLE_ELEVATION_DEG:
                motion = separation_deg(last[1], last[2], float(target_az), float(target_el))
                catch_up = self.slew_rate_deg_s * dt * math.cos(math.radians(max(target_el, last[2])))
                residual = float(error) - max(0.0, last[3] + motion - catch_up)
                # Slewing at full speed on an axis (a wrap-around swing, catching up): doing its best, not a fault.
                axis_speed = max(abs(float(rot_az) - last[4]), abs(float(rot_el) - last[5])) / dt
                out["rotator_pointing_error"] = 0.0 if axis_speed >= 0.8 * self.slew_rate_deg_s else residual
        snr, range_km, freq_hz = (
            values.get("radio.snr_db"),
            values.get("target.range_km"),
            values.get("radio.frequency_hz"),
        )
        if (
            snr is not None
            and snr >= 3.0
            and range_km
            and freq_hz
            and target_el is not None
            and target_el > 0.0
            and (error is None or error <= 5.0)
        ):
            atmospheric_db = 0.3 / max(math.sin(math.radians(target_el)), 0.05)
            fspl_db = 20.0 * math.log10(range_km) + 20.0 * math.log10(freq_hz)
            out["radio_snr_residual"] = float(snr) + fspl_db + atmospheric_db
        if "camera.temperature_c" in values:
            out["camera_temperature"] = float(values["camera.temperature_c"])
        return out


def derive(values: Mapping[str, float]) -> dict[str, float]:
    """The inputs one sample gives on its own (no pointing residual: that needs the previous sample)."""
    return Deriver()(0.0, values)


@dataclass(frozen=True)
class Transition:
    detector: str
    opened: bool  # False: closed
    at: float  # Unix time of the sample that decided it
    z: float
    evidence: dict[str, Any]


def median_and_mad(values: Iterable[float]) -> tuple[float, float]:
    """`statistics.median(values)` and the median absolute deviation from it, exactly as `statistics.median` of
    `abs(x - median)` gives it, from ONE sort: the deviations below and above the median are two sorted runs, so
    their median is found by bisection instead of a second sort of a generator (a refit every 10 samples of up to 600
    was most of the detectors' cost per telemetry batch, issue 8)."""
    a = sorted(values)
    n = len(a)
    if n == 0:
        raise statistics.StatisticsError("no median for empty data")
    half = n // 2
    median = a[half] if n % 2 else (a[half - 1] + a[half]) / 2
    below = bisect.bisect_left(a, median)  # a[:below] < median <= a[below:]
    above = n - below

    def low(j: int) -> float:  # the j-th smallest deviation below the median (exactly abs(x - median))
        return median - a[below - 1 - j]

    def high(j: int) -> float:  # the j-th smallest deviation at or above it
        return a[below + j] - median

    def kth(k: int) -> float:  # the k-th smallest deviation of all (0-based): i from below, k + 1 - i from above
        lo, hi = max(0, k + 1 - above), min(k + 1, below)
        while lo < hi:
            i = (lo + hi) // 2
            if low(i) < high(k - i):
                lo = i + 1
            else:
                hi = i
        i = lo
        return max(low(i - 1) if i > 0 else -math.inf, high(k - i) if k + 1 - i > 0 else -math.inf)

    mad = kth(half) if n % 2 else (kth(half - 1) + kth(half)) / 2
    return median, mad


@dataclass
class RobustZDetector:
    spec: DetectorSpec
    baseline: deque[float] = field(init=False)
    recent: deque[tuple[float, float]] = field(init=False)
    median: float = 0.0
    scale: float = 0.0
    _since_refit: int = 0
    _bad_run: int = 0
    _good_run: int = 0
    _peak_z: float = 0.0
    open: bool = False

    def __post_init__(self) -> None:
        self.baseline = deque(maxlen=self.spec.window)
        self.recent = deque(maxlen=self.spec.evidence)

    def _refit(self) -> None:
        self.median, mad = median_and_mad(self.baseline)
        self.scale = max(_MAD_TO_SIGMA * mad, self.spec.min_scale)
        self._since_refit = 0

    def update(self, t: float, x: float) -> Transition | None:
        """Score one sample; returns the event transition it causes, if any."""
        s = self.spec
        self.recent.append((t, x))
        if len(self.baseline) < s.warmup:
            self.baseline.append(x)
            if len(self.baseline) == s.warmup:
                self._refit()
            return None
        z = (x - self.median) / self.scale
        bad = (abs(z) if s.direction == 0 else z * s.direction) > s.threshold_z
        if bad:
            self._bad_run += 1
            self._good_run = 0
            self._peak_z = max(self._peak_z, abs(z))
        else:
            self._good_run += 1
            self._bad_run = 0
            self.baseline.append(x)
            self._since_refit += 1
            if self._since_refit >= s.refit_every:
                self._refit()
        if not self.open and self._bad_run >= s.confirm:
            self.open = True
            return Transition(s.name, True, t, z, self._evidence(z))
        if self.open and self._good_run >= s.clear:
            self.open = False
            peak, self._peak_z = self._peak_z, 0.0
            return Transition(s.name, False, t, peak, {})
        if not self.open and not bad:
            self._peak_z = 0.0
        return None

    def _evidence(self, z: float) -> dict[str, Any]:
        return {
            "samples": [[t, x] for t, x in self.recent],
            "median": self.median,
            "scale": self.scale,
            "z": z,
            "threshold_z": self.spec.threshold_z,
            "direction": self.spec.direction,
        }


# Persists an opened event (station_id, detector, at, z, evidence) or closes the open one (station_id, detector, at).
OpenEvent = Callable[[str, str, datetime, float, dict[str, Any]], Awaitable[object]]
CloseEvent = Callable[[str, str, datetime], Awaitable[object]]


class HealthMonitor:
    """Every station's detectors on this replica, fed by the telemetry the stream commits."""

    def __init__(
        self,
        open_event: OpenEvent,
        close_event: CloseEvent,
        *,
        specs: Sequence[DetectorSpec] = DETECTORS,
        on_change: Callable[[str, str, bool], None] | None = None,
        slew_rate_of: Callable[[str], Awaitable[float]] | None = None,
    ) -> None:
        """`slew_rate_of(station_id)`: the station's rotator slew rate (deg/s), read once per station."""
        self._open_event = open_event
        self._close_event = close_event
        self._specs = {s.name: s for s in specs}
        self._stations: dict[str, dict[str, RobustZDetector]] = {}
        self._derivers: dict[str, Deriver] = {}
        self._slew_rate_of = slew_rate_of
        self._last_heartbeat: dict[str, datetime] = {}
        self._on_change = on_change

    def open_events(self, station_id: str) -> list[str]:
        return sorted(n for n, d in self._stations.get(station_id, {}).items() if d.open)

    def forget(self, station_id: str) -> None:
        """Drop a station's baselines (deleted station)."""
        self._derivers.pop(station_id, None)
        self._last_heartbeat.pop(station_id, None)
        for name, detector in self._stations.pop(station_id, {}).items():
            if detector.open:
                ServerMetrics.current().health_open.labels(name).dec()

    async def heartbeat(self, station_id: str, agent_time: datetime | None, received_at: datetime) -> list[Transition]:
        """Feed one heartbeat: the agent's clock at sending (if it said) and the server's at receipt."""
        values: dict[str, float] = {}
        if agent_time is not None:
            values["clock_offset"] = (agent_time - received_at).total_seconds()
        last = self._last_heartbeat.get(station_id)
        self._last_heartbeat[station_id] = received_at
        interval_s = (received_at - last).total_seconds() if last is not None else None
        if interval_s is not None and 0.0 < interval_s <= _SESSION_GAP_S:
            values["heartbeat_jitter"] = interval_s
        return await self._feed(station_id, received_at, values)

    async def observe(self, station_id: str, batch: TelemetryColumns) -> list[Transition]:
        """Feed one committed telemetry batch (its samples in time order)."""
        deriver = self._derivers.get(station_id)
        if Deriver.INPUTS.isdisjoint(batch.columns):
            # No channel a detector reads (a station without them, the stream benchmark's az/el/snr): the samples
            # would give no input, one by one, and only make the deriver forget its last sample (issue 8: this was
            # a Python call and a datetime per sample on the hot path, for nothing).
            if deriver is not None:
                deriver.forget()
            return []
        if deriver is None:
            slew = await self._slew_rate_of(station_id) if self._slew_rate_of is not None else 6.0
            deriver = self._derivers[station_id] = Deriver(slew_rate_deg_s=slew)
        transitions: list[Transition] = []
        detectors = self._stations.setdefault(station_id, {})
        # Straight from the columns the deriver reads: a sample's time as Unix seconds (what `datetime.timestamp()`
        # of it gives, to the bit), its datetime only when an anomaly opens or closes.
        read = [(name, column) for name, column in batch.columns.items() if name in Deriver.INPUTS]
        for i, us in enumerate(batch.times_us):
            values = {}
            for name, column in read:
                value = column[i]
                if value == value:  # not NaN: the sample has it
                    values[name] = value
            t = us / 1_000_000
            inputs = deriver(t, values)
            changes = self._update_at(detectors, t, inputs) if inputs else None
            if changes:  # an anomaly opened or closed (rare): no coroutine per sample otherwise
                transitions += await self._apply(station_id, _EPOCH_UTC + timedelta(microseconds=us), changes)
        return transitions

    async def _feed(self, station_id: str, at: datetime, inputs: Mapping[str, float]) -> list[Transition]:
        changes = self._update(self._stations.setdefault(station_id, {}), at, inputs)
        return await self._apply(station_id, at, changes) if changes else []

    def _update(
        self, detectors: dict[str, RobustZDetector], at: datetime, inputs: Mapping[str, float]
    ) -> list[tuple[str, Transition]]:
        """Feed the detectors (no I/O): the (detector, transition) pairs that opened or closed an anomaly."""
        return self._update_at(detectors, at.timestamp(), inputs)

    def _update_at(
        self, detectors: dict[str, RobustZDetector], t: float, inputs: Mapping[str, float]
    ) -> list[tuple[str, Transition]]:
        changes: list[tuple[str, Transition]] = []
        for name, value in inputs.items():
            spec = self._specs.get(name)
            if spec is None:
                continue
            detector = detectors.get(name)
            if detector is None:
                detector = detectors[name] = RobustZDetector(spec)
            change = detector.update(t, value)
            if change is not None:
                changes.append((name, change))
        return changes

    async def _apply(self, station_id: str, at: datetime, changes: list[tuple[str, Transition]]) -> list[Transition]:
        """Record what `_update` found: metrics, the health event opened or closed, the callback."""
        metrics = ServerMetrics.current()
        transitions: list[Transition] = []
        for name, change in changes:
            transitions.append(change)
            if change.opened:
                metrics.health_events.labels(name).inc()
                metrics.health_open.labels(name).inc()
                log.warning("station %s: %s anomaly (z=%.1f)", station_id, name, change.z)
                await self._open_event(station_id, name, at, change.z, change.evidence)
            else:
                metrics.health_open.labels(name).dec()
                log.info("station %s: %s back to normal", station_id, name)
                await self._close_event(station_id, name, at)
            if self._on_change is not None:
                self._on_change(station_id, name, change.opened)
        return transitions
