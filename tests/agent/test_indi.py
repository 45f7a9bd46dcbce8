"""INDI drivers against a real indiserver running the telescope and CCD simulators."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from skymesh.agent.drivers.base import ExposureRequest
from skymesh.agent.drivers.indi import IndiCamera, IndiClient, IndiMount, _parse_sexagesimal
from skymesh.astro.celestial import precess_from_j2000
from skymesh.astro.frames import datetime_to_jd
from tests.agent.daemons import daemon, free_port, require_binary


def test_sexagesimal_numbers() -> None:
    assert _parse_sexagesimal("12:30:00") == 12.5
    assert _parse_sexagesimal("-10:15") == -10.25
    assert _parse_sexagesimal("1.25") == 1.25


async def test_indi_simulators_slew_and_expose() -> None:
    binary = require_binary("indiserver", "indi-bin")
    require_binary("indi_simulator_telescope", "indi-bin")
    port = free_port()
    # -u: its own local socket, so parallel indiservers (other tests, a developer's) do not collide.
    argv = [
        binary,
        "-p",
        str(port),
        "-u",
        f"/tmp/skymesh-indi-{port}",
        "indi_simulator_telescope",
        "indi_simulator_ccd",
    ]
    with daemon(argv, port):
        client = IndiClient("127.0.0.1", port, timeout_s=15.0)
        mount = IndiMount(client, "Telescope Simulator", slew_timeout_s=60.0)
        camera = IndiCamera(client, "CCD Simulator", readout_timeout_s=30.0)
        await mount.connect()
        await camera.connect()
        try:
            ra0, dec0 = await mount.get_radec()
            # A short slew (the simulator moves at ~5 deg/s and starts near the pole).
            target_ra, target_dec = (ra0 + 15.0) % 360.0, 80.0 if dec0 > 70.0 else dec0 + 8.0
            await mount.slew(target_ra, target_dec)
            ra, dec = await mount.get_radec()  # of date: the J2000 target precessed to now
            ra_now, dec_now = precess_from_j2000([target_ra], [target_dec], [datetime_to_jd(datetime.now(UTC))])
            assert abs((ra - float(ra_now[0]) + 180.0) % 360.0 - 180.0) < 1.0
            assert dec == pytest.approx(float(dec_now[0]), abs=0.1)
            request = ExposureRequest(0.2, "V", "t", "Target", target_ra, target_dec, 10.0, 60.0, datetime.now(UTC))
            exposure = await camera.expose(request)
            assert exposure.data_format == ".fits"
            assert exposure.data.startswith(b"SIMPLE  =")
            assert len(exposure.data) % 2880 == 0 and len(exposure.data) > 100_000
        finally:
            await camera.close()
            await mount.close()
