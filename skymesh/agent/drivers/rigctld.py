"""Radio driver for Hamlib's `rigctld` (TCP, default port 4532): `F hz` tunes, `f` reads the frequency,
`l STRENGTH` reads the signal strength in dB relative to S9 (S0 = -54 dB), turned into an SNR over a configured
noise floor.
"""

from __future__ import annotations

from skymesh.agent.drivers.base import DriverError, DriverHealth
from skymesh.agent.drivers.hamlib import HamlibClient

__all__ = ["RigctldRadio"]


class RigctldRadio:
    name = "rigctld"

    def __init__(self, host: str, port: int = 4532, *, timeout_s: float = 5.0, noise_floor_db: float = -54.0) -> None:
        self._client = HamlibClient(host, port, timeout_s=timeout_s, daemon="rigctld")
        self.noise_floor_db = noise_floor_db

    async def connect(self) -> None:
        await self._client.connect()

    async def close(self) -> None:
        await self._client.close()

    def health(self) -> DriverHealth:
        return self._client.health()

    async def set_frequency(self, frequency_hz: float) -> None:
        await self._client.command(f"F {round(frequency_hz)}", idempotent=True)

    async def get_frequency(self) -> float:
        lines = await self._client.command("f", reply_lines=1, idempotent=True)
        try:
            return float(lines[0])
        except (IndexError, ValueError) as exc:
            raise DriverError(f"rigctld sent a bad frequency reply: {lines!r}") from exc

    async def strength_db(self) -> float:
        lines = await self._client.command("l STRENGTH", reply_lines=1, idempotent=True)
        try:
            return float(lines[0])
        except (IndexError, ValueError) as exc:
            raise DriverError(f"rigctld sent a bad strength reply: {lines!r}") from exc

    async def snr_db(self) -> float:
        return await self.strength_db() - self.noise_floor_db
