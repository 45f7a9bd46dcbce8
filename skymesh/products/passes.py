"""Pass products for ground stations: a SigMF IQ recording of a pass in, signal quality out.

For every capture (a snippet with its UTC time and the frequency the radio was tuned to): the spectrum (Hann window,
FFT), the strongest bin refined by parabolic interpolation, its SNR in the link bandwidth (tone power over the noise
power per sample scaled to `bandwidth_hz`; the noise from the median bin, which a carrier does not move), and the
predicted downlink frequency from the TLE at that time (`skymesh.astro`: SGP4, topocentric range rate, Doppler).
Then: SNR against elevation, the Doppler residual (measured minus predicted; a wrong TLE or a wrong clock shows as an
offset), a quality score (the fraction of captures where the carrier is where the orbit says), flags, and a
waterfall PNG (matplotlib).

Imports: numpy, sigmf, matplotlib (Agg), `skymesh.astro`; server side only.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from skymesh.astro.doppler import received_frequency_hz
from skymesh.astro.frames import datetime_to_jd
from skymesh.astro.propagate import SatelliteBatch, look_angles
from skymesh.astro.tle import parse_tle
from skymesh.core.errors import SkyMeshError

__all__ = ["PASS_FLAGS", "PassReduction", "PassThresholds", "analyze_pass"]

PASS_FLAGS = ("NO_SIGNAL", "LOW_SNR", "DOPPLER_OFFSET", "SNR_NOT_WITH_ELEVATION")
_DETECT_BIN_SNR = 20.0  # peak over mean noise in one bin: P(false alarm) ~ 2048 e^-20 per capture


@dataclass(frozen=True)
class PassThresholds:
    min_peak_snr_db: float = 10.0
    max_doppler_offset_hz: float = 300.0
    min_snr_elevation_correlation: float = 0.0  # SNR should rise with elevation; below this it is flagged
    bandwidth_hz: float = 10_000.0  # the link bandwidth SNR is quoted in
    failing: tuple[str, ...] = ("NO_SIGNAL", "LOW_SNR", "DOPPLER_OFFSET")


@dataclass(frozen=True)
class PassReduction:
    error: str = ""
    captures: int = 0
    detected: int = 0
    max_elevation_deg: float = math.nan
    peak_snr_db: float = math.nan
    mean_snr_db: float = math.nan
    snr_elevation_correlation: float = math.nan
    doppler_offset_hz: float = math.nan  # median of measured minus predicted, over the detected captures
    doppler_rms_hz: float = math.nan
    quality_score: float = 0.0  # fraction of captures with the carrier within max_doppler_offset_hz of prediction
    flags: tuple[str, ...] = ()
    good: bool = False
    waterfall_path: str = ""
    # Per capture (for checks and plots).
    seconds_from_start: tuple[float, ...] = ()
    elevation_deg: tuple[float, ...] = ()
    snr_db: tuple[float, ...] = ()
    residual_hz: tuple[float, ...] = ()


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _spectrum(samples: NDArray[np.complex64], rate_hz: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    n = len(samples)
    window = np.hanning(n)
    power = np.abs(np.fft.fftshift(np.fft.fft(samples * window))) ** 2
    freqs = np.fft.fftshift(np.fft.fftfreq(n, 1.0 / rate_hz))
    return np.asarray(freqs, dtype=np.float64), np.asarray(power, dtype=np.float64)


def _peak(freqs: NDArray[np.float64], power: NDArray[np.float64]) -> tuple[float, float]:
    """(frequency of the strongest bin refined by a parabola through its log-power neighbours, its power)."""
    k = int(np.argmax(power))
    if 0 < k < len(power) - 1:
        a, b, c = np.log(power[k - 1 : k + 2] + 1e-30)
        denom = a - 2 * b + c
        shift = 0.5 * (a - c) / denom if denom != 0 else 0.0
        return float(freqs[k] + shift * (freqs[1] - freqs[0])), float(power[k])
    return float(freqs[k]), float(power[k])


def analyze_pass(
    path: str | Path,
    *,
    tle_line1: str | None = None,
    tle_line2: str | None = None,
    latitude_deg: float | None = None,
    longitude_deg: float | None = None,
    altitude_m: float | None = None,
    thresholds: PassThresholds | None = None,
    waterfall_path: str | Path | None = None,
) -> PassReduction:
    """Analyse a SigMF archive. The TLE and station default to those in the recording's metadata (the server passes
    its own, so an agent flying on stale elements is caught)."""
    from sigmf import sigmffile

    limits = thresholds or PassThresholds()
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(path)
        if not archive.name.endswith(".sigmf"):
            # sigmf recognises an archive by its extension; uploads are stored under server-generated names.
            archive = Path(tmp) / "recording.sigmf"
            archive.symlink_to(Path(path).resolve())
        try:
            recording = sigmffile.fromarchive(str(archive), dir=str(Path(tmp) / "extracted"))
        except Exception as exc:  # sigmf raises its own, tarfile's and json's errors for a bad archive
            return PassReduction(error=f"not a readable SigMF archive: {type(exc).__name__}: {exc}")
        info = recording.get_global_info()
        rate_hz = float(info.get("core:sample_rate", 0.0))
        nominal_hz = float(info.get("skymesh:nominal_frequency_hz", 0.0))
        line1 = tle_line1 or str(info.get("skymesh:tle_line1", ""))
        line2 = tle_line2 or str(info.get("skymesh:tle_line2", ""))
        point = (info.get("core:geolocation") or {}).get("coordinates", [None, None, 0.0])
        lat = latitude_deg if latitude_deg is not None else point[1]
        lon = longitude_deg if longitude_deg is not None else point[0]
        alt = altitude_m if altitude_m is not None else (point[2] if len(point) > 2 else 0.0)
        if rate_hz <= 0 or nominal_hz <= 0 or not line1 or lat is None or lon is None:
            return PassReduction(error="the recording lacks its sample rate, nominal frequency, TLE or station")
        captures = recording.get_captures()
        if not captures:
            return PassReduction(error="the recording has no captures")
        times, tuned, measured, snr_db, peak_bin, rows = [], [], [], [], [], []
        for i, capture in enumerate(captures):
            samples = np.asarray(recording.read_samples_in_capture(i), dtype=np.complex64)
            freqs, power = _spectrum(samples, rate_hz)
            offset_hz, peak = _peak(freqs, power)
            window = np.hanning(len(samples))
            # Exponential bins: mean = median / ln 2. A silent (all-zero) capture must not divide by zero.
            noise_bin = max(float(np.median(power)) / math.log(2.0), 1e-30)
            tone = max(peak - noise_bin, 1e-30) / float(np.sum(window)) ** 2
            noise_per_sample = noise_bin / float(np.sum(window**2))
            snr_db.append(10.0 * math.log10(tone / (noise_per_sample * limits.bandwidth_hz / rate_hz)))
            peak_bin.append(peak / noise_bin)
            times.append(_parse_time(str(capture["core:datetime"])))
            tuned.append(float(capture["core:frequency"]))
            measured.append(float(capture["core:frequency"]) + offset_hz)
            rows.append(10.0 * np.log10(power / noise_bin + 1e-12))
    try:
        tle = parse_tle(line1, line2)
    except (SkyMeshError, ValueError) as exc:
        return PassReduction(error=f"bad TLE: {exc}")
    jd = np.array([datetime_to_jd(t) for t in times])
    angles = look_angles(SatelliteBatch([tle]), [lat], [lon], [alt], jd)
    elevation = angles.elevation_deg[0, 0]
    predicted = received_frequency_hz(nominal_hz, angles.range_rate_km_s[0, 0])
    residual = np.asarray(measured) - predicted
    snr = np.asarray(snr_db)
    detected = np.asarray(peak_bin) > _DETECT_BIN_SNR
    n_det = int(np.count_nonzero(detected))
    offset = float(np.median(residual[detected])) if n_det else math.nan
    rms = float(np.std(residual[detected] - offset)) if n_det > 1 else math.nan
    corr = math.nan
    if n_det >= 3 and np.ptp(elevation[detected]) > 0 and np.ptp(snr[detected]) > 0:
        corr = float(np.corrcoef(elevation[detected], snr[detected])[0, 1])
    on_track = detected & (np.abs(residual) <= limits.max_doppler_offset_hz)
    flags: list[str] = []
    if n_det == 0:
        flags.append("NO_SIGNAL")
    elif float(snr[detected].max()) < limits.min_peak_snr_db:
        flags.append("LOW_SNR")
    if n_det and abs(offset) > limits.max_doppler_offset_hz:
        flags.append("DOPPLER_OFFSET")
    if math.isfinite(corr) and corr < limits.min_snr_elevation_correlation:
        flags.append("SNR_NOT_WITH_ELEVATION")
    start = times[0]
    seconds = np.array([(t - start).total_seconds() for t in times])
    plot = ""
    if waterfall_path is not None:
        plot = _waterfall(Path(waterfall_path), np.vstack(rows), rate_hz, seconds, elevation, snr, detected, residual)
    return PassReduction(
        captures=len(times),
        detected=n_det,
        max_elevation_deg=float(np.nanmax(elevation)),
        peak_snr_db=float(snr[detected].max()) if n_det else math.nan,
        mean_snr_db=float(snr[detected].mean()) if n_det else math.nan,
        snr_elevation_correlation=corr,
        doppler_offset_hz=offset,
        doppler_rms_hz=rms,
        quality_score=float(np.count_nonzero(on_track)) / len(times),
        flags=tuple(flags),
        good=not any(f in limits.failing for f in flags),
        waterfall_path=plot,
        seconds_from_start=tuple(float(s) for s in seconds),
        elevation_deg=tuple(float(e) for e in elevation),
        snr_db=tuple(float(s) for s in snr),
        residual_hz=tuple(float(r) for r in residual),
    )


def _waterfall(
    path: Path,
    rows: NDArray[np.float64],
    rate_hz: float,
    seconds: NDArray[np.float64],
    elevation: NDArray[np.float64],
    snr: NDArray[np.float64],
    detected: NDArray[np.bool_],
    residual: NDArray[np.float64],
) -> str:
    """Waterfall around the tuned (Doppler-corrected) frequency, with SNR against elevation beside it."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5), dpi=100)
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    span = [-rate_hz / 2000.0, rate_hz / 2000.0, seconds[-1] if len(seconds) else 1.0, 0.0]
    image = ax.imshow(rows, aspect="auto", extent=span, cmap="viridis", vmin=0.0, vmax=max(float(rows.max()), 1.0))
    ax.plot(residual[detected] / 1000.0, seconds[detected], "r.", markersize=3, label="carrier - server's prediction")
    ax.set_xlabel("offset from the tuned (Doppler-corrected) frequency (kHz)")
    ax.set_ylabel("seconds since the first capture")
    ax.legend(loc="lower right", fontsize=8)
    fig.colorbar(image, ax=ax, label="power over noise (dB)")
    ax2.plot(elevation[detected], snr[detected], "k.", markersize=4)
    ax2.set_xlabel("elevation (deg)")
    ax2.set_ylabel("SNR in the link bandwidth (dB)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), format="png")
    return str(path)
