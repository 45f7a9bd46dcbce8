"""A real alert-to-telescope system for the end-to-end alert test and `benchmarks/alerts.py`: `python -m skymesh
scheduler`, `python -m skymesh server --config` (SQLite or PostgreSQL, control auth on, a watch directory) and
`python -m skymesh agent --config` for a simulated telescope at a site where it is night now; alert packets placed
near its zenith, so the planner can give the alert's target to the agent at once.

The agent's own SQLite store is the judge of "in the agent's hands": a job for the alert's target has been persisted
there (the agent acks only after that). Not a test module: imported by tests and the benchmark.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import yaml

from skymesh.api import convert
from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.control.v1 import alerts_pb2, alerts_pb2_grpc, stations_pb2, stations_pb2_grpc
from skymesh.astro import celestial, frames
from skymesh.core.model import GeoLocation, Station, StationKind
from tests.e2e.test_system import Proc, free_port, tail, wait_serving

__all__ = ["AlertSystem", "night_station", "zenith_radec"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def night_station(now: datetime, station_id: str = "tel-alerts") -> Station:
    """A telescope at the longitude of local midnight (winter hemisphere side), where the Sun is well down now."""
    _ra_sun, dec_sun = celestial.sun_radec(np.array([frames.datetime_to_jd(now)]))
    latitude = 35.0 if float(dec_sun[0]) < 0 else -35.0
    best = None
    for lon in np.arange(-180.0, 180.0, 5.0):
        alt = float(np.ravel(celestial.sun_altitude_deg(latitude, float(lon), frames.datetime_to_jd(now)))[0])
        if best is None or alt < best[0]:
            best = (alt, float(lon))
    assert best is not None and best[0] < -25.0, f"no dark longitude found: {best}"
    return Station(
        station_id=station_id,
        name="Alert follow-up telescope",
        kind=StationKind.TELESCOPE,
        location=GeoLocation(latitude, best[1], 2000.0),
        min_elevation_deg=20.0,
        slew_rate_deg_s=5.0,
        aperture_m=0.5,
        filters=("V", "R"),
        limiting_magnitude=19.0,
        fov_deg=0.5,
    )


def zenith_radec(station: Station, now: datetime, offset_deg: float = 0.0) -> tuple[float, float]:
    """A J2000 position 5 degrees east of the meridian at the station's latitude (plus `offset_deg` in RA), with the
    Moon at least 40 degrees away."""
    jd = frames.datetime_to_jd(now)
    lst_deg = 15.0 * float(celestial.hour_angle_h(np.array([0.0]), np.array([0.0]),
                                                  station.location.longitude_deg, jd).ravel()[0])  # fmt: skip
    dec = station.location.latitude_deg
    for shift in (5.0, 25.0, -20.0, 45.0):
        ra = (lst_deg + shift + offset_deg) % 360.0
        if float(np.ravel(celestial.moon_separation_deg(np.array([ra]), np.array([dec]), jd))[0]) > 40.0:
            return ra, dec
    return (lst_deg + 5.0 + offset_deg) % 360.0, dec - 15.0


@dataclass
class AlertSystem:
    root: Path
    database_url: str  # sqlite+aiosqlite:///... or postgresql://...
    server_overrides: dict[str, Any]
    agent_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. drivers: the camera's star catalogue

    def __post_init__(self) -> None:
        self.logs = self.root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.watch_dir = self.root / "inbox"
        self.procs: list[Proc] = []
        self.server_address = f"127.0.0.1:{free_port()}"
        self.scheduler_address = f"127.0.0.1:{free_port()}"
        self.token = ""
        self.station: Station | None = None
        self.agent_state = self.root / "agent-state"
        self._channel: grpc.aio.Channel | None = None

    @property
    def metadata(self) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {self.token}"),)

    @property
    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.server_address)
        return self._channel

    def _db_for_server(self) -> str:
        return self.database_url.replace("postgresql://", "postgresql+asyncpg://", 1)

    async def start(self, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        scheduler = Proc("scheduler", ["scheduler", "--listen", self.scheduler_address], self.logs / "scheduler.log")
        self.procs.append(scheduler)
        config = {
            "listen": self.server_address,
            "database_url": self._db_for_server(),
            "scheduler_address": self.scheduler_address,
            "data_dir": str(self.root / "server-data"),
            "control_auth": True,
            "heartbeat_interval_s": 1.0,
            "offline_grace_s": 10.0,
            "replan_interval_s": 600.0,
            "replan_debounce_s": 0.1,
            "plan_horizon_s": 3600.0,
            "plan_time_limit_s": 5.0,
            "shutdown_grace_s": 1.0,
            "drain_retry_after_s": 0.5,
            "alerts": {"watch_dir": str(self.watch_dir), "watch_interval_s": 0.05},
            **self.server_overrides,
        }
        server_yaml = self.root / "server.yaml"
        server_yaml.write_text(yaml.safe_dump(config))
        # The first admin, straight into the database (as an operator bootstraps one); the server migrates first.
        keys = [sys.executable, "-m", "skymesh", "--log-level", "WARNING", "keys", "--config", str(server_yaml)]
        out = await asyncio.to_thread(
            subprocess.run,
            [*keys, "user", "ada", "--role", "admin"],
            check=True,
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
        )
        self.token = out.stdout.strip().splitlines()[-1].removeprefix("token:").strip()
        await wait_serving(self.scheduler_address, proc=scheduler)
        server = Proc("server", ["server", "--config", str(server_yaml)], self.logs / "server.log")
        self.procs.append(server)
        await wait_serving(self.server_address, proc=server)

        station = self.station = night_station(now)
        api = stations_pb2_grpc.StationServiceStub(self.channel)
        await api.CreateStation(
            stations_pb2.CreateStationRequest(station=convert.station_to_proto(station)),
            metadata=self.metadata,
            timeout=10,
        )
        key = await api.IssueStationKey(
            stations_pb2.IssueStationKeyRequest(station_id=station.station_id), metadata=self.metadata, timeout=10
        )
        agent_yaml = self.root / "agent.yaml"
        agent_yaml.write_text(
            yaml.safe_dump(
                {
                    "station_id": station.station_id,
                    "server_address": self.server_address,
                    "api_key": key.api_key,
                    "state_dir": str(self.agent_state),
                    "kind": "telescope",
                    "location": {
                        "latitude_deg": station.location.latitude_deg,
                        "longitude_deg": station.location.longitude_deg,
                        "altitude_m": station.location.altitude_m,
                    },
                    "filters": list(station.filters),
                    "aperture_m": station.aperture_m,
                    "heartbeat_interval_s": 1.0,
                    "telemetry_batch_interval_s": 1.0,
                    "reconnect_initial_s": 0.2,
                    "reconnect_max_s": 1.0,
                    "seed": 1,
                    **self.agent_overrides,
                }
            )
        )
        agent = Proc("agent", ["agent", "--config", str(agent_yaml)], self.logs / "agent.log")
        self.procs.append(agent)
        deadline = time.monotonic() + 60.0
        while f"as {station.station_id} (session" not in agent.log():
            if not agent.alive() or time.monotonic() > deadline:
                raise AssertionError(f"agent never connected:\n{tail(agent.log_path)}\n{tail(server.log_path)}")
            await asyncio.sleep(0.1)

    async def add_catalogue(self, count: int, seed: int = 1) -> None:
        """`count` sidereal targets (priority 3) spread over the sky this station sees, so every plan has real work."""
        from skymesh.api.control.v1 import targets_pb2, targets_pb2_grpc
        from skymesh.core.model import CelestialTarget

        assert self.station is not None
        rng = np.random.default_rng(seed)
        api = targets_pb2_grpc.TargetServiceStub(self.channel)
        lat = self.station.location.latitude_deg
        for i in range(count):
            target = CelestialTarget(
                target_id=f"cat-{i:04d}",
                name=f"Catalogue star {i}",
                ra_deg=float(rng.uniform(0.0, 360.0)),
                dec_deg=float(np.clip(rng.uniform(lat - 50.0, lat + 50.0), -89.0, 89.0)),
                magnitude=float(rng.uniform(8.0, 16.0)),
                priority=3,
                exposure_s=30.0,
                exposure_count=2,
            )
            await api.CreateTarget(
                targets_pb2.CreateTargetRequest(target=convert.target_to_proto(target)),
                metadata=self.metadata,
                timeout=10,
            )

    def write_alert(self, name: str, packet: bytes) -> float:
        """Drop a packet into the watch directory atomically; returns the wall-clock time it appeared."""
        self.watch_dir.mkdir(parents=True, exist_ok=True)
        partial = self.watch_dir / f".{name}"
        partial.write_bytes(packet)
        appeared = time.time()
        os.replace(partial, self.watch_dir / name)
        return appeared

    async def ingest(self, packet: bytes, origin: str = "") -> alerts_pb2.IngestAlertResponse:
        api = alerts_pb2_grpc.AlertServiceStub(self.channel)
        return await api.IngestAlert(
            alerts_pb2.IngestAlertRequest(packet=packet, origin=origin), metadata=self.metadata, timeout=30
        )

    def agent_jobs(self) -> dict[str, tuple[str, int, float]]:
        """job_id -> (target_id, state, updated_at) as the agent has persisted them."""
        path = self.agent_state / "agent.sqlite"
        if not path.exists():
            return {}
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            rows = db.execute("SELECT job_id, spec, state, updated_at FROM jobs").fetchall()
        except sqlite3.OperationalError:
            return {}
        finally:
            db.close()
        out = {}
        for job_id, spec, state, updated in rows:
            job = agent_pb2.ScheduledJob()
            job.ParseFromString(spec)
            out[str(job_id)] = (job.target.target_id, int(state), float(updated))
        return out

    async def wait_agent_job(self, target_id: str, timeout_s: float = 30.0, poll_s: float = 0.01) -> float:
        """Wall-clock time at which a job for `target_id` was first seen in the agent's store."""
        deadline = time.monotonic() + timeout_s
        while True:
            if any(t == target_id for t, _s, _u in (await asyncio.to_thread(self.agent_jobs)).values()):
                return time.time()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no job for {target_id} at the agent after {timeout_s:.0f} s\n" + self.log_tails()
                )
            await asyncio.sleep(poll_s)

    def log_tails(self) -> str:
        return "\n".join(f"===== {p.name}\n{tail(p.log_path, 40)}" for p in self.procs)

    async def stop(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
        for proc in sorted(self.procs, key=lambda p: {"agent": 0, "server": 1}.get(p.name, 2)):
            await asyncio.to_thread(proc.stop)


def dumps_summary(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, sort_keys=True)
