"""Alpaca drivers against the ASCOM Alpaca simulators from PyPI (`alpaca-simulators`), offline.

The simulator's camera draws its star field with cabaret from a Gaia catalogue; here that catalogue is a small local
SQLite file (`tap_source`), so nothing leaves the machine. The simulator's mount is set to a topocentric
EquatorialSystem (1), so the agent must precess its J2000 targets; its camera is made to fail (the catalogue
vanishes) to prove that CameraState 5 fails an exposure at once.
"""

from __future__ import annotations

import importlib.util
import math
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits

from skymesh.agent.config import AgentConfig, DriverConfig, DriversConfig, HardwareLimits
from skymesh.agent.drivers import build_drivers
from skymesh.agent.drivers.alpaca import AlpacaCamera, AlpacaMount, parse_imagebytes
from skymesh.agent.drivers.base import DriverError, ExposureRequest
from skymesh.agent.observing import JobContext, perform_job
from skymesh.agent.store import LocalJob
from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.api.convert import timestamp_from_datetime
from skymesh.astro.celestial import precess_from_j2000
from skymesh.astro.frames import datetime_to_jd
from skymesh.core.clock import SystemClock
from skymesh.core.jobs import JobState
from skymesh.core.model import GeoLocation, StationKind
from tests.agent.conftest import zenith_radec
from tests.agent.daemons import daemon, free_port

SITE = GeoLocation(-24.6, -70.4, 2600.0)


def _simulator_argv(port: int, config: Path) -> list[str]:
    if importlib.util.find_spec("alpaca_simulators") is None:
        pytest.fail("alpaca-simulators is not installed: `pip install alpaca-simulators` (this test must run)")
    return [
        sys.executable,
        "-m",
        "alpaca_simulators.run_simulator",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--config",
        str(config),
    ]


def _catalogue(path: Path, ra_deg: float, dec_deg: float) -> None:
    """A few hundred stars around the target, Gaia-like columns (what cabaret reads from a local SQLite source)."""
    rng = np.random.default_rng(3)
    n = 300
    ra = ra_deg + rng.uniform(-0.05, 0.05, n) / max(math.cos(math.radians(dec_deg)), 0.1)
    dec = dec_deg + rng.uniform(-0.05, 0.05, n)
    mag = rng.uniform(9.0, 16.0, n)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE gaia_sources (ra REAL, dec REAL, pmra REAL, pmdec REAL, phot_g_mean_mag REAL)")
        db.executemany(
            "INSERT INTO gaia_sources VALUES (?, ?, 0, 0, ?)",
            zip(ra.tolist(), dec.tolist(), mag.tolist(), strict=True),
        )


def _config(tmp_path: Path, catalogue: Path) -> Path:
    spec = importlib.util.find_spec("alpaca_simulators")
    assert spec is not None and spec.origin is not None
    template = yaml.safe_load((Path(spec.origin).parent / "config" / "template.yaml").read_text())
    camera = template["devices"]["camera"][0]
    camera.update({"cameraxsize": 128, "cameraysize": 128, "numx": 128, "numy": 128})
    telescope = template["devices"]["telescope"][0]
    telescope.update(
        {
            "equatorialsystem": 1,  # topocentric: coordinates of date
            "sitelatitude": SITE.latitude_deg,
            "sitelongitude": SITE.longitude_deg,
            "atpark": True,
            "tracking": False,
        }
    )
    template["devices"]["filterwheel"][0]["names"] = ["B", "V", "R", "Clear"]
    template["tap_source"] = str(catalogue)
    template["gaia_query_timeout"] = 10
    path = tmp_path / "alpaca-config.yaml"
    path.write_text(yaml.safe_dump(template))
    return path


def _job(ra_deg: float, dec_deg: float) -> LocalJob:
    now = datetime.now(UTC)
    target = common_pb2.Target(
        target_id="t-alpaca",
        name="Field A",
        priority=5,
        celestial=common_pb2.CelestialTarget(ra_deg=ra_deg, dec_deg=dec_deg, magnitude=11.0, exposure_s=0.5),
    )
    spec = agent_pb2.ScheduledJob(
        job_id="ja",
        target=target,
        start=timestamp_from_datetime(now),
        end=timestamp_from_datetime(now + timedelta(minutes=5)),
        filter="V",
        exposure_s=0.5,
        exposure_count=1,
    )
    return LocalJob("ja", spec, now, now + timedelta(minutes=5), JobState.RUNNING, True, "b")


def test_imagebytes_layout() -> None:
    image = np.arange(6, dtype="<u2").reshape(2, 3)  # 2 rows (y), 3 columns (x)
    header = np.array([1, 0, 0, 0, 44, 2, 8, 2, 3, 2, 0], dtype="<i4").tobytes()
    raw = header + image.T.tobytes()  # the wire is x-major, like ImageArray[x][y]
    np.testing.assert_array_equal(parse_imagebytes(raw), image)
    failed = np.array([1, 0x40D, 0, 0, 44, 2, 8, 2, 3, 2, 0], dtype="<i4").tobytes() + b"Image not ready"
    with pytest.raises(DriverError, match="1037"):
        parse_imagebytes(failed)


async def test_alpaca_simulators_unpark_slew_expose_fits_and_error_state(tmp_path: Path) -> None:
    ra, dec = zenith_radec(SITE, datetime.now(UTC))
    catalogue = tmp_path / "gaia.db"
    _catalogue(catalogue, ra, dec)
    port = free_port()
    config = AgentConfig(
        station_id="tel-alpaca",
        state_dir=tmp_path,
        kind=StationKind.TELESCOPE,
        location=SITE,
        limits=HardwareLimits(slew_rate_deg_s=15.0),
        drivers=DriversConfig(
            rotator=DriverConfig(kind="none"),
            radio=DriverConfig(kind="none"),
            mount=DriverConfig(kind="alpaca", url=f"http://127.0.0.1:{port}"),
            camera=DriverConfig(kind="alpaca", url=f"http://127.0.0.1:{port}", params={"filterwheel_device": 0}),
        ),
        filters=("V",),
    )
    with daemon(_simulator_argv(port, _config(tmp_path, catalogue)), port, timeout_s=60.0):
        drivers = build_drivers(config, SystemClock())
        mount, camera = drivers.mount, drivers.camera
        assert isinstance(mount, AlpacaMount) and isinstance(camera, AlpacaCamera)
        await drivers.connect()
        assert not await mount.client.get("atpark")  # unparked on connect
        assert mount.equinox_of_date  # EquatorialSystem 1
        record = await perform_job(_job(ra, dec), JobContext(config, drivers, SystemClock(), {}, {}))
        assert await mount.client.get("tracking")
        # The mount was sent the coordinates of date, and reports them.
        ra_now, dec_now = precess_from_j2000([ra], [dec], [datetime_to_jd(datetime.now(UTC))])
        got_ra, got_dec = await mount.get_radec()
        assert abs((got_ra - float(ra_now[0]) + 180) % 360 - 180) * math.cos(math.radians(dec)) < 0.01
        assert got_dec == pytest.approx(float(dec_now[0]), abs=0.01)
        (report,) = record.exposures
        assert report.filter_in_place == "V" and report.taken_s == pytest.approx(0.5)
        assert report.pointing_offset_arcsec < 60.0  # reached J2000 position, back from the mount's of-date one
        (artifact,) = record.artifacts
        with fits.open(tmp_path / "artifacts" / record.observation_id / f"{artifact.artifact_id}.fits") as hdul:
            image, h = hdul[0].data, hdul[0].header
            assert image.shape == (128, 128) and float(image.std()) > 0.0
            assert h["OBJECT"] == "Field A" and h["FILTER"] == "V" and h["SMREQFLT"] == "V"
            assert h["SMJOBID"] == "ja" and h["EXPTIME"] == pytest.approx(0.5)
            assert h["SITELAT"] == pytest.approx(SITE.latitude_deg)
            assert float(h["CRVAL1"]) == pytest.approx(ra, abs=0.01) and float(h["CRVAL2"]) == pytest.approx(
                dec, abs=0.01
            )
            assert float(h["CDELT2"]) * 3600 == pytest.approx(206.265 * 10.0 / 8000.0, rel=0.01)
            assert datetime.fromisoformat(h["DATE-OBS"]).replace(tzinfo=UTC) > datetime.now(UTC) - timedelta(minutes=1)

        # The catalogue vanishes: the camera's next image fails and it goes to CameraState 5. The agent fails the
        # exposure as soon as it sees that, and refuses to start another on an errored camera.
        catalogue.unlink()
        request = ExposureRequest(0.7, "V", "t", "Field A", ra, dec, 11.0, 80.0, datetime.now(UTC))
        started = time.monotonic()
        with pytest.raises(DriverError, match="error state"):
            await camera.expose(request)
        assert time.monotonic() - started < 15.0  # not the 60 s readout timeout
        with pytest.raises(DriverError, match="error state"):
            await camera.expose(request)
        await mount.park()
        assert await mount.client.get("atpark")
        await drivers.close()
