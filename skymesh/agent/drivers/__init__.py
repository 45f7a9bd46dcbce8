"""Station hardware drivers behind async protocols (`base`), and `build_drivers`, which picks them from config.

Implementations: `simulated` (physics for demos and tests), `rotctld` / `rigctld` (Hamlib network daemons), `indi`
(INDI XML protocol), `alpaca` (ASCOM Alpaca REST). Each driver module is imported only when configured, and
a ground station's (simulated rotator and radio, rotctld, rigctld) import no numpy.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass

from skymesh.agent.config import AgentConfig, DriverConfig
from skymesh.agent.drivers.base import (
    Camera,
    DriverError,
    DriverHealth,
    Focuser,
    Mount,
    Radio,
    ReportsHealth,
    Rotator,
)
from skymesh.core.clock import Clock

__all__ = ["DriverSet", "build_drivers"]


@dataclass
class DriverSet:
    """The hardware of one station; any role may be absent."""

    rotator: Rotator | None = None
    radio: Radio | None = None
    mount: Mount | None = None
    camera: Camera | None = None
    focuser: Focuser | None = None

    def names(self) -> list[str]:
        devices = (self.rotator, self.radio, self.mount, self.camera, self.focuser)
        return sorted({d.name for d in devices if d is not None})

    def roles(self) -> dict[str, Rotator | Radio | Mount | Camera | Focuser]:
        present = {
            "rotator": self.rotator,
            "radio": self.radio,
            "mount": self.mount,
            "camera": self.camera,
            "focuser": self.focuser,
        }
        return {role: device for role, device in present.items() if device is not None}

    def health(self) -> dict[str, DriverHealth]:
        """Each present device's health, by role (devices whose driver keeps none are left out)."""
        return {role: d.health() for role, d in self.roles().items() if isinstance(d, ReportsHealth)}

    async def connect(self) -> None:
        """Connect every device; one that fails does not keep the others down (it reconnects when used)."""
        failures = []
        for role, device in self.roles().items():
            try:
                await device.connect()
            except DriverError as exc:
                failures.append(f"{role}: {exc}")
        if failures:
            raise DriverError("; ".join(failures))

    async def close(self) -> None:
        for device in (self.focuser, self.camera, self.mount, self.radio, self.rotator):
            if device is not None:
                with contextlib.suppress(DriverError):
                    await device.close()


def build_drivers(config: AgentConfig, clock: Clock) -> DriverSet:
    """Instantiate the configured drivers (nothing is connected yet)."""
    from skymesh.agent.drivers import simulated

    limits = config.limits
    drivers = DriverSet()
    rot = config.drivers.rotator
    if rot.kind == "simulated":
        drivers.rotator = simulated.SimulatedRotator(
            clock,
            slew_rate_deg_s=limits.slew_rate_deg_s,
            azimuth_min_deg=limits.azimuth_min_deg,
            azimuth_max_deg=limits.azimuth_max_deg,
            elevation_min_deg=limits.elevation_min_deg,
            elevation_max_deg=limits.elevation_max_deg,
            park=(limits.park_azimuth_deg, limits.park_elevation_deg),
        )
    elif rot.kind == "rotctld":
        from skymesh.agent.drivers.rotctld import RotctldRotator

        drivers.rotator = RotctldRotator(rot.host, rot.effective_port, timeout_s=rot.timeout_s)
    radio = config.drivers.radio
    if radio.kind == "simulated":
        drivers.radio = simulated.SimulatedRadio(random.Random(config.seed), radio.params)
    elif radio.kind == "rigctld":
        from skymesh.agent.drivers.rigctld import RigctldRadio

        drivers.radio = RigctldRadio(
            radio.host,
            radio.effective_port,
            timeout_s=radio.timeout_s,
            noise_floor_db=float(radio.params.get("noise_floor_db", -54.0)),
        )
    indi_clients: dict[tuple[str, int], object] = {}

    def indi_client(cfg: DriverConfig) -> object:
        from skymesh.agent.drivers.indi import IndiClient

        key = (cfg.host, cfg.effective_port)
        if key not in indi_clients:
            indi_clients[key] = IndiClient(cfg.host, cfg.effective_port, timeout_s=cfg.timeout_s)
        return indi_clients[key]

    mount = config.drivers.mount
    if mount.kind == "simulated":
        drivers.mount = simulated.SimulatedMount(
            clock, slew_rate_deg_s=limits.slew_rate_deg_s, settle_s=float(mount.params.get("settle_s", 0.0))
        )
    elif mount.kind == "indi":
        from skymesh.agent.drivers.indi import IndiClient, IndiMount

        client = indi_client(mount)
        assert isinstance(client, IndiClient)
        drivers.mount = IndiMount(client, mount.device or "Telescope Simulator", location=config.location)
    elif mount.kind == "alpaca":
        from skymesh.agent.drivers.alpaca import AlpacaMount

        drivers.mount = AlpacaMount(mount.url, clock, mount.device_number)
    camera = config.drivers.camera
    if camera.kind == "simulated":
        params = dict(camera.params)
        params.setdefault("aperture_m", config.aperture_m or 0.4)
        import numpy as np

        from skymesh.agent.drivers.simulated_camera import SimulatedCamera

        drivers.camera = SimulatedCamera(clock, np.random.default_rng(config.seed), params)
    elif camera.kind == "indi":
        from skymesh.agent.drivers.indi import IndiClient, IndiMount
        from skymesh.agent.drivers.indi_camera import IndiCamera

        client = indi_client(camera)
        assert isinstance(client, IndiClient)
        configured_mm = float(camera.params.get("focal_length_mm", 0.0))
        indi_mount = drivers.mount if isinstance(drivers.mount, IndiMount) else None

        def focal_length_mm() -> float:  # the configured one, else what the INDI mount says (TELESCOPE_INFO)
            return configured_mm or (indi_mount.focal_length_mm() if indi_mount is not None else 0.0)

        drivers.camera = IndiCamera(client, camera.device or "CCD Simulator", focal_length_mm=focal_length_mm)
    elif camera.kind == "alpaca":
        from skymesh.agent.drivers.alpaca import AlpacaCamera, AlpacaMount

        wheel = camera.params.get("filterwheel_device")
        alpaca_mm = float(camera.params.get("focal_length_mm", 0.0))
        alpaca_mount = drivers.mount if isinstance(drivers.mount, AlpacaMount) else None

        def alpaca_focal_mm() -> float:  # the configured one, else the Alpaca mount's FocalLength (metres)
            return alpaca_mm or (alpaca_mount.focal_length_m * 1000.0 if alpaca_mount is not None else 0.0)

        drivers.camera = AlpacaCamera(
            camera.url,
            clock,
            camera.device_number,
            filterwheel_device=int(wheel) if wheel is not None else None,
            focal_length_mm=alpaca_focal_mm,
        )
    focuser = config.drivers.focuser
    if focuser.kind == "indi":
        from skymesh.agent.drivers.indi import IndiClient, IndiFocuser

        client = indi_client(focuser)
        assert isinstance(client, IndiClient)
        drivers.focuser = IndiFocuser(client, focuser.device or "Focuser Simulator")
    elif focuser.kind == "alpaca":
        from skymesh.agent.drivers.alpaca import AlpacaFocuser

        drivers.focuser = AlpacaFocuser(focuser.url, focuser.device_number)
    return drivers
