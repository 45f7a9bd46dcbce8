"""Rotator driver for Hamlib's `rotctld` (TCP, default port 4533).

`P az el` moves (answers `RPRT 0`, or `RPRT -1` EINVAL outside the limits), `p` reads az and el (two lines), `S`
stops, `K` parks, `\\dump_state` gives the limits (`min_az=`, `max_az=`, `min_el=`, `max_el=` ... `done`), which
`connect` reads so the agent can report and respect them (`reported_travel`; the pass planner intersects them with
the configured limits). A daemon started with `-C min_az=0,max_az=360,max_el=180` reports those values.
"""

from __future__ import annotations

from skymesh.agent.drivers.base import DriverError, DriverHealth, RotatorTravel
from skymesh.agent.drivers.hamlib import HamlibClient

__all__ = ["RotctldRotator"]


class RotctldRotator:
    name = "rotctld"

    def __init__(self, host: str, port: int = 4533, *, timeout_s: float = 5.0) -> None:
        self._client = HamlibClient(host, port, timeout_s=timeout_s, daemon="rotctld")
        self.azimuth_min_deg = -180.0
        self.azimuth_max_deg = 450.0
        self.elevation_min_deg = 0.0
        self.elevation_max_deg = 90.0
        self._travel: RotatorTravel | None = None

    async def connect(self) -> None:
        await self._client.connect()
        await self.read_limits()

    async def close(self) -> None:
        await self._client.close()

    def health(self) -> DriverHealth:
        return self._client.health()

    async def read_limits(self) -> dict[str, float]:
        lines = await self._client.command("\\dump_state", until="done", idempotent=True)
        limits: dict[str, float] = {}
        for line in lines:
            key, sep, value = line.partition("=")
            if sep and key in ("min_az", "max_az", "min_el", "max_el"):
                try:
                    limits[key] = float(value)
                except ValueError as exc:
                    raise DriverError(f"rotctld sent a bad {key}: {value!r}") from exc
        self.azimuth_min_deg = limits.get("min_az", self.azimuth_min_deg)
        self.azimuth_max_deg = limits.get("max_az", self.azimuth_max_deg)
        self.elevation_min_deg = limits.get("min_el", self.elevation_min_deg)
        self.elevation_max_deg = limits.get("max_el", self.elevation_max_deg)
        if len(limits) == 4:
            self._travel = RotatorTravel(
                self.azimuth_min_deg, self.azimuth_max_deg, self.elevation_min_deg, self.elevation_max_deg
            )
        return limits

    def reported_travel(self) -> RotatorTravel | None:
        """What `\\dump_state` said at the last connect (None if the daemon did not give all four limits)."""
        return self._travel

    async def set_position(self, azimuth_deg: float, elevation_deg: float) -> None:
        await self._client.command(f"P {azimuth_deg:.2f} {elevation_deg:.2f}", idempotent=True)

    async def get_position(self) -> tuple[float, float]:
        lines = await self._client.command("p", reply_lines=2, idempotent=True)
        try:
            return float(lines[0]), float(lines[1])
        except (IndexError, ValueError) as exc:
            raise DriverError(f"rotctld sent a bad position reply: {lines!r}") from exc

    async def stop(self) -> None:
        await self._client.command("S", idempotent=True)

    async def park(self) -> None:
        await self._client.command("K", idempotent=True)
