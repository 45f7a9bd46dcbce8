"""Minimal FITS primary-header reading and editing, and a writer for 2-D images, for the station agent.

The agent may not import astropy (a Raspberry Pi agent), yet it must add its own keywords to the FITS a camera
driver produced (INDI sends a complete file) and write one from raw pixels (Alpaca's `imagearray`). FITS headers are
80-character ASCII cards in 2880-byte blocks, ended by `END` (FITS Standard 4.0, sections 3-4); that is all this
module handles: typed values (logical, integer, float, string with '' escaping), one primary HDU, data untouched.

SkyMesh's keywords (`skymesh_cards`) are standard where a standard exists (DATE-OBS, EXPTIME, FILTER, OBJECT, RA, DEC,
SITELAT, SITELONG, EQUINOX, RADESYS, CTYPEn/CRVALn/CRPIXn/CDELTn: the WCS hint) and SM* otherwise.

Imports: stdlib and numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from skymesh.agent.drivers.base import DriverError

__all__ = [
    "DRIVER_WINS",
    "CardValue",
    "FitsHeader",
    "WcsHint",
    "read_header",
    "skymesh_cards",
    "update_header",
    "write_image",
]

BLOCK = 2880
CARD = 80
CardValue = bool | int | float | str


@dataclass(frozen=True)
class FitsHeader:
    cards: list[tuple[str, CardValue | None, str]]  # (keyword, value or None for commentary, comment)
    data_offset: int  # bytes from the start of the file to the data

    def get(self, key: str) -> CardValue | None:
        for k, v, _ in self.cards:
            if k == key:
                return v
        return None


def _parse_value(text: str) -> tuple[CardValue | None, str]:
    text = text.strip()
    if text.startswith("'"):
        out, i = [], 1
        while i < len(text):
            if text[i] == "'":
                if i + 1 < len(text) and text[i + 1] == "'":
                    out.append("'")
                    i += 2
                    continue
                break
            out.append(text[i])
            i += 1
        rest = text[i + 1 :]
        comment = rest.split("/", 1)[1].strip() if "/" in rest else ""
        return "".join(out).rstrip(), comment
    value, _, comment = text.partition("/")
    value = value.strip()
    comment = comment.strip()
    if value in ("T", "F"):
        return value == "T", comment
    try:
        return int(value), comment
    except ValueError:
        pass
    try:
        return float(value.replace("D", "E")), comment
    except ValueError:
        return (value or None), comment


def read_header(data: bytes) -> FitsHeader:
    """The primary header's cards; raises DriverError when `data` is not FITS."""
    if not data.startswith(b"SIMPLE  ="):
        raise DriverError("not a FITS file (no SIMPLE card)")
    cards: list[tuple[str, CardValue | None, str]] = []
    offset = 0
    while offset + CARD <= len(data):
        card = data[offset : offset + CARD].decode("ascii", "replace")
        offset += CARD
        key = card[:8].strip()
        if key == "END":
            return FitsHeader(cards, offset + (-offset % BLOCK))
        if card[8:10] == "= ":
            value, comment = _parse_value(card[10:])
            cards.append((key, value, comment))
        elif key:
            cards.append((key, None, card[8:].rstrip()))
    raise DriverError("FITS header has no END card")


def _format(key: str, value: CardValue | None, comment: str) -> str:
    if value is None:
        return f"{key:<8}{comment}"[:CARD].ljust(CARD)
    if isinstance(value, bool):
        text = f"{'T' if value else 'F':>20}"
    elif isinstance(value, int):
        text = f"{value:>20}"
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"FITS card {key}: {value} is not representable")
        text = f"{value:>20.12G}"
    else:
        escaped = value.replace("'", "''")[:68]
        text = f"'{escaped:<8}'".ljust(20)
    card = f"{key:<8}= {text}"
    if comment:
        card += f" / {comment}"
    return card[:CARD].ljust(CARD)


def _encode(cards: Iterable[tuple[str, CardValue | None, str]]) -> bytes:
    body = "".join(_format(k, v, c) for k, v, c in cards) + "END".ljust(CARD)
    body += " " * (-len(body) % BLOCK)
    return body.encode("ascii", "replace")


def update_header(data: bytes, updates: Mapping[str, tuple[CardValue, str]], *, keep: Iterable[str] = ()) -> bytes:
    """`data` with its primary header's cards set from `updates` (keyword: (value, comment)), data untouched.

    Keywords in `keep` are only added when absent (the driver's own value wins), e.g. a driver's WCS.
    """
    header = read_header(data)
    keep_set = set(keep)
    present = {k for k, _, _ in header.cards}
    cards: list[tuple[str, CardValue | None, str]] = []
    for key, value, comment in header.cards:
        if key in updates and key not in keep_set:
            new_value, new_comment = updates[key]
            cards.append((key, new_value, new_comment or comment))
        else:
            cards.append((key, value, comment))
    cards += [(k, v, c) for k, (v, c) in updates.items() if k not in present]
    return _encode(cards) + data[header.data_offset :]


def write_image(image: npt.NDArray[np.generic], cards: Mapping[str, tuple[CardValue, str]]) -> bytes:
    """A primary-HDU FITS of a 2-D image (rows = NAXIS2). Integer images of up to 16 bits unsigned are stored as
    BITPIX 16 with BZERO 32768, wider integers as BITPIX 32 (BZERO 2**31 when unsigned), floats as BITPIX -32."""
    array = np.asarray(image)
    if array.ndim != 2:
        raise ValueError("write_image wants a 2-D image")
    bzero = 0
    if np.issubdtype(array.dtype, np.floating):
        bitpix, stored = -32, array.astype(">f4")
    elif array.size == 0 or (array.min() >= 0 and array.max() <= 65535):
        bitpix, bzero = 16, 32768
        stored = (array.astype(np.int32) - 32768).astype(">i2")
    elif array.min() >= 0:
        bitpix, bzero = 32, 2**31
        stored = (array.astype(np.int64) - 2**31).astype(">i4")
    else:
        bitpix, stored = 32, array.astype(">i4")
    head: list[tuple[str, CardValue | None, str]] = [
        ("SIMPLE", True, "conforms to FITS standard"),
        ("BITPIX", bitpix, ""),
        ("NAXIS", 2, ""),
        ("NAXIS1", int(array.shape[1]), "columns"),
        ("NAXIS2", int(array.shape[0]), "rows"),
    ]
    if bzero:
        head += [("BZERO", bzero, "unsigned data"), ("BSCALE", 1, "")]
    head += [(k, v, c) for k, (v, c) in cards.items()]
    payload = stored.tobytes()
    return _encode(head) + payload + b"\0" * (-len(payload) % BLOCK)


@dataclass(frozen=True)
class WcsHint:
    """Where the image centre points (J2000) and how big a pixel is: enough for a plate solver to start."""

    ra_deg: float
    dec_deg: float
    width_px: int
    height_px: int
    pixel_scale_arcsec: float  # 0: unknown (no CDELT written)


def skymesh_cards(
    *,
    job_id: str,
    station_id: str,
    target_name: str,
    requested_filter: str,
    date_obs: datetime,
    exposure_s: float,
    site_latitude_deg: float,
    site_longitude_deg: float,
    site_altitude_m: float,
    wcs: WcsHint | None,
) -> dict[str, tuple[CardValue, str]]:
    """The keywords SkyMesh puts into every FITS it keeps (INDI's and Alpaca's alike)."""
    cards: dict[str, tuple[CardValue, str]] = {
        "DATE-OBS": (date_obs.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3], "UTC start of exposure"),
        "EXPTIME": (round(exposure_s, 6), "[s] exposure time"),
        "OBJECT": (target_name[:68], "target name"),
        "SITELAT": (round(site_latitude_deg, 6), "[deg] site latitude"),
        "SITELONG": (round(site_longitude_deg, 6), "[deg] site longitude, east positive"),
        "SITEELEV": (round(site_altitude_m, 1), "[m] site elevation"),
        "SMJOBID": (job_id[:68], "SkyMesh job id"),
        "SMSTATN": (station_id[:68], "SkyMesh station id"),
        "SMREQFLT": (requested_filter[:68], "filter requested by the job"),
    }
    if wcs is not None:
        cards.update(
            {
                "RA": (round(wcs.ra_deg, 6), "[deg] J2000 RA of the mount"),
                "DEC": (round(wcs.dec_deg, 6), "[deg] J2000 Dec of the mount"),
                "EQUINOX": (2000.0, ""),
                "RADESYS": ("ICRS", ""),
                "CTYPE1": ("RA---TAN", "WCS hint from the mount position"),
                "CTYPE2": ("DEC--TAN", ""),
                "CRVAL1": (round(wcs.ra_deg % 360.0, 6), "[deg]"),
                "CRVAL2": (round(wcs.dec_deg, 6), "[deg]"),
                "CRPIX1": ((wcs.width_px + 1) / 2.0, ""),
                "CRPIX2": ((wcs.height_px + 1) / 2.0, ""),
            }
        )
        if wcs.pixel_scale_arcsec > 0:
            cards["CDELT1"] = (-wcs.pixel_scale_arcsec / 3600.0, "[deg/px] RA increases to the left")
            cards["CDELT2"] = (wcs.pixel_scale_arcsec / 3600.0, "[deg/px]")
    return cards


# Keywords where the driver's own value wins when it wrote one: what the hardware did (start, exposure) and a
# driver's WCS (a real solution beats a hint). RA/DEC too: some drivers write them sexagesimal.
DRIVER_WINS = (
    "DATE-OBS",
    "EXPTIME",
    "RA",
    "DEC",
    "EQUINOX",
    "RADESYS",
    "CTYPE1",
    "CTYPE2",
    "CRVAL1",
    "CRVAL2",
    "CRPIX1",
    "CRPIX2",
    "CDELT1",
    "CDELT2",
)
