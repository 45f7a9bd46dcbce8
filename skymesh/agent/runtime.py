"""One station agent: store + drivers + executor + link under one TaskGroup. `run_agent` is the entry point.

    await run_agent(config)                      # until cancelled (SIGINT/SIGTERM in the CLI)
    await run_agent(config, clock=ManualClock(t0))  # tests and simulations

Many simulated agents run in one process side by side (each with its own state_dir): see `run_agents`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence

from skymesh.agent.config import AgentConfig
from skymesh.agent.drivers import DriverSet, build_drivers
from skymesh.agent.drivers.base import DriverError, ReportsTravel
from skymesh.agent.executor import Executor
from skymesh.agent.link import Link
from skymesh.agent.passplan import station_rotator_model
from skymesh.agent.store import AsyncStore, Store
from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.api.convert import timestamp_from_datetime
from skymesh.core.clock import Clock, SystemClock
from skymesh.core.errors import SkyMeshError

__all__ = ["Agent", "capabilities_of", "device_health_of", "run_agent", "run_agents"]

_log = logging.getLogger(__name__)


def capabilities_of(config: AgentConfig, drivers: DriverSet) -> agent_pb2.Capabilities:
    """What the station can do: the configured limits, narrowed to what the rotator itself reports (rotctld)."""
    limits = config.limits
    az_min, az_max = limits.azimuth_min_deg, limits.azimuth_max_deg
    el_min, el_max = limits.elevation_min_deg, limits.elevation_max_deg
    travel = drivers.rotator.reported_travel() if isinstance(drivers.rotator, ReportsTravel) else None
    if travel is not None:
        try:
            model = station_rotator_model(limits, travel)
        except SkyMeshError as exc:
            _log.error("configured rotator limits and the rotator's own do not overlap: %s", exc)
        else:
            az_min, az_max = model.azimuth.min_deg, model.azimuth.max_deg
            el_min, el_max = model.elevation.min_deg, model.elevation.max_deg
    return agent_pb2.Capabilities(
        kind=common_pb2.StationKind.ValueType(int(config.kind)),
        bands=list(config.bands),
        filters=list(config.filters),
        aperture_m=config.aperture_m,
        slew_rate_deg_s=limits.slew_rate_deg_s,
        min_elevation_deg=el_min,
        max_elevation_deg=el_max,
        azimuth_min_deg=az_min,
        azimuth_max_deg=az_max,
        drivers=drivers.names(),
    )


def device_health_of(drivers: DriverSet) -> list[agent_pb2.DeviceHealth]:
    """Every device's health for Hello and heartbeats (the server turns a failing one into DEGRADED)."""
    out = []
    names = drivers.roles()
    for role, health in drivers.health().items():
        msg = agent_pb2.DeviceHealth(
            role=role,
            driver=names[role].name,
            connected=health.connected,
            errors_total=health.errors_total,
            consecutive_errors=health.consecutive_errors,
            last_error=health.last_error[:500],
        )
        if health.last_ok is not None:
            msg.last_ok.CopyFrom(timestamp_from_datetime(health.last_ok))
        out.append(msg)
    return out


class Agent:
    """Owns everything one station agent runs. `boot_id` is new for every instance (every process start)."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        clock: Clock | None = None,
        drivers: DriverSet | None = None,
        boot_id: str | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.drivers = drivers or build_drivers(config, self.clock)
        self.boot_id = boot_id or str(uuid.uuid4())
        self.store: AsyncStore | None = None
        self.executor: Executor | None = None
        self.link: Link | None = None

    async def run(self) -> None:
        """Run until cancelled; on the way out close drivers and the database."""
        store = Store(self.config.database_path)
        self.store = astore = AsyncStore(store)
        try:
            await astore.call(store.begin_boot, self.boot_id, self.clock.now())
            try:
                await self.drivers.connect()
            except DriverError as exc:  # jobs will fail with HARDWARE_FAULT; the link must still come up
                _log.error("station %s: hardware not ready: %s", self.config.station_id, exc)
            self.executor = executor = Executor(self.config, astore, self.drivers, self.clock, self.boot_id)

            def on_welcome(welcome: agent_pb2.Welcome) -> None:
                interval = welcome.telemetry_batch_interval.ToTimedelta().total_seconds()
                if interval > 0:
                    executor.telemetry_batch_interval_s = interval

            self.link = Link(
                self.config,
                astore,
                self.clock,
                self.boot_id,
                capabilities_of(self.config, self.drivers),
                current_job=lambda: executor.current_job_id,
                on_welcome=on_welcome,
                device_health=lambda: device_health_of(self.drivers),
            )
            _log.info("agent %s boot %s starting", self.config.station_id, self.boot_id)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(executor.run(), name=f"agent-{self.config.station_id}-executor")
                tg.create_task(self.link.run(), name=f"agent-{self.config.station_id}-link")
        finally:
            await asyncio.shield(self.drivers.close())
            store.close()


async def run_agent(config: AgentConfig, *, clock: Clock | None = None, drivers: DriverSet | None = None) -> None:
    """Run one station agent until cancelled."""
    await Agent(config, clock=clock, drivers=drivers).run()


async def run_agents(configs: Sequence[AgentConfig], *, clock: Clock | None = None) -> None:
    """Run several agents in this process (demo fleets): one TaskGroup, each with its own state and drivers."""
    async with asyncio.TaskGroup() as tg:
        for config in configs:
            tg.create_task(run_agent(config, clock=clock), name=f"agent-{config.station_id}")
