"""Data products for telescope frames, run by the server on every uploaded FITS file: source extraction and
aperture photometry (sep), the PSF width (a Moffat fit, scipy), astrometry against a reference catalogue (astropy WCS
fitting), differential photometry with a zero point and its error, quality flags; plus synthetic star fields with
known truth for tests and benchmarks.

A server-side library: it needs astropy, sep, photutils and scipy (the `products` extra) and must never be imported by
the station agent. It imports `skymesh.astro` and `skymesh.core` only; never grpc, protobuf, SQLAlchemy or a service.
The names below are loaded on first use, so `skymesh.products.quality` (standard library only) can be imported by a
process that never reduces a frame itself (the server validating its thresholds) without loading astropy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from skymesh.products.catalog import ReferenceCatalogue, load_reference_catalogue
    from skymesh.products.pipeline import FrameReduction, StarPhotometry, reduce_frame
    from skymesh.products.quality import FLAGS, QualityThresholds
    from skymesh.products.synth import FrameSpec, RenderedFrame, broken, render_frame

__all__ = [
    "FLAGS",
    "FrameReduction",
    "FrameSpec",
    "QualityThresholds",
    "ReferenceCatalogue",
    "RenderedFrame",
    "StarPhotometry",
    "broken",
    "load_reference_catalogue",
    "reduce_frame",
    "render_frame",
]

_HOME = {
    "ReferenceCatalogue": "catalog",
    "load_reference_catalogue": "catalog",
    "FrameReduction": "pipeline",
    "StarPhotometry": "pipeline",
    "reduce_frame": "pipeline",
    "FLAGS": "quality",
    "QualityThresholds": "quality",
    "FrameSpec": "synth",
    "RenderedFrame": "synth",
    "broken": "synth",
    "render_frame": "synth",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'skymesh.products' has no attribute {name!r}")
    return getattr(importlib.import_module(f"skymesh.products.{_HOME[name]}"), name)
