"""Light curves end to end: a short-period variable observed on six nights, every frame uploaded through the real
agent stream and upload RPC, reduced by the server's worker, exported by `skymesh lightcurve` over gRPC as ECSV, CSV
and VOTable; astropy's Lomb-Scargle periodogram of the exported curve finds the period (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from astropy.table import Table
from astropy.time import Time
from astropy.timeseries import LombScargle

from skymesh.api.agent.v1 import agent_pb2
from skymesh.cli.main import main
from skymesh.core.model import CelestialTarget, StationKind
from skymesh.products import FrameSpec, load_reference_catalogue, render_frame
from skymesh.server.db.records import Role
from tests.server.agent_client import AgentClient, ts
from tests.server.conftest import StartServer, add_station
from tests.server.test_products import REDUCE_TIMEOUT_S, _upload

STAR = "sm-field-var-target"
RA_DEG, DEC_DEG = 337.29, 58.42
MEAN_V, AMPLITUDE_MAG = 13.5, 0.25
PERIOD_D = 0.37  # shortened so that six nights hold 16 cycles
EPOCH_MJD = 61284.0
NIGHTS, PER_NIGHT = 6, 6


def _model_v(mjd: float) -> float:
    return MEAN_V + AMPLITUDE_MAG * math.sin(2 * math.pi * (mjd - EPOCH_MJD) / PERIOD_D)


def _schedule() -> list[datetime]:
    rng = np.random.default_rng(7)
    first = datetime(2026, 9, 1, 22, 0, tzinfo=UTC)
    return [
        first + timedelta(days=n, hours=k, minutes=float(rng.uniform(0, 40)))
        for n in range(NIGHTS)
        for k in range(PER_NIGHT)
    ]


async def test_variable_period_recovered_from_exported_light_curve(start_server: StartServer, tmp_path: Path) -> None:
    server = await start_server(reduction_workers=1)
    assert server.reducer is not None
    key = await add_station(server, "tel1", StationKind.TELESCOPE)
    await server.repo.create_target(CelestialTarget(STAR, "Short-period variable", RA_DEG, DEC_DEG, filters=("V",)))
    catalogue = load_reference_catalogue()
    exposure_s = 30.0
    async with AgentClient.connect(server.address, key, "tel1") as agent:
        await agent.expect("welcome")
        for seq, start in enumerate(_schedule(), start=1):
            mid_mjd = Time(start + timedelta(seconds=exposure_s / 2)).mjd
            spec = FrameSpec(
                RA_DEG,
                DEC_DEG,
                STAR,
                start,
                exposure_s=exposure_s,
                magnitude_overrides=((STAR, _model_v(mid_mjd)),),
                seed=seq,
            )
            record = agent_pb2.ObservationRecord(
                observation_id=str(uuid.uuid4()),
                target_id=STAR,
                start=ts(start),
                end=ts(start + timedelta(seconds=exposure_s)),
                exposure_s=exposure_s,
            )
            await agent.observation(seq, record)
            await agent.expect("upstream_ack")
            await _upload(server, key, record.observation_id, render_frame(spec, catalogue).fits_bytes())
        await server.reducer.wait_idle(REDUCE_TIMEOUT_S)
    assert server.reducer.reduced == NIGHTS * PER_NIGHT and server.reducer.failed == 0

    await server.repo.create_user("ada", Role.ADMIN)
    token = await server.repo.issue_user_token("ada")
    tables = {}
    for fmt in ("ecsv", "csv", "votable"):
        out = tmp_path / f"curve.{fmt}"
        argv = ["lightcurve", STAR, "--server", server.address, "--token", token, "--format", fmt, "-o", str(out)]
        assert await asyncio.to_thread(main, argv) == 0
        tables[fmt] = Table.read(out, format={"ecsv": "ascii.ecsv", "csv": "ascii.csv", "votable": "votable"}[fmt])

    # An unknown target is a clear error (exit 2), not a traceback or an empty file.
    argv = ["lightcurve", "no-such-target", "--server", server.address, "--token", token, "-o", str(tmp_path / "x")]
    assert await asyncio.to_thread(main, argv) == 2
    assert not (tmp_path / "x").exists()

    curve = tables["ecsv"]
    assert len(curve) == NIGHTS * PER_NIGHT
    assert set(curve["filter"]) == {"V"} and set(curve["station_id"]) == {"tel1"}
    assert bool(np.all(curve["reduced"])) and bool(np.all(np.asarray(curve["airmass"]) >= 1.0))
    mjd = np.asarray(curve["mjd"], dtype=np.float64)
    mag = np.asarray(curve["magnitude"], dtype=np.float64)
    err = np.asarray(curve["magnitude_error"], dtype=np.float64)
    truth = np.array([_model_v(t) for t in mjd])
    assert abs(float(np.mean(mag - truth))) < 0.02 and float(np.max(np.abs(mag - truth))) < 0.05
    for fmt in ("csv", "votable"):
        np.testing.assert_allclose(np.asarray(tables[fmt]["magnitude"], dtype=np.float64), mag, rtol=0, atol=1e-9)
        np.testing.assert_allclose(np.asarray(tables[fmt]["mjd"], dtype=np.float64), mjd, rtol=0, atol=1e-9)

    frequency, power = LombScargle(mjd, mag, err).autopower(minimum_frequency=0.2, maximum_frequency=10.0)
    best_period_d = 1.0 / float(frequency[np.argmax(power)])
    assert abs(best_period_d - PERIOD_D) / PERIOD_D < 0.01, best_period_d
