"""Focusers against the real simulators: INDI's `indi_simulator_focus` (under a real indiserver) and the ASCOM Alpaca
focuser of `alpaca-simulators`. The position is set where the job asks, read back after every exposure, and carried
in the exposure record and the FITS header."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from skymesh.agent.config import DriverConfig, DriversConfig
from skymesh.agent.drivers import build_drivers
from skymesh.agent.drivers.alpaca import AlpacaFocuser
from skymesh.agent.drivers.base import DriverError
from skymesh.agent.fits import read_header
from skymesh.agent.observing import JobContext, perform_job
from skymesh.agent.store import LocalJob
from skymesh.core.clock import SystemClock
from skymesh.core.jobs import JobState
from tests.agent.conftest import now_plus, telescope_config, telescope_job
from tests.agent.daemons import daemon, free_port, require_binary
from tests.agent.test_alpaca import _catalogue, _config, _simulator_argv


def _indiserver(port: int) -> list[str]:
    binary = require_binary("indiserver", "indi-bin")
    require_binary("indi_simulator_focus", "indi-bin")
    return [binary, "-p", str(port), "-u", f"/tmp/skymesh-indi-{port}", "indi_simulator_focus"]


def _job(job_id: str, focuser_position_steps: int | None) -> LocalJob:
    start, end = now_plus(0), now_plus(120)
    spec = telescope_job(job_id, start, end, exposure_s=0.1, count=2)
    if focuser_position_steps is not None:
        spec.focuser_position_steps = focuser_position_steps
    return LocalJob(job_id, spec, start, end, JobState.RUNNING, True, "b")


async def test_indi_focuser_is_set_and_read_into_every_exposure(tmp_path: Path) -> None:
    port = free_port()
    with daemon(_indiserver(port), port):
        config = telescope_config(tmp_path, 1)
        config = dataclasses.replace(
            config, drivers=dataclasses.replace(config.drivers, focuser=DriverConfig(kind="indi", port=port))
        )
        drivers = build_drivers(config, SystemClock())
        await drivers.connect()
        try:
            assert drivers.focuser is not None
            record = await perform_job(_job("f1", 31_234), JobContext(config, drivers, SystemClock(), {}, {}))
            assert [e.focuser_position_steps for e in record.exposures] == [31_234, 31_234]
            assert all(e.HasField("focuser_position_steps") for e in record.exposures)
            # A job that does not ask leaves the focuser where it is and still says where that is.
            record = await perform_job(_job("f2", None), JobContext(config, drivers, SystemClock(), {}, {}))
            assert [e.focuser_position_steps for e in record.exposures] == [31_234, 31_234]
            assert await drivers.focuser.get_position() == 31_234
            assert "focuser" in drivers.roles() and drivers.health()["focuser"].connected
        finally:
            await drivers.close()


async def test_no_focuser_leaves_the_field_unset(tmp_path: Path) -> None:
    config = telescope_config(tmp_path, 1)
    drivers = build_drivers(config, SystemClock())
    await drivers.connect()
    try:
        record = await perform_job(_job("f3", 20_000), JobContext(config, drivers, SystemClock(), {}, {}))
        assert record.exposures and not any(e.HasField("focuser_position_steps") for e in record.exposures)
    finally:
        await drivers.close()


async def test_alpaca_focuser_moves_reads_and_refuses_out_of_range(tmp_path: Path) -> None:
    catalogue = tmp_path / "gaia.db"
    _catalogue(catalogue, 10.0, -20.0)
    port = free_port()
    with daemon(_simulator_argv(port, _config(tmp_path, catalogue)), port, timeout_s=60.0):
        focuser = AlpacaFocuser(f"http://127.0.0.1:{port}")
        await focuser.connect()
        assert focuser.max_step == 100_000
        assert await focuser.get_position() == 10_000  # the simulator's configured start
        assert await focuser.move_to(10_600) == 10_600
        with pytest.raises(DriverError, match=r"outside 0\.\.100000"):
            await focuser.move_to(200_000)
        assert await focuser.get_position() == 10_600  # the refused move changed nothing
        assert focuser.health().connected
        # Through the agent: the Alpaca focuser's position lands in the exposure record and the FITS header.
        config = telescope_config(tmp_path, 1)
        config = dataclasses.replace(
            config,
            drivers=DriversConfig(
                rotator=DriverConfig(kind="none"),
                radio=DriverConfig(kind="none"),
                mount=config.drivers.mount,
                camera=config.drivers.camera,
                focuser=DriverConfig(kind="alpaca", url=f"http://127.0.0.1:{port}"),
            ),
        )
        drivers = build_drivers(config, SystemClock())
        await drivers.connect()
        try:
            record = await perform_job(_job("f4", 11_000), JobContext(config, drivers, SystemClock(), {}, {}))
        finally:
            await drivers.close()
        assert [e.focuser_position_steps for e in record.exposures] == [11_000, 11_000]
        assert record.headers["FOCUSPOS"] == "11000"
        fits = sorted((tmp_path / "artifacts" / record.observation_id).glob("*.fits"))
        assert len(fits) == 2
        assert all(read_header(f.read_bytes()).get("FOCUSPOS") == 11_000 for f in fits)
