"""A spooled message the server refuses is set aside by the real agent, not resent forever, and nothing of it is
written; the messages behind it still arrive (real server, real agent, real gRPC; SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from skymesh.agent.config import config_from_mapping
from skymesh.agent.runtime import Agent
from skymesh.agent.store import Store
from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.convert import timestamp_from_datetime
from tests.server.conftest import Fleet


def _poisoned_spool(path: Path, now: datetime) -> None:
    # As if an older agent build had spooled an observation that ends before it starts, then some telemetry.
    bad = agent_pb2.ConnectRequest(
        observation=agent_pb2.ObservationRecord(
            observation_id="6f1c1d55-0b1e-4b53-9a43-3f8a2f6f0001",
            target_id="m31",
            start=timestamp_from_datetime(now),
            end=timestamp_from_datetime(now - timedelta(seconds=30)),
        )
    )
    good = agent_pb2.ConnectRequest(
        telemetry=agent_pb2.TelemetryBatch(
            samples=[agent_pb2.TelemetrySample(at=timestamp_from_datetime(now), values={"radio.snr_db": 12.5})]
        )
    )
    store = Store(path)
    store.begin_boot("old-boot", now)
    store.enqueue("old-boot", [bad, good])
    store.close()


async def test_agent_sets_aside_a_refused_message_and_carries_on(fleet: Fleet, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    config = config_from_mapping(
        {
            "station_id": "gs1",
            "server_address": fleet.server.address,
            "api_key": fleet.keys["gs1"],
            "state_dir": str(tmp_path / "agent"),
            "location": {"latitude_deg": 52.0, "longitude_deg": 4.4, "altitude_m": 10.0},
            "bands": ["UHF"],
            "reconnect_initial_s": 0.1,
            "reconnect_max_s": 0.5,
        }
    )
    config.state_dir.mkdir(parents=True)
    _poisoned_spool(config.database_path, now)
    task = asyncio.create_task(Agent(config).run())
    try:
        probe = Store(config.database_path)
        try:
            for _ in range(200):
                if not [k for k in probe.outbox_keys() if k[0] == "old-boot"] and probe.rejected():
                    break
                await asyncio.sleep(0.1)
            rejected = probe.rejected()
        finally:
            probe.close()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert [(b, s) for b, s, _ in rejected] == [("old-boot", 1)]
    assert "INVALID_ARGUMENT" in rejected[0][2] and "observation.end" in rejected[0][2]
    async with fleet.server.engine.connect() as conn:
        observations = (await conn.execute(text("SELECT count(*) FROM observations"))).scalar_one()
        telemetry = (
            (await conn.execute(text("SELECT seq FROM telemetry WHERE boot_id = 'old-boot' ORDER BY seq")))
            .scalars()
            .all()
        )
    assert observations == 0
    assert list(telemetry) == [2]


async def test_agent_abandons_a_spooled_message_over_the_size_limit(fleet: Fleet, tmp_path: Path) -> None:
    """A message spooled before the limit was known (larger than Welcome.max_message_bytes) is never sent: the agent
    sets it aside and sends Abandoned in its place, so the server's sequence has no gap and the rest arrives."""
    now = datetime.now(UTC)
    huge = agent_pb2.ConnectRequest(
        telemetry=agent_pb2.TelemetryBatch(
            samples=[
                agent_pb2.TelemetrySample(
                    at=timestamp_from_datetime(now), values={f"ch{j}": float(j) for j in range(60)}
                )
                for _ in range(1500)
            ]
        )
    )
    assert huge.ByteSize() > 1 << 20
    good = agent_pb2.ConnectRequest(
        telemetry=agent_pb2.TelemetryBatch(
            samples=[agent_pb2.TelemetrySample(at=timestamp_from_datetime(now), values={"radio.snr_db": 1.0})]
        )
    )
    config = config_from_mapping(
        {
            "station_id": "gs1",
            "server_address": fleet.server.address,
            "api_key": fleet.keys["gs1"],
            "state_dir": str(tmp_path / "agent"),
            "location": {"latitude_deg": 52.0, "longitude_deg": 4.4, "altitude_m": 10.0},
            "bands": ["UHF"],
            "reconnect_initial_s": 0.1,
            "reconnect_max_s": 0.5,
        }
    )
    config.state_dir.mkdir(parents=True)
    store = Store(config.database_path)
    store.begin_boot("old-boot", now)
    store.enqueue("old-boot", [good, huge, good])
    store.close()
    task = asyncio.create_task(Agent(config).run())
    try:
        probe = Store(config.database_path)
        try:
            for _ in range(200):
                if not [k for k in probe.outbox_keys() if k[0] == "old-boot"]:
                    break
                await asyncio.sleep(0.1)
            rejected = probe.rejected()
        finally:
            probe.close()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert [(b, s) for b, s, _ in rejected] == [("old-boot", 2)]
    assert "RESOURCE_EXHAUSTED" in rejected[0][2]
    async with fleet.server.engine.connect() as conn:
        telemetry = (
            (await conn.execute(text("SELECT seq FROM telemetry WHERE boot_id = 'old-boot' ORDER BY seq")))
            .scalars()
            .all()
        )
        refusals = (
            await conn.execute(text("SELECT seq, code FROM upstream_refusals WHERE boot_id = 'old-boot'"))
        ).all()
    assert list(telemetry) == [1, 3]
    assert [(seq, code) for seq, code in refusals] == [(2, "ABANDONED")]
