"""Simulated station hardware with plausible physics, for demos, load tests and the agent's own tests.

- `SimulatedRotator`: moves toward the commanded az/el at its slew rate (both axes at once, like Hamlib's dummy),
  refuses positions outside its limits. Kinematics are evaluated lazily from the clock, so no task runs.
- `SimulatedRadio`: SNR from a link budget (`link_snr_db`): EIRP + antenna gain - free-space path loss (from range
  and frequency) - atmospheric loss (by elevation) - pointing loss - detuning loss, over kTB noise, plus noise.
- `SimulatedMount`: slews at its rate (the wait is on the clock) and tracks.
- `SimulatedDevice`: what they all share (always connected and healthy; nothing to open or close).
- `SimulatedCamera` (in `simulated_camera`, numpy; still importable from here): photometry and FITS images.

A ground station's simulated rotator and radio load no numpy: the radio's noise comes from `random.Random`
(or a numpy Generator, if given one), and numpy is imported only for IQ snippets.
Imports: stdlib, `skymesh.core`, the driver protocols.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from skymesh.agent.drivers.base import DriverError, DriverHealth, LinkGeometry, RotatorTravel
from skymesh.core.clock import Clock
from skymesh.core.sphere import separation_deg

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "SimulatedDevice",
    "SimulatedMount",
    "SimulatedRadio",
    "SimulatedRotator",
    "airmass_from_altitude",
    "free_space_path_loss_db",
    "link_snr_db",
]

_BOLTZMANN_DBW = -228.6  # 10 log10(k), dBW/K/Hz
_SPEED_OF_LIGHT_KM_S = 299_792.458


def free_space_path_loss_db(range_km: float, frequency_hz: float) -> float:
    """FSPL = 20 log10(d_km) + 20 log10(f_MHz) + 32.45 dB."""
    return 20.0 * math.log10(max(range_km, 1e-3)) + 20.0 * math.log10(max(frequency_hz, 1.0) / 1e6) + 32.45


def link_snr_db(
    range_km: float,
    frequency_hz: float,
    elevation_deg: float,
    *,
    eirp_dbw: float = 0.0,
    antenna_gain_dbi: float = 12.0,
    system_noise_temp_k: float = 500.0,
    bandwidth_hz: float = 10_000.0,
    pointing_error_deg: float = 0.0,
    beamwidth_deg: float = 30.0,
    detuning_hz: float = 0.0,
) -> float:
    """Noise-free SNR (dB) of a downlink: a plain link budget."""
    if elevation_deg <= 0.0:
        return -20.0  # below the horizon: nothing but noise
    # Zenith attenuation of ~0.3 dB scaled by the slant path (capped near the horizon).
    atmospheric_db = 0.3 / max(math.sin(math.radians(elevation_deg)), 0.05)
    pointing_db = min(12.0 * (pointing_error_deg / beamwidth_deg) ** 2, 30.0)
    detuning_db = 0.0 if abs(detuning_hz) <= bandwidth_hz / 2 else min(20.0 * abs(detuning_hz) / bandwidth_hz, 40.0)
    received_dbw = eirp_dbw + antenna_gain_dbi - free_space_path_loss_db(range_km, frequency_hz)
    received_dbw -= atmospheric_db + pointing_db + detuning_db
    noise_dbw = _BOLTZMANN_DBW + 10.0 * math.log10(system_noise_temp_k) + 10.0 * math.log10(bandwidth_hz)
    return max(received_dbw - noise_dbw, -20.0)


def airmass_from_altitude(altitude_deg: float) -> float:
    """Kasten & Young (1989): finite at the horizon, ~sec(z) high up; inf below the horizon."""
    if altitude_deg <= 0.0:
        return math.inf
    return max(1.0, 1.0 / (math.sin(math.radians(altitude_deg)) + 0.50572 * float((altitude_deg + 6.07995) ** -1.6364)))


class SimulatedDevice:
    """What every simulated device shares: it is always there and always answers, with nothing to open or close."""

    async def connect(self) -> None:
        return None

    def health(self) -> DriverHealth:
        return DriverHealth(connected=True, last_ok=datetime.now(UTC), errors_total=0, consecutive_errors=0)

    async def close(self) -> None:
        return None


def _angle_step(current: float, target: float, max_step: float) -> float:
    delta = target - current
    return target if abs(delta) <= max_step else current + math.copysign(max_step, delta)


class SimulatedRotator(SimulatedDevice):
    name = "simulated"

    def __init__(
        self,
        clock: Clock,
        *,
        slew_rate_deg_s: float = 6.0,
        azimuth_min_deg: float = 0.0,
        azimuth_max_deg: float = 360.0,
        elevation_min_deg: float = 0.0,
        elevation_max_deg: float = 90.0,
        park: tuple[float, float] = (0.0, 90.0),
    ) -> None:
        self._clock = clock
        self.slew_rate_deg_s = slew_rate_deg_s
        self.azimuth_min_deg, self.azimuth_max_deg = azimuth_min_deg, azimuth_max_deg
        self.elevation_min_deg, self.elevation_max_deg = elevation_min_deg, elevation_max_deg
        self._park = park
        self._az, self._el = park
        self._target = park
        self._t = clock.monotonic()

    def _advance(self) -> None:
        now = self._clock.monotonic()
        step = self.slew_rate_deg_s * max(now - self._t, 0.0)
        self._t = now
        self._az = _angle_step(self._az, self._target[0], step)
        self._el = _angle_step(self._el, self._target[1], step)

    async def set_position(self, azimuth_deg: float, elevation_deg: float) -> None:
        if not self.azimuth_min_deg <= azimuth_deg <= self.azimuth_max_deg:
            raise DriverError(
                f"azimuth {azimuth_deg:.2f} outside limits [{self.azimuth_min_deg}, {self.azimuth_max_deg}]",
                field="azimuth_deg",
            )
        if not self.elevation_min_deg <= elevation_deg <= self.elevation_max_deg:
            raise DriverError(
                f"elevation {elevation_deg:.2f} outside limits [{self.elevation_min_deg}, {self.elevation_max_deg}]",
                field="elevation_deg",
            )
        self._advance()
        self._target = (azimuth_deg, elevation_deg)

    async def get_position(self) -> tuple[float, float]:
        self._advance()
        return self._az, self._el

    def reported_travel(self) -> RotatorTravel | None:
        return RotatorTravel(self.azimuth_min_deg, self.azimuth_max_deg, self.elevation_min_deg, self.elevation_max_deg)

    async def stop(self) -> None:
        self._advance()
        self._target = (self._az, self._el)

    async def park(self) -> None:
        await self.set_position(*self._park)


class SimulatedRadio(SimulatedDevice):
    name = "simulated"

    def __init__(self, rng: random.Random | np.random.Generator, params: Mapping[str, Any] | None = None) -> None:
        p = dict(params or {})
        self._rng = rng
        self._np_rng: np.random.Generator | None = None  # for IQ snippets, when `rng` is not one
        self.noise_db = float(p.get("noise_db", 0.5))
        self._budget = {
            "eirp_dbw": float(p.get("eirp_dbw", 0.0)),
            "antenna_gain_dbi": float(p.get("antenna_gain_dbi", 12.0)),
            "system_noise_temp_k": float(p.get("system_noise_temp_k", 500.0)),
            "bandwidth_hz": float(p.get("bandwidth_hz", 10_000.0)),
            "beamwidth_deg": float(p.get("beamwidth_deg", 30.0)),
        }
        self._frequency_hz = float(p.get("frequency_hz", 437_000_000.0))
        self._geometry: LinkGeometry | None = None
        # IQ recording during passes (skymesh.agent.recording): snippets of a carrier at the true received frequency
        # (the prediction plus `transmitter_offset_hz`, which stands for a wrong TLE or clock) in complex noise.
        self.record_iq = bool(p.get("record_iq", False))
        self.iq_sample_rate_hz = float(p.get("iq_sample_rate_hz", 48_000.0))
        self.iq_interval_s = float(p.get("iq_interval_s", 2.0))
        self.transmitter_offset_hz = float(p.get("transmitter_offset_hz", 0.0))

    def update_geometry(self, geometry: LinkGeometry | None) -> None:
        self._geometry = geometry

    async def set_frequency(self, frequency_hz: float) -> None:
        if not 0 < frequency_hz < 1e12:
            raise DriverError(f"frequency {frequency_hz} Hz out of range", field="frequency_hz")
        self._frequency_hz = frequency_hz

    async def get_frequency(self) -> float:
        return self._frequency_hz

    async def snr_db(self) -> float:
        g = self._geometry
        if g is None:
            return self._normal(-20.0, self.noise_db)
        received_hz = g.downlink_frequency_hz * (1.0 - g.range_rate_km_s / _SPEED_OF_LIGHT_KM_S)
        snr = link_snr_db(
            g.range_km,
            g.downlink_frequency_hz,
            g.elevation_deg,
            pointing_error_deg=g.pointing_error_deg,
            detuning_hz=self._frequency_hz - received_hz,
            **self._budget,
        )
        return snr + self._normal(0.0, self.noise_db)

    def _normal(self, mean: float, sigma: float) -> float:
        if isinstance(self._rng, random.Random):
            return self._rng.gauss(mean, sigma)
        return float(self._rng.normal(mean, sigma))

    def _numpy_rng(self) -> np.random.Generator:
        import numpy as np

        if not isinstance(self._rng, random.Random):
            return self._rng
        if self._np_rng is None:
            self._np_rng = np.random.default_rng(self._rng.getrandbits(64))
        return self._np_rng

    def iq_snippet(self, sample_count: int) -> np.ndarray[Any, np.dtype[np.complex64]]:
        """Complex baseband around the tuned frequency: unit-power noise plus the downlink's carrier, whose power in
        the link bandwidth is the link budget's SNR."""
        import numpy as np

        rng = self._numpy_rng()
        noise = (rng.normal(size=sample_count) + 1j * rng.normal(size=sample_count)) / math.sqrt(2.0)
        g = self._geometry
        if g is None or g.elevation_deg <= 0.0:
            return np.asarray(noise, dtype=np.complex64)
        received_hz = g.downlink_frequency_hz * (1.0 - g.range_rate_km_s / _SPEED_OF_LIGHT_KM_S)
        received_hz += self.transmitter_offset_hz
        snr_db = link_snr_db(
            g.range_km,
            g.downlink_frequency_hz,
            g.elevation_deg,
            pointing_error_deg=g.pointing_error_deg,
            **self._budget,
        )
        amplitude = math.sqrt(10.0 ** (snr_db / 10.0) * self._budget["bandwidth_hz"] / self.iq_sample_rate_hz)
        t = np.arange(sample_count) / self.iq_sample_rate_hz
        phase = float(rng.uniform(0.0, 2.0 * math.pi))
        carrier = amplitude * np.exp(1j * (2.0 * math.pi * (received_hz - self._frequency_hz) * t + phase))
        return np.asarray(noise + carrier, dtype=np.complex64)


class SimulatedMount(SimulatedDevice):
    name = "simulated"
    equinox_of_date = False  # it points at the J2000 coordinates it was given

    def __init__(self, clock: Clock, *, slew_rate_deg_s: float = 6.0, settle_s: float = 0.0) -> None:
        self._clock = clock
        self.slew_rate_deg_s = slew_rate_deg_s
        self.settle_s = settle_s
        self._ra, self._dec = 0.0, 90.0
        self.tracking = False

    async def slew(self, ra_deg: float, dec_deg: float) -> None:
        if not (0.0 <= ra_deg < 360.0 and -90.0 <= dec_deg <= 90.0):
            raise DriverError(f"RA/Dec ({ra_deg}, {dec_deg}) out of range", field="ra_deg")
        distance_deg = separation_deg(self._ra, self._dec, ra_deg, dec_deg)
        self.tracking = False
        await self._clock.sleep(distance_deg / self.slew_rate_deg_s + self.settle_s)
        self._ra, self._dec = ra_deg, dec_deg
        self.tracking = True

    async def get_radec(self) -> tuple[float, float]:
        return self._ra, self._dec

    async def park(self) -> None:
        await self.slew(0.0, 90.0)
        self.tracking = False

    async def stop(self) -> None:
        self.tracking = False


def __getattr__(name: str) -> Any:
    """`SimulatedCamera`, `VariableStar` and `simple_fits` moved to `simulated_camera` (numpy); still found here."""
    if name in ("SimulatedCamera", "VariableStar", "simple_fits"):
        from skymesh.agent.drivers import simulated_camera

        return getattr(simulated_camera, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
