"""INDI client (XML over TCP, default port 7624) and the mount and camera drivers built on it.

The INDI stream has no root element, so `IndiClient` feeds it to an incremental `XMLPullParser` inside a synthetic
root and handles each top-level element as it completes: `def*Vector` / `set*Vector` update a property table,
`setBLOBVector` carries base64 images, `delProperty` removes, `message` is logged. Writers send `newNumberVector`,
`newSwitchVector` and `enableBLOB`. Waiting is by predicate over the property table with a timeout, since a property
may stay Busy forever on a broken driver.

`IndiMount` sends the site (GEOGRAPHIC_COORD) and time (TIME_UTC), unparks, and slews with EQUATORIAL_EOD_COORD (RA in
hours, JNow) after ON_COORD_SET=TRACK; the camera is in `indi_camera`. Devices connect with CONNECTION=CONNECT first
and register that setup with the client, which reconnects (with backoff) and runs it again when indiserver comes
back after a restart.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast
from xml.sax.saxutils import escape, quoteattr

from skymesh.agent.aio import with_timeout
from skymesh.agent.drivers.base import Backoff, DriverError, DriverHealth, HealthTracker
from skymesh.astro.celestial import precess_from_j2000
from skymesh.astro.frames import datetime_to_jd
from skymesh.core.model import GeoLocation

__all__ = ["IndiBlob", "IndiClient", "IndiMount", "IndiProperty"]

_log = logging.getLogger(__name__)


@dataclass
class IndiProperty:
    device: str
    name: str
    kind: str  # Number, Switch, Text, Light, BLOB
    state: str = "Idle"
    values: dict[str, str] = field(default_factory=dict)
    generation: int = 0

    def number(self, element: str) -> float:
        try:
            return _parse_sexagesimal(self.values[element])
        except (KeyError, ValueError) as exc:
            raise DriverError(f"INDI {self.device}.{self.name} has no number {element!r}") from exc


@dataclass(frozen=True)
class IndiBlob:
    device: str
    name: str
    element: str
    data: bytes
    format: str
    generation: int


def _parse_sexagesimal(text: str) -> float:
    """INDI numbers may be sexagesimal ("12:30:00"); plain floats pass through."""
    text = text.strip()
    if ":" not in text and " " not in text:
        return float(text)
    parts = [float(p) for p in text.replace(" ", ":").split(":") if p]
    sign = -1.0 if text.startswith("-") else 1.0
    value = 0.0
    for i, part in enumerate(parts):
        value += abs(part) / (60.0**i)
    return sign * value


class IndiClient:
    """One TCP connection to an indiserver; shared by every device driver on it (reference counted)."""

    def __init__(self, host: str, port: int = 7624, *, timeout_s: float = 10.0) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.properties: dict[tuple[str, str], IndiProperty] = {}
        self.blobs: dict[tuple[str, str], IndiBlob] = {}  # the latest per (device, property)
        self.blob_history: dict[tuple[str, str], collections.deque[IndiBlob]] = {}  # the last few, oldest first
        self._blob_generation = 0
        self._changed = asyncio.Condition()
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._users = 0
        self._error: BaseException | None = None
        self._health = HealthTracker()
        self._backoff = Backoff()
        self._reconnect = asyncio.Lock()
        self._setups: list[Callable[[], Awaitable[None]]] = []

    def health(self) -> DriverHealth:
        """Connected while the socket is open and its reader alive; errors are failed connects, writes and waits."""
        return self._health.snapshot(self._writer is not None and self._error is None)

    @property
    def blob_generation(self) -> int:
        """Counter of BLOBs received so far (every BLOB's `generation` is the counter when it arrived)."""
        return self._blob_generation

    @property
    def connected(self) -> bool:
        return self._writer is not None and self._error is None

    def add_setup(self, setup: Callable[[], Awaitable[None]]) -> None:
        """`setup` runs after every reconnect (a restarted indiserver has forgotten every device's state)."""
        if setup not in self._setups:
            self._setups.append(setup)

    async def connect(self) -> None:
        self._users += 1
        if self._writer is not None:
            return
        try:
            await self._open()
        except DriverError:
            self._users -= 1
            raise

    async def _open(self) -> None:
        try:
            reader, self._writer = await with_timeout(asyncio.open_connection(self.host, self.port), self.timeout_s)
        except (OSError, TimeoutError) as exc:
            self._health.failed(f"connect: {exc or 'timeout'}")
            raise DriverError(f"cannot connect to indiserver at {self.host}:{self.port}: {exc or 'timeout'}") from exc
        self._error = None
        self._health.ok()
        self._reader_task = asyncio.create_task(self._read_loop(reader), name=f"indi-reader-{self.host}:{self.port}")
        await self.send('<getProperties version="1.7"/>')

    async def ensure(self) -> None:
        """Reconnect (paced by a backoff) if the connection was lost, and set every device up again."""
        if self.connected:
            return
        async with self._reconnect:
            if self.connected:
                return
            wait_s = self._backoff.wait_s()
            if wait_s > 0:
                raise DriverError(f"indiserver at {self.host}:{self.port} is down (retry in {wait_s:.1f} s)")
            await self._disconnect()
            self.properties.clear()
            try:
                await self._open()
                for setup in self._setups:
                    await setup()
            except DriverError:
                self._backoff.failed()
                await self._disconnect()
                raise
            self._backoff.succeeded()
            _log.info("reconnected to indiserver at %s:%d", self.host, self.port)

    async def close(self) -> None:
        self._users = max(self._users - 1, 0)
        if self._users:
            return
        await self._disconnect()

    async def _disconnect(self) -> None:
        task, self._reader_task = self._reader_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()

    async def send(self, xml: str) -> None:
        if self._writer is None:
            raise DriverError(f"not connected to indiserver at {self.host}:{self.port}")
        try:
            self._writer.write(xml.encode("utf-8") + b"\n")
            await with_timeout(self._writer.drain(), self.timeout_s)
        except (OSError, ConnectionError, TimeoutError) as exc:
            self._health.failed(f"write: {exc or 'timeout'}")
            self._error = exc
            raise DriverError(f"indiserver at {self.host}:{self.port}: write failed: {exc or 'timeout'}") from exc

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
        parser.feed("<indi>")
        depth = 0
        root: ET.Element | None = None
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    raise ConnectionError("indiserver closed the connection")
                parser.feed(chunk)
                events = cast(Iterator[tuple[str, object]], parser.read_events())
                for event, item in events:
                    if not isinstance(item, ET.Element):
                        continue
                    element = item
                    if event == "start":
                        if root is None:
                            root = element
                        depth += 1
                        continue
                    depth -= 1
                    if depth == 1 and root is not None:
                        self._handle(element)
                        root.clear()
                async with self._changed:
                    self._changed.notify_all()
        except (OSError, ConnectionError, ET.ParseError) as exc:
            self._error = exc
            _log.warning("INDI connection to %s:%d lost: %s", self.host, self.port, exc)
            async with self._changed:
                self._changed.notify_all()

    def _handle(self, element: ET.Element) -> None:
        self._health.ok()  # the server spoke
        tag = element.tag
        device = element.get("device", "")
        name = element.get("name", "")
        if tag.startswith("def") and tag.endswith("Vector"):
            kind = tag[3:-6]
            prop = IndiProperty(device, name, kind, element.get("state", "Idle"))
            self._update_values(prop, element)
            self.properties[(device, name)] = prop
        elif tag == "setBLOBVector":
            prop = self.properties.setdefault((device, name), IndiProperty(device, name, "BLOB"))
            prop.state = element.get("state", prop.state)
            prop.generation += 1
            for child in element:
                if child.tag != "oneBLOB" or not (child.text or "").strip():
                    continue
                self._blob_generation += 1
                data = base64.b64decode("".join((child.text or "").split()))
                blob = IndiBlob(
                    device, name, child.get("name", ""), data, child.get("format", ""), self._blob_generation
                )
                self.blobs[(device, name)] = blob
                self.blob_history.setdefault((device, name), collections.deque(maxlen=8)).append(blob)
        elif tag.startswith("set") and tag.endswith("Vector"):
            found = self.properties.get((device, name))
            if found is None:
                found = self.properties[(device, name)] = IndiProperty(device, name, tag[3:-6])
            found.state = element.get("state", found.state)
            self._update_values(found, element)
        elif tag == "delProperty":
            if name:
                self.properties.pop((device, name), None)
            else:
                for key in [k for k in self.properties if k[0] == device]:
                    del self.properties[key]
        elif tag == "message":
            _log.info("INDI %s: %s", device or "server", element.get("message", ""))
        if element.get("message") and tag != "message":
            _log.debug("INDI %s.%s: %s", device, name, element.get("message"))

    @staticmethod
    def _update_values(prop: IndiProperty, element: ET.Element) -> None:
        prop.generation += 1
        for child in element:
            if child.tag.startswith(("one", "def")) and child.get("name"):
                prop.values[child.get("name", "")] = (child.text or "").strip()

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Wait until `predicate()` holds (checked after every message), else DriverError naming `what`."""

        async def waiter() -> None:
            async with self._changed:
                while not predicate():
                    if self._error is not None:
                        self._health.failed(f"connection lost: {self._error}")
                        raise DriverError(f"INDI connection lost while waiting for {what}: {self._error}")
                    await self._changed.wait()

        try:
            await with_timeout(waiter(), timeout_s)
        except TimeoutError as exc:
            self._health.failed(f"timed out waiting for {what}")
            raise DriverError(f"INDI: timed out after {timeout_s:.0f} s waiting for {what}") from exc

    def get(self, device: str, name: str) -> IndiProperty | None:
        return self.properties.get((device, name))

    async def new_number(self, device: str, name: str, values: Mapping[str, float]) -> None:
        body = "".join(f"<oneNumber name={quoteattr(k)}>{v:.8f}</oneNumber>" for k, v in values.items())
        await self.send(f"<newNumberVector device={quoteattr(device)} name={quoteattr(name)}>{body}</newNumberVector>")

    async def new_text(self, device: str, name: str, values: Mapping[str, str]) -> None:
        body = "".join(f"<oneText name={quoteattr(k)}>{escape(v)}</oneText>" for k, v in values.items())
        await self.send(f"<newTextVector device={quoteattr(device)} name={quoteattr(name)}>{body}</newTextVector>")

    async def new_switch(self, device: str, name: str, values: Mapping[str, bool]) -> None:
        body = "".join(f"<oneSwitch name={quoteattr(k)}>{'On' if v else 'Off'}</oneSwitch>" for k, v in values.items())
        await self.send(f"<newSwitchVector device={quoteattr(device)} name={quoteattr(name)}>{body}</newSwitchVector>")

    async def enable_blob(self, device: str, mode: str = "Also", name: str = "") -> None:
        attr = f" name={quoteattr(name)}" if name else ""
        await self.send(f"<enableBLOB device={quoteattr(device)}{attr}>{escape(mode)}</enableBLOB>")

    async def connect_device(self, device: str, *, wait_for_property: str) -> None:
        """CONNECTION=CONNECT, then wait until the device defines `wait_for_property` (it does once connected)."""
        await self.wait_for(lambda: self.get(device, "CONNECTION") is not None, self.timeout_s, f"{device} CONNECTION")
        await self.new_switch(device, "CONNECTION", {"CONNECT": True, "DISCONNECT": False})
        await self.wait_for(
            lambda: self.get(device, wait_for_property) is not None, self.timeout_s, f"{device} {wait_for_property}"
        )


class IndiMount:
    name = "indi"
    equinox_of_date = True  # EQUATORIAL_EOD_COORD

    def __init__(
        self,
        client: IndiClient,
        device: str = "Telescope Simulator",
        *,
        location: GeoLocation | None = None,
        slew_timeout_s: float = 120.0,
    ) -> None:
        self.client, self.device, self.slew_timeout_s = client, device, slew_timeout_s
        self.location = location

    async def connect(self) -> None:
        await self.client.connect()
        await self._setup()
        self.client.add_setup(self._setup)

    async def _setup(self) -> None:
        """Connect the device and tell it where and when it is (the CCD driver snoops both for SITELAT/SITELONG,
        AIRMASS and its own coordinates); unpark it."""
        await self.client.connect_device(self.device, wait_for_property="EQUATORIAL_EOD_COORD")

        def reported() -> bool:  # the definition carries zeros; the first update carries the real position
            prop = self.client.get(self.device, "EQUATORIAL_EOD_COORD")
            return prop is not None and prop.generation >= 2

        with contextlib.suppress(DriverError):
            await self.client.wait_for(reported, 3.0, f"{self.device} position")
        if self.location is not None and self.client.get(self.device, "GEOGRAPHIC_COORD") is not None:
            loc = self.location
            await self.client.new_number(
                self.device,
                "GEOGRAPHIC_COORD",
                {"LAT": loc.latitude_deg, "LONG": loc.longitude_deg % 360.0, "ELEV": loc.altitude_m},
            )
        if self.client.get(self.device, "TIME_UTC") is not None:
            utc = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
            await self.client.new_text(self.device, "TIME_UTC", {"UTC": utc, "OFFSET": "0"})
        park = self.client.get(self.device, "TELESCOPE_PARK")
        if park is not None and park.values.get("PARK") == "On":
            await self.client.new_switch(self.device, "TELESCOPE_PARK", {"PARK": False, "UNPARK": True})

    async def close(self) -> None:
        await self.client.close()

    async def slew(self, ra_deg: float, dec_deg: float) -> None:
        """Slew to J2000 (catalogue) RA/Dec: INDI's EQUATORIAL_EOD_COORD wants equinox of date, so precess first."""
        await self.client.ensure()
        park = self.client.get(self.device, "TELESCOPE_PARK")
        if park is not None and park.values.get("PARK") == "On":  # parked at the end of the last night
            await self.client.new_switch(self.device, "TELESCOPE_PARK", {"PARK": False, "UNPARK": True})
        ra_now, dec_now = precess_from_j2000([ra_deg], [dec_deg], [datetime_to_jd(datetime.now(UTC))])
        ra_deg, dec_deg = float(ra_now[0]) % 360.0, float(dec_now[0])
        ra_h = ra_deg / 15.0
        if self.client.get(self.device, "ON_COORD_SET") is not None:
            await self.client.new_switch(self.device, "ON_COORD_SET", {"TRACK": True, "SLEW": False, "SYNC": False})
        await self.client.new_number(self.device, "EQUATORIAL_EOD_COORD", {"RA": ra_h, "DEC": dec_deg})

        seen_busy = False

        def arrived() -> bool:
            # Done once the slew went Busy and came back Ok (or Alert), or if it is Ok right on the target (a
            # zero-length slew may never show Busy). The simulator's Ok position is ~0.05 deg off: tolerate 0.25.
            nonlocal seen_busy
            prop = self.client.get(self.device, "EQUATORIAL_EOD_COORD")
            if prop is None:
                return False
            if prop.state == "Busy":
                seen_busy = True
                return False
            if prop.state == "Alert":
                return True
            d_ra_deg = abs((prop.number("RA") - ra_h + 12.0) % 24.0 - 12.0) * 15.0 * math.cos(math.radians(dec_deg))
            close = d_ra_deg < 0.25 and abs(prop.number("DEC") - dec_deg) < 0.25
            return prop.state == "Ok" and (seen_busy or close)

        await self.client.wait_for(
            arrived, self.slew_timeout_s, f"{self.device} slew to RA {ra_h:.4f} h Dec {dec_deg:.4f}"
        )
        prop = self.client.get(self.device, "EQUATORIAL_EOD_COORD")
        if prop is not None and prop.state == "Alert":
            raise DriverError(f"{self.device} refused the slew to RA {ra_h:.4f} h Dec {dec_deg:.4f} (Alert)")

    def health(self) -> DriverHealth:
        return self.client.health()

    def focal_length_mm(self) -> float:
        prop = self.client.get(self.device, "TELESCOPE_INFO")
        try:
            return prop.number("TELESCOPE_FOCAL_LENGTH") if prop is not None else 0.0
        except DriverError:
            return 0.0

    async def get_radec(self) -> tuple[float, float]:
        """Where the mount points, as it reports it: RA/Dec of date (JNow)."""
        prop = self.client.get(self.device, "EQUATORIAL_EOD_COORD")
        if prop is None:
            raise DriverError(f"{self.device} has no EQUATORIAL_EOD_COORD (not connected?)")
        return prop.number("RA") * 15.0, prop.number("DEC")

    async def park(self) -> None:
        await self.client.ensure()
        if self.client.get(self.device, "TELESCOPE_PARK") is not None:
            await self.client.new_switch(self.device, "TELESCOPE_PARK", {"PARK": True, "UNPARK": False})

    async def stop(self) -> None:
        if self.client.get(self.device, "TELESCOPE_ABORT_MOTION") is not None:
            await self.client.new_switch(self.device, "TELESCOPE_ABORT_MOTION", {"ABORT": True})


class IndiFocuser:
    """An INDI absolute focuser (ABS_FOCUS_POSITION / FOCUS_ABSOLUTE_POSITION), e.g. `indi_simulator_focus`."""

    name = "indi"

    def __init__(self, client: IndiClient, device: str = "Focuser Simulator", *, move_timeout_s: float = 120.0) -> None:
        self.client, self.device, self.move_timeout_s = client, device, move_timeout_s

    async def connect(self) -> None:
        await self.client.connect()
        await self._setup()
        self.client.add_setup(self._setup)

    async def _setup(self) -> None:
        await self.client.connect_device(self.device, wait_for_property="ABS_FOCUS_POSITION")

    async def close(self) -> None:
        await self.client.close()

    def health(self) -> DriverHealth:
        return self.client.health()

    def _position(self) -> IndiProperty:
        prop = self.client.get(self.device, "ABS_FOCUS_POSITION")
        if prop is None:
            raise DriverError(f"{self.device} has no ABS_FOCUS_POSITION (not connected, or not an absolute focuser)")
        return prop

    async def get_position(self) -> int:
        await self.client.ensure()
        return round(self._position().number("FOCUS_ABSOLUTE_POSITION"))

    async def move_to(self, position_steps: int) -> int:
        await self.client.ensure()
        before = self._position().generation
        await self.client.new_number(self.device, "ABS_FOCUS_POSITION", {"FOCUS_ABSOLUTE_POSITION": position_steps})

        def stopped() -> bool:
            prop = self._position()
            return prop.generation > before and prop.state != "Busy"

        await self.client.wait_for(stopped, self.move_timeout_s, f"{self.device} move to {position_steps}")
        prop = self._position()
        if prop.state == "Alert":
            raise DriverError(f"{self.device} refused the move to {position_steps} (Alert)")
        return round(prop.number("FOCUS_ABSOLUTE_POSITION"))
