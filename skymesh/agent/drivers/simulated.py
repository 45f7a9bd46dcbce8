"""Simulated station hardware with plausible physics, for demos, load tests and the agent's own tests.

- `SimulatedRotator`: moves toward the commanded az/el at its slew rate (both axes at once, like Hamlib's dummy),
  refuses positions outside its limits. Kinematics are evaluated lazily from the clock, so no task runs.
- `SimulatedRadio`: SNR from a link budget (`link_snr_db`): EIRP + antenna gain - free-space path loss (from range
  and frequency) - atmospheric loss (by elevation) - pointing loss - detuning loss, over kTB noise, plus noise.
- `SimulatedMount`: slews at its rate (the wait is on the clock) and tracks.
- `SimulatedCamera`: an exposure yields photometry of the target: catalogue magnitude (+ a sinusoidal light curve for
  configured variables), photon, sky and read noise giving `magnitude_error`, airmass, seeing and quality flags, and
  a FITS image: with a `star_catalogue` file, the star field around the pointing with the headers a real driver
  writes (`starfield`), which the server's pipeline calibrates; without, a small image of the target alone.

Imports: stdlib, numpy, `skymesh.core`, the driver protocols.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from skymesh.agent.drivers.base import (
    DriverError,
    DriverHealth,
    Exposure,
    ExposureRequest,
    LinkGeometry,
    PhotometryResult,
    RotatorTravel,
)
from skymesh.agent.drivers.starfield import StarCatalogue, load_star_catalogue, render_star_field
from skymesh.core.clock import Clock

__all__ = [
    "SimulatedCamera",
    "SimulatedMount",
    "SimulatedRadio",
    "SimulatedRotator",
    "airmass_from_altitude",
    "free_space_path_loss_db",
    "link_snr_db",
    "simple_fits",
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


def _simulated_health() -> DriverHealth:
    """A simulated device is always there and always answers."""
    return DriverHealth(connected=True, last_ok=datetime.now(UTC), errors_total=0, consecutive_errors=0)


def _angle_step(current: float, target: float, max_step: float) -> float:
    delta = target - current
    return target if abs(delta) <= max_step else current + math.copysign(max_step, delta)


class SimulatedRotator:
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

    async def connect(self) -> None:
        return None

    def health(self) -> DriverHealth:
        return _simulated_health()

    async def close(self) -> None:
        return None

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


class SimulatedRadio:
    name = "simulated"

    def __init__(self, rng: np.random.Generator, params: Mapping[str, Any] | None = None) -> None:
        p = dict(params or {})
        self._rng = rng
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

    async def connect(self) -> None:
        return None

    def health(self) -> DriverHealth:
        return _simulated_health()

    async def close(self) -> None:
        return None

    async def set_frequency(self, frequency_hz: float) -> None:
        if not 0 < frequency_hz < 1e12:
            raise DriverError(f"frequency {frequency_hz} Hz out of range", field="frequency_hz")
        self._frequency_hz = frequency_hz

    async def get_frequency(self) -> float:
        return self._frequency_hz

    async def snr_db(self) -> float:
        g = self._geometry
        if g is None:
            return float(self._rng.normal(-20.0, self.noise_db))
        received_hz = g.downlink_frequency_hz * (1.0 - g.range_rate_km_s / _SPEED_OF_LIGHT_KM_S)
        snr = link_snr_db(
            g.range_km,
            g.downlink_frequency_hz,
            g.elevation_deg,
            pointing_error_deg=g.pointing_error_deg,
            detuning_hz=self._frequency_hz - received_hz,
            **self._budget,
        )
        return snr + float(self._rng.normal(0.0, self.noise_db))

    def iq_snippet(self, sample_count: int) -> np.ndarray[Any, np.dtype[np.complex64]]:
        """Complex baseband around the tuned frequency: unit-power noise plus the downlink's carrier, whose power in
        the link bandwidth is the link budget's SNR."""
        rng = self._rng
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


class SimulatedMount:
    name = "simulated"
    equinox_of_date = False  # it points at the J2000 coordinates it was given

    def __init__(self, clock: Clock, *, slew_rate_deg_s: float = 6.0, settle_s: float = 0.0) -> None:
        self._clock = clock
        self.slew_rate_deg_s = slew_rate_deg_s
        self.settle_s = settle_s
        self._ra, self._dec = 0.0, 90.0
        self.tracking = False

    async def connect(self) -> None:
        return None

    def health(self) -> DriverHealth:
        return _simulated_health()

    async def close(self) -> None:
        return None

    async def slew(self, ra_deg: float, dec_deg: float) -> None:
        if not (0.0 <= ra_deg < 360.0 and -90.0 <= dec_deg <= 90.0):
            raise DriverError(f"RA/Dec ({ra_deg}, {dec_deg}) out of range", field="ra_deg")
        d1, d2 = math.radians(self._dec), math.radians(dec_deg)
        cos_sep = math.sin(d1) * math.sin(d2) + math.cos(d1) * math.cos(d2) * math.cos(math.radians(ra_deg - self._ra))
        separation_deg = math.degrees(math.acos(max(-1.0, min(1.0, cos_sep))))
        self.tracking = False
        await self._clock.sleep(separation_deg / self.slew_rate_deg_s + self.settle_s)
        self._ra, self._dec = ra_deg, dec_deg
        self.tracking = True

    async def get_radec(self) -> tuple[float, float]:
        return self._ra, self._dec

    async def park(self) -> None:
        await self.slew(0.0, 90.0)
        self.tracking = False

    async def stop(self) -> None:
        self.tracking = False


@dataclass(frozen=True)
class VariableStar:
    period_s: float
    amplitude_mag: float
    epoch: datetime | None = None

    def delta_mag(self, when: datetime) -> float:
        t0 = self.epoch.timestamp() if self.epoch else 0.0
        phase = ((when.timestamp() - t0) / self.period_s) % 1.0
        return self.amplitude_mag * math.sin(2.0 * math.pi * phase)


class SimulatedCamera:
    """A CCD on a telescope of `aperture_m`: photometry follows from photon statistics."""

    name = "simulated"

    def __init__(self, clock: Clock, rng: np.random.Generator, params: Mapping[str, Any] | None = None) -> None:
        p = dict(params or {})
        self._clock = clock
        self._rng = rng
        self.aperture_m = float(p.get("aperture_m", 0.4))
        self.seeing_arcsec = float(p.get("seeing_arcsec", 1.8))
        self.sky_mag_arcsec2 = float(p.get("sky_mag_arcsec2", 20.5))
        self.extinction_mag_per_airmass = float(p.get("extinction_mag_per_airmass", 0.15))
        self.read_noise_e = float(p.get("read_noise_e", 8.0))
        self.pixel_scale_arcsec = float(p.get("pixel_scale_arcsec", 0.8))
        self.full_well_e = float(p.get("full_well_e", 80_000.0))
        self.image_size_px = int(p.get("image_size_px", 64))
        self.setpoint_c = float(p.get("setpoint_c", -10.0))
        self.gain_e_per_adu = float(p.get("gain_e_per_adu", 1.5))
        self.pointing_error_arcsec = float(p.get("pointing_error_arcsec", 8.0))
        catalogue_path = str(p.get("star_catalogue", "") or "")
        self.star_catalogue: StarCatalogue | None = load_star_catalogue(catalogue_path) if catalogue_path else None
        if self.star_catalogue is not None and "image_size_px" not in p:
            self.image_size_px = 1024  # about 14 arcmin at 0.8"/px: enough stars to calibrate against
        self.variables: dict[str, VariableStar] = {}
        for key, spec in dict(p.get("variables", {})).items():
            epoch = spec.get("epoch")
            self.variables[str(key)] = VariableStar(
                float(spec["period_s"]),
                float(spec.get("amplitude_mag", 0.3)),
                datetime.fromisoformat(epoch) if isinstance(epoch, str) else epoch,
            )

    @property
    def zero_point(self) -> float:
        """Magnitude giving 1 e-/s: ~23.1 for 1 m (V band, QE x throughput 0.25), scaled by collecting area."""
        return 23.1 + 5.0 * math.log10(self.aperture_m)

    async def connect(self) -> None:
        return None

    def health(self) -> DriverHealth:
        return _simulated_health()

    async def close(self) -> None:
        return None

    async def temperature_c(self) -> float:
        return self.setpoint_c + float(self._rng.normal(0.0, 0.05))

    async def expose(self, request: ExposureRequest) -> Exposure:
        if request.duration_s <= 0:
            raise DriverError("exposure time must be positive", field="exposure_s")
        await self._clock.sleep(request.duration_s)
        return self.measure(request)

    def measure(self, request: ExposureRequest) -> Exposure:
        """The photometry an exposure of `request` would give (the blocking part of `expose`)."""
        rng = self._rng
        airmass = airmass_from_altitude(request.altitude_deg)
        flags: list[str] = []
        if request.altitude_deg < 30.0:
            flags.append("LOW_ALTITUDE")
        if airmass > 2.0:
            flags.append("HIGH_AIRMASS")
        if not math.isfinite(airmass):
            return Exposure(request.start, request.duration_s, quality_flags=("BELOW_HORIZON",))
        variable = self.variables.get(request.target_id) or self.variables.get(request.target_name)
        true_mag = request.catalog_magnitude + (variable.delta_mag(request.start) if variable else 0.0)
        seeing = self.seeing_arcsec * airmass**0.6 * float(rng.lognormal(0.0, 0.1))
        if seeing > 3.0:
            flags.append("HIGH_FWHM")
        t = request.duration_s
        star_e = 10.0 ** (-0.4 * (true_mag + self.extinction_mag_per_airmass * airmass - self.zero_point)) * t
        aperture_radius_arcsec = 1.5 * seeing
        aperture_area_arcsec2 = math.pi * aperture_radius_arcsec**2
        sky_e = 10.0 ** (-0.4 * (self.sky_mag_arcsec2 - self.zero_point)) * t * aperture_area_arcsec2
        n_pix = aperture_area_arcsec2 / self.pixel_scale_arcsec**2
        noise_e = math.sqrt(star_e + sky_e + n_pix * self.read_noise_e**2)
        snr = star_e / noise_e if noise_e > 0 else 0.0
        sigma_px = seeing / 2.355 / self.pixel_scale_arcsec
        peak_e = star_e / (2.0 * math.pi * sigma_px**2) + sky_e / max(n_pix, 1.0)
        if peak_e > self.full_well_e:
            flags.append("SATURATED")
        measured_e = max(star_e + float(rng.normal(0.0, noise_e)), 1e-3)
        magnitude_error = min(1.0857 / snr, 9.99) if snr > 0 else 9.99
        if snr < 10.0:
            flags.append("LOW_SNR")
        # Differential photometry against comparison stars removes extinction; what remains is the noise.
        magnitude = -2.5 * math.log10(measured_e / t) + self.zero_point - self.extinction_mag_per_airmass * airmass
        photometry = PhotometryResult(
            filter=request.filter or "V",
            magnitude=round(magnitude, 4),
            magnitude_error=round(magnitude_error, 4),
            flux=measured_e / t,
            zero_point=self.zero_point,
            comparison_stars=int(rng.integers(3, 12)),
        )
        headers = {
            "OBJECT": request.target_name,
            "EXPTIME": f"{t:.3f}",
            "FILTER": photometry.filter,
            "AIRMASS": f"{airmass:.4f}",
            "DATE-OBS": request.start.isoformat(),
        }
        cards: dict[str, str | float | int] = dict(headers)
        if self.star_catalogue is not None:
            adu, field_cards = self._star_field(request, photometry.filter, airmass, seeing, variable)
            image = np.asarray(adu.astype(np.int32) - 32768, dtype=">i2")
            cards.update(field_cards)
            headers.update({"RA": f"{request.ra_deg:.6f}", "DEC": f"{request.dec_deg:.6f}"})
        else:
            image = self._image(star_e, sky_e / max(n_pix, 1.0), sigma_px)
        return Exposure(
            start=request.start,
            duration_s=t,
            data=simple_fits(image, cards),
            data_format=".fits",
            photometry=photometry,
            airmass=airmass,
            seeing_arcsec=seeing,
            quality_flags=tuple(flags),
            headers=headers,
        )

    def _star_field(
        self, request: ExposureRequest, band: str, airmass: float, seeing_arcsec: float, variable: VariableStar | None
    ) -> tuple[np.ndarray[Any, np.dtype[np.uint16]], dict[str, Any]]:
        catalogue = self.star_catalogue
        assert catalogue is not None
        delta = variable.delta_mag(request.start) if variable else 0.0
        # The target is the catalogue star at its position if there is one, else a star added there.
        cos_d = math.cos(math.radians(request.dec_deg))
        d_ra = (catalogue.ra_deg - request.ra_deg + 180.0) % 360.0 - 180.0
        dist_arcsec = np.hypot(d_ra * cos_d, catalogue.dec_deg - request.dec_deg) * 3600.0
        nearest = int(np.argmin(dist_arcsec)) if len(catalogue) else -1
        offsets: dict[int, float] = {}
        extra: tuple[tuple[float, float, float], ...] = ()
        if nearest >= 0 and dist_arcsec[nearest] < 2.0:
            offsets[nearest] = delta
        else:
            extra = ((request.ra_deg, request.dec_deg, request.catalog_magnitude + delta),)
        angle = float(self._rng.uniform(0.0, 2.0 * math.pi))
        scale2 = self.pixel_scale_arcsec**2
        return render_star_field(
            catalogue,
            ra_deg=request.ra_deg,
            dec_deg=request.dec_deg,
            band=band,
            exposure_s=request.duration_s,
            size_px=self.image_size_px,
            pixel_scale_arcsec=self.pixel_scale_arcsec,
            fwhm_arcsec=seeing_arcsec,
            zero_point_mag=self.zero_point,
            extinction_mag=self.extinction_mag_per_airmass * airmass,
            sky_e_per_s_px=10.0 ** (-0.4 * (self.sky_mag_arcsec2 - self.zero_point)) * scale2,
            read_noise_e=self.read_noise_e,
            gain_e_per_adu=self.gain_e_per_adu,
            rng=self._rng,
            extra_stars=extra,
            magnitude_offsets=offsets,
            pointing_error_arcsec=(
                self.pointing_error_arcsec * math.cos(angle),
                self.pointing_error_arcsec * math.sin(angle),
            ),
        )

    def _image(self, star_e: float, sky_e_per_px: float, sigma_px: float) -> np.ndarray[Any, np.dtype[np.int16]]:
        n = self.image_size_px
        y, x = np.mgrid[0:n, 0:n].astype(np.float64)
        c = (n - 1) / 2.0
        psf = np.exp(-((x - c) ** 2 + (y - c) ** 2) / (2.0 * sigma_px**2)) / (2.0 * math.pi * sigma_px**2)
        expected = sky_e_per_px + star_e * psf
        counts = self._rng.poisson(np.clip(expected, 0.0, 1e9)) + self._rng.normal(0.0, self.read_noise_e, (n, n))
        # Store as 16-bit with BZERO 32768 (unsigned convention), clipped to the ADC range.
        return np.asarray(np.clip(counts, 0, 65535) - 32768, dtype=">i2")


def simple_fits(image: np.ndarray[Any, Any], headers: Mapping[str, str | float | int]) -> bytes:
    """A minimal primary-HDU FITS file of a 2-D int16 image (BZERO 32768): string values quoted, numbers as numbers."""
    cards = [
        "SIMPLE  =                    T",
        "BITPIX  =                   16",
        "NAXIS   =                    2",
        f"NAXIS1  = {image.shape[1]:>20}",
        f"NAXIS2  = {image.shape[0]:>20}",
        "BZERO   =                32768",
        "BSCALE  =                    1",
    ]
    for key, value in headers.items():
        if isinstance(value, bool):
            cards.append(f"{key[:8]:<8}= {'T' if value else 'F':>20}")
        elif isinstance(value, int):
            cards.append(f"{key[:8]:<8}= {value:>20d}")
        elif isinstance(value, float):
            text = format(value, ".14G")
            if "." not in text and "E" not in text:
                text += ".0"
            cards.append(f"{key[:8]:<8}= {text:>20}")
        else:
            text = str(value).replace("'", "''")[:60]
            cards.append(f"{key[:8]:<8}= '{text}'")
    cards.append("END")
    header = "".join(card[:80].ljust(80) for card in cards)
    header += " " * (-len(header) % 2880)
    data = np.asarray(image, dtype=">i2").tobytes()
    data += b"\0" * (-len(data) % 2880)
    return header.encode("ascii") + data
