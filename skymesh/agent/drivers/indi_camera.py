"""The INDI CCD driver: object name, filter wheel (set, waited for, read back), frame type and binning before each
exposure, then the first CCD1 BLOB that is really this exposure's (see `IndiCamera`). Built on `indi.IndiClient`.

Imports: stdlib, the INDI client, the agent's FITS reader and driver types.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from skymesh.agent.drivers.base import DriverError, DriverHealth, Exposure, ExposureRequest
from skymesh.agent.drivers.indi import IndiBlob, IndiClient
from skymesh.agent.fits import read_header

__all__ = ["IndiCamera"]

_FRAME_TYPES = ("LIGHT", "BIAS", "DARK", "FLAT")


class IndiCamera:
    """A CCD on INDI: sets the object name, filter (and waits for the wheel), frame type and binning before each
    exposure, then takes the first CCD1 BLOB that is really this exposure's: newer than the request, not a repeat of
    one already taken (a BLOB can arrive twice), and stamped (DATE-OBS) no earlier than the request."""

    name = "indi"

    def __init__(
        self,
        client: IndiClient,
        device: str = "CCD Simulator",
        *,
        readout_timeout_s: float = 60.0,
        filter_timeout_s: float = 30.0,
        focal_length_mm: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.client, self.device, self.readout_timeout_s = client, device, readout_timeout_s
        self.filter_timeout_s = filter_timeout_s
        self.focal_length_mm = focal_length_mm
        self._taken: set[str] = set()  # SHA-256 of every image already returned

    async def connect(self) -> None:
        await self.client.connect()
        await self._setup()
        self.client.add_setup(self._setup)

    async def _setup(self) -> None:
        await self.client.connect_device(self.device, wait_for_property="CCD_EXPOSURE")
        await self.client.enable_blob(self.device, "Also")

    async def close(self) -> None:
        await self.client.close()

    def filters(self) -> list[str]:
        """The wheel's slot names in slot order (slot n is FILTER_SLOT_NAME_n); empty without a wheel."""
        prop = self.client.get(self.device, "FILTER_NAME")
        if prop is None:
            return []
        slots = sorted((int(k.rsplit("_", 1)[1]), v) for k, v in prop.values.items() if k[-1].isdigit())
        return [name for _, name in slots]

    async def set_filter(self, wanted: str) -> str:
        """Turn the wheel to `wanted` (by name, case-insensitive) and wait until it stops there; returns the name
        of the filter in place as the wheel reports it ("" without a wheel)."""
        names = self.filters()
        slot_prop = self.client.get(self.device, "FILTER_SLOT")
        if slot_prop is None or not names:
            return ""
        matches = [i + 1 for i, n in enumerate(names) if n.casefold() == wanted.casefold()]
        if not matches:
            raise DriverError(f"{self.device}: filter {wanted!r} is not in the wheel ({', '.join(names)})")
        slot = matches[0]
        if round(slot_prop.number("FILTER_SLOT_VALUE")) != slot or slot_prop.state == "Busy":
            await self.client.new_number(self.device, "FILTER_SLOT", {"FILTER_SLOT_VALUE": float(slot)})

            def stopped() -> bool:
                prop = self.client.get(self.device, "FILTER_SLOT")
                if prop is None:
                    return False
                return prop.state == "Alert" or (
                    prop.state != "Busy" and round(prop.number("FILTER_SLOT_VALUE")) == slot
                )

            await self.client.wait_for(stopped, self.filter_timeout_s, f"{self.device} filter {wanted}")
        prop = self.client.get(self.device, "FILTER_SLOT")
        if prop is None or prop.state == "Alert":
            raise DriverError(f"{self.device}: the filter wheel failed to reach {wanted!r}")
        in_place = round(prop.number("FILTER_SLOT_VALUE"))
        return names[in_place - 1] if 1 <= in_place <= len(names) else ""

    async def expose(self, request: ExposureRequest) -> Exposure:
        await self.client.ensure()
        if self.client.get(self.device, "FITS_HEADER") is not None:
            observer = request.station_id or "SkyMesh"
            await self.client.new_text(
                self.device, "FITS_HEADER", {"FITS_OBJECT": request.target_name, "FITS_OBSERVER": observer}
            )
        filter_in_place = await self.set_filter(request.filter) if request.filter else ""
        frame = request.frame_type.upper()
        if frame not in _FRAME_TYPES:
            raise DriverError(f"unknown frame type {request.frame_type!r} (one of {', '.join(_FRAME_TYPES)})")
        if self.client.get(self.device, "CCD_FRAME_TYPE") is not None:
            await self.client.new_switch(
                self.device, "CCD_FRAME_TYPE", {f"FRAME_{t}": t == frame for t in _FRAME_TYPES}
            )
        if self.client.get(self.device, "CCD_BINNING") is not None:
            b = float(request.binning)
            await self.client.new_number(self.device, "CCD_BINNING", {"HOR_BIN": b, "VER_BIN": b})
        generation = self.client.blob_generation
        requested_at = datetime.now(UTC)
        await self.client.new_number(self.device, "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": request.duration_s})

        def fresh() -> IndiBlob | None:
            history = self.client.blob_history.get((self.device, "CCD1"), ())
            return next((b for b in history if b.generation > generation and self._is_new(b, requested_at)), None)

        def ready() -> bool:
            prop = self.client.get(self.device, "CCD_EXPOSURE")
            return fresh() is not None or (prop is not None and prop.state == "Alert")

        await self.client.wait_for(ready, request.duration_s + self.readout_timeout_s, f"{self.device} image")
        blob = fresh()
        if blob is None:
            raise DriverError(f"{self.device} failed the exposure (CCD_EXPOSURE Alert)")
        self._taken.add(hashlib.sha256(blob.data).hexdigest())
        header = read_header(blob.data)
        start = _fits_time(header.get("DATE-OBS")) or request.start
        taken = header.get("EXPTIME")
        width, height = header.get("NAXIS1"), header.get("NAXIS2")
        return Exposure(
            start=start,
            duration_s=float(taken) if isinstance(taken, int | float) else request.duration_s,
            data=blob.data,
            data_format=blob.format or ".fits",
            headers={"INSTRUME": self.device, "EXPTIME": f"{request.duration_s:.3f}"},
            filter_in_place=filter_in_place,
            pixel_scale_arcsec=self._pixel_scale_arcsec(request.binning),
            width_px=width if isinstance(width, int) else 0,
            height_px=height if isinstance(height, int) else 0,
        )

    def _is_new(self, blob: IndiBlob, requested_at: datetime) -> bool:
        """Not a repeat of an image already taken, and not stamped before this exposure was asked for."""
        if hashlib.sha256(blob.data).hexdigest() in self._taken:
            return False
        try:
            stamped = _fits_time(read_header(blob.data).get("DATE-OBS"))
        except DriverError:
            return True  # not FITS: nothing to check the time against
        return stamped is None or stamped >= requested_at - _CLOCK_SLACK

    def _pixel_scale_arcsec(self, binning: int) -> float:
        info = self.client.get(self.device, "CCD_INFO")
        focal_mm = self.focal_length_mm()
        if info is None or focal_mm <= 0:
            return 0.0
        try:
            pixel_um = info.number("CCD_PIXEL_SIZE")
        except DriverError:
            return 0.0
        return 206.264806 * pixel_um * binning / focal_mm

    def health(self) -> DriverHealth:
        return self.client.health()

    async def temperature_c(self) -> float:
        """Also the idle station's reconnect: telemetry asks every sample, `ensure` paces it with its backoff."""
        await self.client.ensure()
        prop = self.client.get(self.device, "CCD_TEMPERATURE")
        if prop is None:
            return math.nan
        return prop.number("CCD_TEMPERATURE_VALUE")


# indiserver and the agent share the host's clock; DATE-OBS is whole seconds on some drivers.
_CLOCK_SLACK = timedelta(seconds=2.0)


def _fits_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
