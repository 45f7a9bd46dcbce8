"""ASCOM Alpaca drivers (REST: `{url}/api/v1/{devicetype}/{n}/{method}`), a small urllib client in a thread.

GET reads properties, PUT with form data runs actions; every reply is JSON with `Value`, `ErrorNumber` and
`ErrorMessage`, and every request carries `ClientID` and `ClientTransactionID` (ASCOM Alpaca API 1.0).

- `AlpacaMount` connects, reads `EquatorialSystem` (1 topocentric: coordinates of date, so J2000 targets are
  precessed with `skymesh.astro.celestial`, IAU 1976; 2 J2000: as given; 0 "other": taken as J2000 and said so in
  the log; 3 J2050 and 4 B1950 are refused), unparks when parked and `CanUnpark`, sets tracking only when
  `CanSetTracking`, slews with `SlewToCoordinatesAsync` and polls `Slewing` when `CanSlewAsync`, else the synchronous
  call.
- `AlpacaCamera` runs the camera state machine (CameraState 0 idle ... 5 error): an error state fails at once, not
  after a timeout; a busy camera is waited for; `StartExposure` (Light false for DARK and BIAS frames) and `ImageReady`
  are polled in wall time with a deadline (the exposure is aborted when it passes). The image is downloaded from
  `imagearray` as ImageBytes (`Accept: application/imagebytes`; JSON when the device only speaks that) and written as
  FITS with `skymesh.agent.fits` (DATE-OBS, EXPTIME from `LastExposureStartTime`/`LastExposureDuration`, binning,
  pixel size, filter); the executor adds SkyMesh's keywords as for INDI. An optional Alpaca filter wheel
  (`filterwheel_device` in the camera's params) is turned and read back.

Hardware runs in wall time: polls sleep on the event loop's clock, never on the agent's (possibly simulated) clock.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from skymesh.agent.drivers.base import DriverError, DriverHealth, Exposure, ExposureRequest, HealthTracker
from skymesh.agent.fits import CardValue, write_image
from skymesh.astro.celestial import precess_from_j2000
from skymesh.astro.frames import datetime_to_jd
from skymesh.core.clock import Clock

__all__ = ["AlpacaCamera", "AlpacaClient", "AlpacaFocuser", "AlpacaMount", "parse_imagebytes"]

_log = logging.getLogger(__name__)

_POLL_S = 0.2
_CAMERA_STATES = {0: "idle", 1: "waiting", 2: "exposing", 3: "reading", 4: "download", 5: "error"}
# ImageBytes TransmissionElementType (ASCOM Alpaca API, "ImageBytes")
_ELEMENT_TYPES: dict[int, str] = {
    1: "<i2",
    2: "<i4",
    3: "<f8",
    4: "<f4",
    5: "<u8",
    6: "u1",
    7: "<i8",
    8: "<u2",
    9: "<u4",
}
_J2050_JD = 2469807.5


class AlpacaClient:
    def __init__(self, url: str, device_type: str, device_number: int = 0, *, timeout_s: float = 10.0) -> None:
        self.base = f"{url.rstrip('/')}/api/v1/{device_type}/{device_number}"
        self.timeout_s = timeout_s
        self.client_id = 4242
        self._transactions = itertools.count(1)
        self._health = HealthTracker()
        self._reachable = False

    def health(self) -> DriverHealth:
        return self._health.snapshot(self._reachable)

    def _request(self, method: str, name: str, params: dict[str, Any] | None, accept: str) -> tuple[str, bytes]:
        fields = {"ClientID": str(self.client_id), "ClientTransactionID": str(next(self._transactions))}
        fields.update({k: str(v) for k, v in (params or {}).items()})
        encoded = urllib.parse.urlencode(fields)
        url = f"{self.base}/{name.lower()}"
        headers = {"Accept": accept}
        if method == "GET":
            request = urllib.request.Request(f"{url}?{encoded}", method="GET", headers=headers)
        else:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            request = urllib.request.Request(url, data=encoded.encode(), method="PUT", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                content_type = response.headers.get("Content-Type", "")
                body = response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self._reachable = False
            self._health.failed(f"{method} {name}: {exc}")
            raise DriverError(f"Alpaca {method} {url} failed: {exc}") from exc
        self._reachable = True
        self._health.ok()
        return content_type, body

    def _call(self, method: str, name: str, params: dict[str, Any] | None) -> Any:
        _, raw = self._request(method, name, params, "application/json")
        try:
            body = json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            raise DriverError(f"Alpaca {name}: reply is not JSON") from exc
        if int(body.get("ErrorNumber", 0)):
            raise DriverError(f"Alpaca {name} error {body['ErrorNumber']}: {body.get('ErrorMessage', '')}")
        return body.get("Value")

    async def get(self, name: str, **params: Any) -> Any:
        return await asyncio.to_thread(self._call, "GET", name, params)

    async def put(self, name: str, **params: Any) -> Any:
        return await asyncio.to_thread(self._call, "PUT", name, params)

    async def get_image(self) -> npt.NDArray[np.generic]:
        """`imagearray` as a (rows, columns) array: ImageBytes when offered, else the JSON array."""

        def fetch() -> npt.NDArray[np.generic]:
            content_type, raw = self._request("GET", "imagearray", None, "application/imagebytes, application/json")
            if "imagebytes" in content_type:
                return parse_imagebytes(raw)
            body = json.loads(raw.decode("utf-8"))
            if int(body.get("ErrorNumber", 0)):
                raise DriverError(f"Alpaca imagearray error {body['ErrorNumber']}: {body.get('ErrorMessage', '')}")
            return np.asarray(body["Value"]).T  # Alpaca arrays are [x][y]

        return await asyncio.to_thread(fetch)


def parse_imagebytes(raw: bytes) -> npt.NDArray[np.generic]:
    """An Alpaca ImageBytes reply as a (rows, columns) array (the wire order is x slowest, as ImageArray[x][y])."""
    if len(raw) < 44:
        raise DriverError(f"ImageBytes reply too short ({len(raw)} bytes)")
    (version, error, _client, _server, start, _image_type, wire_type, rank, dim1, dim2, dim3) = np.frombuffer(
        raw[:44], dtype="<i4"
    ).tolist()
    if error:
        message = raw[start:].decode("utf-8", "replace") if start else ""
        raise DriverError(f"Alpaca imagearray error {error}: {message}")
    if version != 1 or rank != 2 or dim3 not in (0, 1):
        raise DriverError(f"unsupported ImageBytes (version {version}, rank {rank}, planes {dim3})")
    dtype = _ELEMENT_TYPES.get(wire_type)
    if dtype is None:
        raise DriverError(f"unsupported ImageBytes element type {wire_type}")
    data = np.frombuffer(raw, dtype=dtype, offset=start, count=dim1 * dim2)
    return data.reshape(dim1, dim2).T


class AlpacaMount:
    name = "alpaca"

    def __init__(self, url: str, clock: Clock, device_number: int = 0, *, slew_timeout_s: float = 120.0) -> None:
        self.client = AlpacaClient(url, "telescope", device_number)
        self._clock = clock
        self.slew_timeout_s = slew_timeout_s
        self.equatorial_system = 2
        self.can_slew_async = True
        self.can_set_tracking = True
        self.focal_length_m = 0.0

    @property
    def equinox_of_date(self) -> bool:
        return self.equatorial_system == 1

    async def connect(self) -> None:
        await self.client.put("connected", Connected=True)
        self.equatorial_system = int(await self.client.get("equatorialsystem"))
        if self.equatorial_system == 0:
            _log.warning("Alpaca mount uses an unnamed equatorial system (0): sending J2000 coordinates")
        elif self.equatorial_system not in (1, 2, 3):
            raise DriverError(f"Alpaca mount equatorial system {self.equatorial_system} (B1950?) is not supported")
        self.can_slew_async = bool(await self.client.get("canslewasync"))
        self.can_set_tracking = bool(await self.client.get("cansettracking"))
        try:
            self.focal_length_m = float(await self.client.get("focallength"))
        except DriverError:
            self.focal_length_m = 0.0
        if await self.client.get("atpark"):
            if not await self.client.get("canunpark"):
                raise DriverError("Alpaca mount is parked and cannot unpark")
            await self.client.put("unpark")
            _log.info("Alpaca mount unparked")

    def health(self) -> DriverHealth:
        return self.client.health()

    async def close(self) -> None:
        return None

    def _to_mount(self, ra_deg: float, dec_deg: float) -> tuple[float, float]:
        if self.equatorial_system == 1:
            jd = datetime_to_jd(datetime.now(UTC))
        elif self.equatorial_system == 3:
            jd = _J2050_JD
        else:
            return ra_deg % 360.0, dec_deg
        ra, dec = precess_from_j2000([ra_deg], [dec_deg], [jd])
        return float(ra[0]) % 360.0, float(dec[0])

    async def slew(self, ra_deg: float, dec_deg: float) -> None:
        """Slew to J2000 RA/Dec (converted to the mount's EquatorialSystem) and track."""
        if await self.client.get("atpark"):
            await self.client.put("unpark")
        if self.can_set_tracking:
            await self.client.put("tracking", Tracking=True)
        ra, dec = self._to_mount(ra_deg, dec_deg)
        if not self.can_slew_async:
            await self.client.put("slewtocoordinates", RightAscension=ra / 15.0, Declination=dec)
            return
        await self.client.put("slewtocoordinatesasync", RightAscension=ra / 15.0, Declination=dec)
        deadline = time.monotonic() + self.slew_timeout_s
        while await self.client.get("slewing"):
            if time.monotonic() > deadline:
                await self.client.put("abortslew")
                raise DriverError(f"Alpaca mount still slewing after {self.slew_timeout_s:.0f} s (aborted)")
            await asyncio.sleep(_POLL_S)

    async def get_radec(self) -> tuple[float, float]:
        """As the mount reports it: of date when `equinox_of_date`, else J2000."""
        ra_h = float(await self.client.get("rightascension"))
        return ra_h * 15.0, float(await self.client.get("declination"))

    async def park(self) -> None:
        if await self.client.get("canpark"):
            await self.client.put("park")

    async def stop(self) -> None:
        await self.client.put("abortslew")


class AlpacaCamera:
    name = "alpaca"

    def __init__(
        self,
        url: str,
        clock: Clock,
        device_number: int = 0,
        *,
        readout_timeout_s: float = 60.0,
        filterwheel_device: int | None = None,
        focal_length_mm: Any = None,
    ) -> None:
        self.client = AlpacaClient(url, "camera", device_number)
        self.wheel = AlpacaClient(url, "filterwheel", filterwheel_device) if filterwheel_device is not None else None
        self._clock = clock
        self.readout_timeout_s = readout_timeout_s
        self.focal_length_mm = focal_length_mm or (lambda: 0.0)
        self.device_name = "Alpaca camera"

    async def connect(self) -> None:
        await self.client.put("connected", Connected=True)
        self.device_name = str(await self.client.get("name"))
        if self.wheel is not None:
            await self.wheel.put("connected", Connected=True)

    def health(self) -> DriverHealth:
        return self.client.health()

    async def close(self) -> None:
        return None

    async def _state(self) -> int:
        return int(await self.client.get("camerastate"))

    async def set_filter(self, wanted: str) -> str:
        """Turn the Alpaca wheel to `wanted` and wait until `Position` says it is there (-1 while moving)."""
        if self.wheel is None:
            return ""
        names = [str(n) for n in await self.wheel.get("names")]
        matches = [i for i, n in enumerate(names) if n.casefold() == wanted.casefold()]
        if not matches:
            raise DriverError(f"filter {wanted!r} is not in the wheel ({', '.join(names)})")
        await self.wheel.put("position", Position=matches[0])
        deadline = time.monotonic() + 30.0
        while (position := int(await self.wheel.get("position"))) == -1:
            if time.monotonic() > deadline:
                raise DriverError(f"filter wheel still moving to {wanted!r} after 30 s")
            await asyncio.sleep(_POLL_S)
        return names[position] if 0 <= position < len(names) else ""

    async def expose(self, request: ExposureRequest) -> Exposure:
        state = await self._state()
        if state == 5:
            raise DriverError(f"{self.device_name} is in its error state (CameraState 5)")
        deadline = time.monotonic() + self.readout_timeout_s
        while state != 0:  # a camera still busy from something else: wait for idle, not forever
            if time.monotonic() > deadline:
                raise DriverError(f"{self.device_name} stayed {_CAMERA_STATES.get(state, state)} before the exposure")
            await asyncio.sleep(_POLL_S)
            state = await self._state()
            if state == 5:
                raise DriverError(f"{self.device_name} is in its error state (CameraState 5)")
        filter_in_place = await self.set_filter(request.filter) if request.filter else ""
        if int(await self.client.get("binx")) != request.binning:
            await self.client.put("binx", BinX=request.binning)
            await self.client.put("biny", BinY=request.binning)
        width, height = int(await self.client.get("cameraxsize")), int(await self.client.get("cameraysize"))
        await self.client.put("startx", StartX=0)
        await self.client.put("starty", StartY=0)
        await self.client.put("numx", NumX=width // request.binning)
        await self.client.put("numy", NumY=height // request.binning)
        light = request.frame_type.upper() not in ("DARK", "BIAS")
        await self.client.put("startexposure", Duration=request.duration_s, Light=light)
        deadline = time.monotonic() + request.duration_s + self.readout_timeout_s
        while not await self.client.get("imageready"):
            state = await self._state()
            if state == 5:
                raise DriverError(f"{self.device_name} went to its error state during the exposure (CameraState 5)")
            if time.monotonic() > deadline:
                if await self.client.get("canabortexposure"):
                    await self.client.put("abortexposure")
                raise DriverError(
                    f"{self.device_name}: no image {self.readout_timeout_s:.0f} s after the exposure "
                    f"(CameraState {state} {_CAMERA_STATES.get(state, '?')}; exposure aborted)"
                )
            await asyncio.sleep(_POLL_S)
        taken_s = float(await self.client.get("lastexposureduration"))
        started = _alpaca_time(await self.client.get("lastexposurestarttime")) or request.start
        image = await self.client.get_image()
        pixel_um = float(await self.client.get("pixelsizex"))
        focal_mm = float(self.focal_length_mm())
        scale = 206.264806 * pixel_um * request.binning / focal_mm if focal_mm > 0 else 0.0
        cards: dict[str, tuple[CardValue, str]] = {
            "DATE-OBS": (started.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3], "UTC start, from the camera"),
            "EXPTIME": (taken_s, "[s] as the camera reports it"),
            "INSTRUME": (self.device_name[:68], ""),
            "IMAGETYP": (f"{request.frame_type.title()} Frame", ""),
            "XBINNING": (request.binning, ""),
            "YBINNING": (request.binning, ""),
            "XPIXSZ": (pixel_um * request.binning, "[um] binned pixel size"),
            "YPIXSZ": (pixel_um * request.binning, "[um]"),
        }
        if filter_in_place:
            cards["FILTER"] = (filter_in_place, "")
        with_temp = await self.temperature_c()
        if math.isfinite(with_temp):
            cards["CCD-TEMP"] = (round(with_temp, 2), "[C]")
        data = await asyncio.to_thread(write_image, image, cards)
        return Exposure(
            start=started,
            duration_s=taken_s,
            data=data,
            data_format=".fits",
            headers={"INSTRUME": self.device_name, "EXPTIME": f"{taken_s:.3f}"},
            filter_in_place=filter_in_place,
            pixel_scale_arcsec=scale,
            width_px=int(image.shape[1]),
            height_px=int(image.shape[0]),
        )

    async def temperature_c(self) -> float:
        try:
            return float(await self.client.get("ccdtemperature"))
        except DriverError:
            return math.nan


def _alpaca_time(value: object) -> datetime | None:
    """LastExposureStartTime: FITS-style ISO 8601 UTC without a zone."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.rstrip("Z"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


class AlpacaFocuser:
    """An ASCOM Alpaca focuser. Only absolute focusers (`Absolute` true) have a position to report and to move to."""

    name = "alpaca"

    def __init__(self, url: str, device_number: int = 0, *, move_timeout_s: float = 120.0) -> None:
        self.client = AlpacaClient(url, "focuser", device_number)
        self.move_timeout_s = move_timeout_s
        self.max_step = 0

    async def connect(self) -> None:
        await self.client.put("connected", Connected=True)
        if not await self.client.get("absolute"):
            raise DriverError("Alpaca focuser is relative (Absolute false): it has no position to report")
        self.max_step = int(await self.client.get("maxstep"))

    def health(self) -> DriverHealth:
        return self.client.health()

    async def close(self) -> None:
        return None

    async def get_position(self) -> int:
        return int(await self.client.get("position"))

    async def move_to(self, position_steps: int) -> int:
        if not 0 <= position_steps <= self.max_step:
            raise DriverError(f"focuser position {position_steps} is outside 0..{self.max_step} (MaxStep)")
        await self.client.put("move", Position=position_steps)
        deadline = time.monotonic() + self.move_timeout_s
        while await self.client.get("ismoving"):
            if time.monotonic() > deadline:
                await self.client.put("halt")
                raise DriverError(f"Alpaca focuser still moving to {position_steps} after {self.move_timeout_s:.0f} s")
            await asyncio.sleep(_POLL_S)
        return await self.get_position()
