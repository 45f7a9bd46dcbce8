"""INDI drivers against a real indiserver running the telescope and CCD simulators: site and time sent to the
mount, filter wheel set and read back, the driver's FITS plus SkyMesh's keywords, BLOBs arriving late or twice, and
an indiserver killed and restarted between jobs."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import math
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from astropy.io import fits

from skymesh.agent.config import AgentConfig, DriverConfig, DriversConfig, HardwareLimits
from skymesh.agent.drivers import build_drivers
from skymesh.agent.drivers.base import DriverError, ExposureRequest
from skymesh.agent.drivers.indi import IndiMount, _parse_sexagesimal
from skymesh.agent.drivers.indi_camera import IndiCamera
from skymesh.agent.fits import read_header, update_header
from skymesh.agent.observing import JobContext, perform_job
from skymesh.agent.sidereal import altaz_of_radec
from skymesh.agent.store import LocalJob
from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.api.convert import timestamp_from_datetime
from skymesh.core.clock import SystemClock
from skymesh.core.jobs import JobState
from skymesh.core.model import GeoLocation, StationKind
from tests.agent.daemons import daemon, free_port, require_binary

SITE = GeoLocation(45.0, 7.5, 300.0)  # the simulator's mount starts near the north pole: keep it up
TELESCOPE, CCD = "Telescope Simulator", "CCD Simulator"


def test_sexagesimal_numbers() -> None:
    assert _parse_sexagesimal("12:30:00") == 12.5
    assert _parse_sexagesimal("-10:15") == -10.25
    assert _parse_sexagesimal("1.25") == 1.25


def _indiserver(port: int) -> list[str]:
    binary = require_binary("indiserver", "indi-bin")
    require_binary("indi_simulator_telescope", "indi-bin")
    require_binary("indi_simulator_ccd", "indi-bin")
    # -u: its own local socket, so parallel indiservers (other tests, a developer's) do not collide.
    return [
        binary,
        "-p",
        str(port),
        "-u",
        f"/tmp/skymesh-indi-{port}",
        "indi_simulator_telescope",
        "indi_simulator_ccd",
    ]


def _job(job_id: str, ra_deg: float, dec_deg: float, name: str) -> LocalJob:
    now = datetime.now(UTC)
    target = common_pb2.Target(
        target_id=f"t-{job_id}",
        name=name,
        priority=5,
        celestial=common_pb2.CelestialTarget(ra_deg=ra_deg, dec_deg=dec_deg, magnitude=10.0, exposure_s=0.5),
    )
    spec = agent_pb2.ScheduledJob(
        job_id=job_id,
        target=target,
        start=timestamp_from_datetime(now),
        end=timestamp_from_datetime(now + timedelta(minutes=5)),
        filter="V",
        exposure_s=0.5,
        exposure_count=1,
    )
    return LocalJob(job_id, spec, now, now + timedelta(minutes=5), JobState.RUNNING, True, "b")


def _blob_xml(data: bytes) -> str:
    payload = base64.b64encode(data).decode()
    return (
        f'<setBLOBVector device="{CCD}" name="CCD1" state="Ok"><oneBLOB name="CCD1" size="{len(data)}" '
        f'format=".fits">{payload}</oneBLOB></setBLOBVector>'
    )


async def test_indi_job_site_filter_headers_blobs_and_restart(tmp_path: Path) -> None:
    port = free_port()
    config = AgentConfig(
        station_id="tel-indi",
        state_dir=tmp_path,
        kind=StationKind.TELESCOPE,
        location=SITE,
        limits=HardwareLimits(slew_rate_deg_s=5.0),
        drivers=DriversConfig(
            rotator=DriverConfig(kind="none"),
            radio=DriverConfig(kind="none"),
            mount=DriverConfig(kind="indi", port=port, device=TELESCOPE, timeout_s=15.0),
            camera=DriverConfig(kind="indi", port=port, device=CCD, timeout_s=15.0),
        ),
        filters=("V",),
    )
    with daemon(_indiserver(port), port) as server:
        drivers = build_drivers(config, SystemClock())
        mount, camera = drivers.mount, drivers.camera
        assert isinstance(mount, IndiMount) and isinstance(camera, IndiCamera)
        await drivers.connect()
        client = camera.client
        try:
            # The site and time reached the mount.
            geo = client.get(TELESCOPE, "GEOGRAPHIC_COORD")
            assert geo is not None
            await client.wait_for(lambda: abs(geo.number("LAT") - 45.0) < 1e-6, 5.0, "site")
            assert geo.number("LONG") == pytest.approx(7.5) and geo.number("ELEV") == pytest.approx(300.0)
            # The operator named the wheel's second slot V (as the station's filters say).
            await client.new_text(CCD, "FILTER_NAME", {"FILTER_SLOT_NAME_2": "V"})
            await client.wait_for(lambda: "V" in camera.filters(), 5.0, "filter names")
            # A target a few degrees from where the simulator starts (near the pole), well above the horizon.
            ra0, dec0 = await mount.get_radec()
            target = ((ra0 + 10.0) % 360.0, min(dec0, 85.0) - 3.0)
            assert altaz_of_radec(*target, SITE, datetime.now(UTC))[0] > 30.0
            record = await perform_job(
                _job("j1", *target, "Polaris field"), JobContext(config, drivers, SystemClock(), {}, {})
            )
            (report,) = record.exposures
            assert report.filter_requested == "V" and report.filter_in_place == "V"
            assert report.taken_s == pytest.approx(0.5) and report.requested_s == 0.5
            assert report.pointing_offset_arcsec < 0.3 * 3600
            (artifact,) = record.artifacts
            assert report.artifact_id == artifact.artifact_id
            path = tmp_path / "artifacts" / record.observation_id / f"{artifact.artifact_id}.fits"
            with fits.open(path) as hdul:
                h = hdul[0].header
                assert h["OBJECT"] == "Polaris field" and h["FILTER"].strip() == "V"
                assert h["SMJOBID"] == "j1" and h["SMSTATN"] == "tel-indi" and h["SMREQFLT"] == "V"
                assert h["SITELAT"] == pytest.approx(45.0, abs=1e-3)
                assert float(h["SITELONG"]) == pytest.approx(7.5, abs=1e-3)
                if "AIRMASS" in h:  # the driver's own, from the site it snooped off the mount
                    assert 1.0 <= float(h["AIRMASS"]) < 2.0
                ra_c, dec_c = float(h["CRVAL1"]), float(h["CRVAL2"])
                assert abs((ra_c - target[0] + 180) % 360 - 180) * math.cos(math.radians(target[1])) < 0.3
                assert dec_c == pytest.approx(target[1], abs=0.3)
                assert float(h["CDELT2"]) * 3600 == pytest.approx(206.265 * 5.2 / 900.0, rel=0.01)
                assert hashlib.sha256(path.read_bytes()).hexdigest() == artifact.sha256

            # A BLOB delivered twice, and a late one from before this exposure, are not taken for this exposure.
            previous = client.blobs[(CCD, "CCD1")].data
            stamped_before = read_header(previous).get("DATE-OBS")
            assert isinstance(stamped_before, str)
            earlier = datetime.fromisoformat(stamped_before) - timedelta(minutes=1)
            late = update_header(previous, {"DATE-OBS": (earlier.isoformat(timespec="milliseconds"), "a late one")})
            request = ExposureRequest(0.5, "V", "t", "Polaris field", *target, 10.0, 45.0, datetime.now(UTC))

            async def inject() -> None:
                await client.wait_for(
                    lambda: (p := client.get(CCD, "CCD_EXPOSURE")) is not None and p.state == "Busy", 10.0, "busy"
                )
                client._handle(ET.fromstring(_blob_xml(previous)))
                client._handle(ET.fromstring(_blob_xml(late)))

            injector = asyncio.create_task(inject())
            exposure = await camera.expose(request)
            await injector
            assert exposure.data != previous and exposure.data != late
            stamped = read_header(exposure.data).get("DATE-OBS")
            assert isinstance(stamped, str) and datetime.fromisoformat(stamped).replace(tzinfo=UTC) >= (
                request.start - timedelta(seconds=2)
            )

            # indiserver killed: the devices say so; restarted: the next job reconnects and sets everything up again.
            server.terminate()
            server.wait(5)
            with contextlib.suppress(Exception):
                await camera.expose(request)
            assert not camera.health().connected and camera.health().consecutive_errors > 0
        except BaseException:
            await drivers.close()
            raise
    with daemon(_indiserver(port), port):
        try:
            for _ in range(50):  # idle telemetry (camera temperature) reconnects, paced by the backoff
                with contextlib.suppress(DriverError):
                    await camera.temperature_c()
                    break
                await asyncio.sleep(0.2)
            assert client.connected
            await client.new_text(CCD, "FILTER_NAME", {"FILTER_SLOT_NAME_2": "V"})
            await client.wait_for(lambda: "V" in camera.filters(), 5.0, "filter names")
            ra0, dec0 = await mount.get_radec()
            again = ((ra0 + 5.0) % 360.0, min(dec0, 85.0) - 2.0)
            record = await perform_job(
                _job("j2", *again, "After restart"), JobContext(config, drivers, SystemClock(), {}, {})
            )
            assert record.exposures[0].filter_in_place == "V"
            assert camera.health().healthy and camera.health().errors_total > 0
            geo = client.get(TELESCOPE, "GEOGRAPHIC_COORD")
            assert geo is not None and geo.number("LAT") == pytest.approx(45.0)
        finally:
            await drivers.close()
