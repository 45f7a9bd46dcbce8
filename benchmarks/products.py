"""Data-products benchmark: frames reduced per second per core on a 2k x 2k synthetic frame, SkyMesh's pipeline
(`skymesh.products.reduce_frame`) against the same steps written as plain sep / photutils / astropy calls.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/products.py --size 2048 --runs 7

Both read the same FITS file from disk and do: sep background + extraction, photutils FWHM on the 10 brightest
stars, catalogue cone, match + `fit_wcs_from_points` (twice), sep aperture photometry, a sigma-clipped zero point
and the target's calibrated magnitude. The plain version skips what the pipeline adds (saturation and isolation
checks, the offset search, error-weighted zero point, quality flags, airmass). One process = one core. Prints a
Markdown table (worst, median and best of `--runs`, after one warm-up run each) and writes JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def plain_reduce(path: str, ra_deg: float, dec_deg: float) -> float:
    """The same steps with the reference libraries called directly; returns the target's calibrated V magnitude."""
    import astropy.units as u
    import numpy as np
    import sep
    from astropy.coordinates import SkyCoord
    from astropy.io import fits
    from astropy.stats import sigma_clipped_stats
    from astropy.table import Table
    from astropy.wcs import WCS
    from astropy.wcs.utils import fit_wcs_from_points
    from photutils.psf import fit_fwhm

    from skymesh.products.catalog import _shipped_path

    with fits.open(path) as hdul:
        data = np.ascontiguousarray(hdul[0].data, dtype=np.float64)
        header = hdul[0].header
    gain, exptime = float(header["GAIN"]), float(header["EXPTIME"])
    bkg = sep.Background(data)
    sub = data - bkg.back()
    objects = sep.extract(sub, 5.0, err=bkg.globalrms, minarea=5)
    objects = objects[np.argsort(-objects["flux"])]
    x, y = objects["x"], objects["y"]
    fwhm = float(np.median(fit_fwhm(sub, xypos=np.column_stack([x[:10], y[:10]]), fit_shape=7)))
    table = Table.read(_shipped_path(), format="ascii.ecsv")
    catalogue = SkyCoord(np.asarray(table["ra_deg"]) * u.deg, np.asarray(table["dec_deg"]) * u.deg)
    centre = SkyCoord(ra_deg * u.deg, dec_deg * u.deg)
    near = catalogue.separation(centre).deg < 0.3
    catalogue, mags = catalogue[near], np.asarray(table["mag_V"])[near]
    wcs = WCS(header)
    for radius_arcsec in (30.0, 3.0):
        idx, sep2d, _ = wcs.pixel_to_world(x, y).match_to_catalog_sky(catalogue)
        ok = sep2d.arcsec < radius_arcsec
        wcs = fit_wcs_from_points((x[ok], y[ok]), catalogue[idx[ok]], proj_point="center", projection="TAN")
    idx, sep2d, _ = wcs.pixel_to_world(x, y).match_to_catalog_sky(catalogue)
    ok = sep2d.arcsec < 1.5
    flux, _err, _flag = sep.sum_circle(sub, x[ok], y[ok], 2.0 * fwhm, err=bkg.globalrms, gain=gain)
    inst = -2.5 * np.log10(np.maximum(flux * gain, 1e-9) / exptime)
    _mean, zp, _std = sigma_clipped_stats(mags[idx[ok]] - inst, sigma=3.0)
    target = int(np.argmin(catalogue[idx[ok]].separation(centre).arcsec))
    return float(inst[target] + zp)


def _time(fn: Any, runs: int) -> tuple[list[float], Any]:
    fn()  # warm-up: imports, caches
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return times, result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--pixel-scale", type=float, default=0.6, help="arcsec per pixel")
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)

    from skymesh.products import FrameSpec, load_reference_catalogue, reduce_frame, render_frame

    catalogue = load_reference_catalogue()
    spec = FrameSpec(
        150.0,
        20.0,
        "sm-field-a",
        datetime(2026, 3, 1, 23, 0, tzinfo=UTC),
        width_px=args.size,
        height_px=args.size,
        pixel_scale_arcsec=args.pixel_scale,
    )
    frame = render_frame(spec, catalogue)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "frame.fits")
        frame.write(path)
        sm_times, sm = _time(lambda: reduce_frame(path, catalogue, target_ra_deg=150.0, target_dec_deg=20.0), args.runs)
        plain_times, plain_mag = _time(lambda: plain_reduce(path, 150.0, 20.0), args.runs)
    rows = []
    for name, times in (("skymesh.products.reduce_frame", sm_times), ("plain sep/photutils/astropy", plain_times)):
        rows.append(
            {
                "method": name,
                "worst_s": max(times),
                "median_s": statistics.median(times),
                "best_s": min(times),
                "frames_per_s_per_core_worst": 1.0 / max(times),
                "frames_per_s_per_core_best": 1.0 / min(times),
            }
        )
    ratio = statistics.median(plain_times) / statistics.median(sm_times)
    print(f"# {args.size} x {args.size} frame, {len(frame.star_id)} stars rendered, {args.runs} runs each\n")
    print("| method | worst | median | best | frames/s/core (worst..best) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['method']} | {r['worst_s']:.3f} s | {r['median_s']:.3f} s | {r['best_s']:.3f} s | "
            f"{r['frames_per_s_per_core_worst']:.2f}..{r['frames_per_s_per_core_best']:.2f} |"
        )
    print(f"\nratio (plain median / skymesh median): {ratio:.2f}")
    print(
        f"target V: skymesh {sm.magnitude:.4f} +- {sm.magnitude_error:.4f} (flags {list(sm.flags)}), "
        f"plain {plain_mag:.4f}, truth 13.0000; skymesh matched {sm.matched_stars} stars, "
        f"WCS RMS {sm.wcs_rms_arcsec:.3f} arcsec, FWHM {sm.fwhm_arcsec:.2f} arcsec"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "size": args.size,
                    "runs": args.runs,
                    "python": sys.version.split()[0],
                    "machine": platform.machine(),
                    "rows": rows,
                    "ratio_plain_over_skymesh": ratio,
                    "skymesh_magnitude": sm.magnitude,
                    "plain_magnitude": plain_mag,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
