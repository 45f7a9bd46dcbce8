"""ASCOM Alpaca drivers (REST: `{url}/api/v1/{devicetype}/{n}/{method}`), a small urllib client in a thread.

GET reads properties, PUT with form data runs actions; every reply is JSON with `Value`, `ErrorNumber` and
`ErrorMessage`, and every request carries `ClientID` and `ClientTransactionID`. The mount slews with
`slewtocoordinatesasync` (RA in hours) after `tracking=True` and polls `slewing`; the camera runs `startexposure`
and polls `imageready` (the image array is not fetched: `imagearray` JSON is too heavy for a Raspberry Pi; a site
that wants the pixels saves them on the camera host).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from skymesh.agent.drivers.base import DriverError, DriverHealth, Exposure, ExposureRequest, HealthTracker
from skymesh.core.clock import Clock

__all__ = ["AlpacaCamera", "AlpacaClient", "AlpacaMount"]


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

    def _call(self, method: str, name: str, params: dict[str, Any] | None) -> Any:
        fields = {"ClientID": str(self.client_id), "ClientTransactionID": str(next(self._transactions))}
        fields.update({k: str(v) for k, v in (params or {}).items()})
        encoded = urllib.parse.urlencode(fields)
        url = f"{self.base}/{name.lower()}"
        if method == "GET":
            request = urllib.request.Request(f"{url}?{encoded}", method="GET")
        else:
            request = urllib.request.Request(
                url, data=encoded.encode(), method="PUT", headers={"Content-Type": "application/x-www-form-urlencoded"}
            )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                body = json.loads(response.read().decode("utf-8"))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self._reachable = False
            self._health.failed(f"{method} {name}: {exc}")
            raise DriverError(f"Alpaca {method} {url} failed: {exc}") from exc
        self._reachable = True
        self._health.ok()
        if int(body.get("ErrorNumber", 0)):
            raise DriverError(f"Alpaca {name} error {body['ErrorNumber']}: {body.get('ErrorMessage', '')}")
        return body.get("Value")

    async def get(self, name: str, **params: Any) -> Any:
        return await asyncio.to_thread(self._call, "GET", name, params)

    async def put(self, name: str, **params: Any) -> Any:
        return await asyncio.to_thread(self._call, "PUT", name, params)


class AlpacaMount:
    name = "alpaca"
    equinox_of_date = False  # not yet read from EquatorialSystem: coordinates are sent and read as given

    def __init__(self, url: str, clock: Clock, device_number: int = 0, *, slew_timeout_s: float = 120.0) -> None:
        self.client = AlpacaClient(url, "telescope", device_number)
        self._clock = clock
        self.slew_timeout_s = slew_timeout_s

    async def connect(self) -> None:
        await self.client.put("connected", Connected=True)

    def health(self) -> DriverHealth:
        return self.client.health()

    async def close(self) -> None:
        return None

    async def slew(self, ra_deg: float, dec_deg: float) -> None:
        await self.client.put("tracking", Tracking=True)
        await self.client.put("slewtocoordinatesasync", RightAscension=(ra_deg % 360.0) / 15.0, Declination=dec_deg)
        waited = 0.0
        while await self.client.get("slewing"):
            if waited > self.slew_timeout_s:
                raise DriverError(f"Alpaca mount still slewing after {self.slew_timeout_s:.0f} s")
            await self._clock.sleep(0.5)
            waited += 0.5

    async def get_radec(self) -> tuple[float, float]:
        ra_h = float(await self.client.get("rightascension"))
        return ra_h * 15.0, float(await self.client.get("declination"))

    async def park(self) -> None:
        await self.client.put("park")

    async def stop(self) -> None:
        await self.client.put("abortslew")


class AlpacaCamera:
    name = "alpaca"

    def __init__(self, url: str, clock: Clock, device_number: int = 0, *, readout_timeout_s: float = 60.0) -> None:
        self.client = AlpacaClient(url, "camera", device_number)
        self._clock = clock
        self.readout_timeout_s = readout_timeout_s

    async def connect(self) -> None:
        await self.client.put("connected", Connected=True)

    def health(self) -> DriverHealth:
        return self.client.health()

    async def close(self) -> None:
        return None

    async def expose(self, request: ExposureRequest) -> Exposure:
        await self.client.put("startexposure", Duration=request.duration_s, Light=True)
        await self._clock.sleep(request.duration_s)
        waited = 0.0
        while not await self.client.get("imageready"):
            if waited > self.readout_timeout_s:
                raise DriverError(f"Alpaca camera image not ready {self.readout_timeout_s:.0f} s after the exposure")
            await self._clock.sleep(0.5)
            waited += 0.5
        return Exposure(start=request.start, duration_s=request.duration_s, headers={"INSTRUME": "alpaca"})

    async def temperature_c(self) -> float:
        try:
            return float(await self.client.get("ccdtemperature"))
        except DriverError:
            return math.nan
