"""The simulated CCD camera (`SimulatedCamera`) and its FITS writer (`simple_fits`): telescopes only.

Split from `skymesh.agent.drivers.simulated` so that a ground station's simulated rotator and radio load no numpy:
an exposure yields photometry of the target: catalogue magnitude (+ a sinusoidal light curve for configured
variables), photon, sky and read noise giving `magnitude_error`, airmass, seeing and quality flags, and a FITS image:
with a `star_catalogue` file, the star field around the pointing with the headers a real driver writes
(`starfield`), which the server's pipeline calibrates; without, a small image of the target alone.

The photometric model (zero point, electrons from magnitudes, the defaults) is `skymesh.core.photometry`'s, the one
the exposure-time calculator (`skymesh.products.exposure`) answers with.

Imports: stdlib, numpy, `skymesh.core`, the driver protocols.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from skymesh.agent.drivers.base import DriverError, Exposure, ExposureRequest, PhotometryResult
from skymesh.agent.drivers.simulated import SimulatedDevice, airmass_from_altitude
from skymesh.agent.drivers.starfield import StarCatalogue, load_star_catalogue, render_star_field
from skymesh.core.clock import Clock
from skymesh.core.photometry import (
    FULL_WELL_E,
    PIXEL_SCALE_ARCSEC,
    READ_NOISE_E,
    SKY_MAG_ARCSEC2,
    electrons_per_s,
    zero_point_mag,
)

__all__ = ["SimulatedCamera", "VariableStar", "simple_fits"]


@dataclass(frozen=True)
class VariableStar:
    period_s: float
    amplitude_mag: float
    epoch: datetime | None = None

    def delta_mag(self, when: datetime) -> float:
        t0 = self.epoch.timestamp() if self.epoch else 0.0
        phase = ((when.timestamp() - t0) / self.period_s) % 1.0
        return self.amplitude_mag * math.sin(2.0 * math.pi * phase)


class SimulatedCamera(SimulatedDevice):
    """A CCD on a telescope of `aperture_m`: photometry follows from photon statistics."""

    name = "simulated"

    def __init__(self, clock: Clock, rng: np.random.Generator, params: Mapping[str, Any] | None = None) -> None:
        p = dict(params or {})
        self._clock = clock
        self._rng = rng
        self.aperture_m = float(p.get("aperture_m", 0.4))
        self.seeing_arcsec = float(p.get("seeing_arcsec", 1.8))
        self.sky_mag_arcsec2 = float(p.get("sky_mag_arcsec2", SKY_MAG_ARCSEC2))
        self.extinction_mag_per_airmass = float(p.get("extinction_mag_per_airmass", 0.15))
        self.read_noise_e = float(p.get("read_noise_e", READ_NOISE_E))
        self.pixel_scale_arcsec = float(p.get("pixel_scale_arcsec", PIXEL_SCALE_ARCSEC))
        self.full_well_e = float(p.get("full_well_e", FULL_WELL_E))
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
        """Magnitude giving 1 e-/s (`skymesh.core.photometry.zero_point_mag` of the aperture)."""
        return zero_point_mag(self.aperture_m)

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
        star_e = electrons_per_s(true_mag + self.extinction_mag_per_airmass * airmass, self.zero_point) * t
        aperture_radius_arcsec = 1.5 * seeing
        aperture_area_arcsec2 = math.pi * aperture_radius_arcsec**2
        sky_e = electrons_per_s(self.sky_mag_arcsec2, self.zero_point) * t * aperture_area_arcsec2
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
            sky_e_per_s_px=electrons_per_s(self.sky_mag_arcsec2, self.zero_point) * scale2,
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
