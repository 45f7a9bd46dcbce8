"""An LVK alert's sky map becomes targets through the real ingest path (a real server with its worker pool, SQLite and
PostgreSQL): the notice carries a multi-order HEALPix map (written here from the public format: a 3 degree Gaussian
blob), the workers tile its 90 % region with the widest telescope's field of view, the tiles become targets ranked
by probability with the alert rule's priority and time-critical window, and the GW retraction cancels their pending
jobs with ALERT_RETRACTED and deletes them. A map that cannot be read leaves the alert stored, with the reason; one
stored just before the server stopped is tiled at the next start."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from datetime import timedelta

import numpy as np
import pytest
from astropy.io import fits
from astropy_healpix import healpix_to_lonlat, level_ipix_to_uniq
from numpy.typing import NDArray

from skymesh.core.jobs import JobState
from skymesh.core.model import CelestialTarget, GeoLocation, Station, StationKind, TimeWindow
from skymesh.server.alerts import parse_alerts
from skymesh.server.alerts.model import AlertStatus
from skymesh.server.db.alerts import CAUSE_ALERT_RETRACTED
from skymesh.server.db.records import PlannedJob
from tests.products.test_skymap import DEC0, RA0, SIGMA_DEG, _blob, _fits
from tests.server.alerts.packets import fixture
from tests.server.conftest import StartServer

FOV_DEG = 3.0


def multi_order_map(sigma_deg: float = SIGMA_DEG) -> bytes:
    """BAYESTAR's layout, small: order 5 everywhere, order 7 within 4 sigma of the peak (UNIQ, PROBDENSITY per sr)."""

    def blob(ra: NDArray[np.float64], dec: NDArray[np.float64]) -> NDArray[np.float64]:
        return _blob(ra, dec) ** ((SIGMA_DEG / sigma_deg) ** 2)  # the same Gaussian with sigma_deg

    coarse = np.arange(12 * 4**5)
    lon, lat = healpix_to_lonlat(coarse, 2**5, order="nested")
    near = _blob(lon.deg, lat.deg) > math.exp(-0.5 * 16)
    children = (coarse[near][:, None] * 16 + np.arange(16)).ravel()  # order 7 = order 5 + 2 levels
    clon, clat = healpix_to_lonlat(children, 2**7, order="nested")
    uniq = np.r_[level_ipix_to_uniq(5, coarse[~near]), level_ipix_to_uniq(7, children)].astype(np.int64)
    density = np.r_[blob(lon.deg[~near], lat.deg[~near]), blob(clon.deg, clat.deg)]
    area = np.r_[np.full((~near).sum(), 4 * math.pi / (12 * 4**5)), np.full(len(children), 4 * math.pi / (12 * 4**7))]
    density /= np.sum(density * area)
    cards = {"PIXTYPE": "HEALPIX", "ORDERING": "NUNIQ", "COORDSYS": "C", "MOCORDER": 7, "INDXSCHM": "EXPLICIT",
             "OBJECT": "S261130bm"}  # fmt: skip
    return _fits(
        [fits.Column(name="UNIQ", format="K", array=uniq), fits.Column(name="PROBDENSITY", format="D", array=density)],
        cards,
    )


def _lvk_notice(skymap: bytes, *, superevent: str = "S261130bm", created: str = "2026-11-30T12:01:12Z") -> bytes:
    doc = json.loads(fixture("lvk_preliminary.json"))
    doc["superevent_id"] = superevent
    doc["time_created"] = created
    doc["event"]["skymap"] = base64.b64encode(skymap).decode()
    return json.dumps(doc).encode()


def _separation_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    cos_c = math.sin(d1) * math.sin(d2) + math.cos(d1) * math.cos(d2) * math.cos(r1 - r2)
    return math.degrees(math.acos(max(-1.0, min(1.0, cos_c))))


async def test_gw_skymap_becomes_ranked_targets_and_retraction_cancels_them(start_server: StartServer) -> None:
    server = await start_server(reduction_workers=1)
    repo = server.repo
    await repo.create_station(
        Station("tel1", "T1", StationKind.TELESCOPE, GeoLocation(-30.2, -70.7, 2200.0), fov_deg=FOV_DEG)
    )
    await repo.create_station(
        Station("tel2", "T2", StationKind.TELESCOPE, GeoLocation(28.8, -17.9, 2400.0), fov_deg=0.5)
    )

    result = await server.alerts.ingest(_lvk_notice(multi_order_map()), origin="test")
    (outcome,) = result.outcomes
    record = outcome.record
    assert record.status == AlertStatus.ACCEPTED and result.replan_requested, record.error
    assert record.target_id == "s261130bm-t01" and record.priority == 9
    assert record.window is not None and record.window.end - record.window.start == timedelta(days=1)

    tiles = await repo.alert_tiles(record.alert_id)
    assert [rank for _, rank, _ in tiles] == list(range(1, 11))  # the rule's max_targets
    probabilities = [p for _, _, p in tiles]
    assert probabilities == sorted(probabilities, reverse=True)
    # The first tile is centred on the peak: a 3 x 3 degree square holds erf(1.5 / (3 sqrt 2))^2 = 14.7 % of a
    # circular Gaussian of sigma 3 degrees (less a little: pixel centres, not area, decide what a tile holds).
    square = math.erf(FOV_DEG / 2 / (SIGMA_DEG * math.sqrt(2))) ** 2
    assert probabilities[0] == pytest.approx(square, abs=0.015)
    assert 0.4 < sum(probabilities) < 0.6  # ten tiles of 9 deg2 over a 90 % region of 130 deg2
    targets = {r.target.target_id: r.target for r in await repo.list_targets()}
    first = targets["s261130bm-t01"]
    assert isinstance(first, CelestialTarget)
    assert first.priority == 9 and first.name == "S261130bm tile 1"
    assert _separation_deg(first.ra_deg, first.dec_deg, RA0, DEC0) < FOV_DEG  # tiles start at the densest pixel
    for target_id, _, _ in tiles:
        assert isinstance(targets[target_id], CelestialTarget)
        assert _separation_deg(targets[target_id].ra_deg, targets[target_id].dec_deg, RA0, DEC0) < 4 * FOV_DEG
        assert 1 <= targets[target_id].priority <= 9
    windows = await repo.alert_windows(repo.clock.now())
    assert {t for t, _, _ in tiles} <= set(windows)  # every tile is time-critical for the planner

    again = await server.alerts.ingest(_lvk_notice(multi_order_map()), origin="test")
    assert again.outcomes[0].duplicate and len(await repo.alert_tiles(record.alert_id)) == 10

    now = repo.clock.now()
    plan = [
        PlannedJob("tel1", tile, TimeWindow(now + timedelta(minutes=m), now + timedelta(minutes=m + 5)))
        for m, tile in ((10, "s261130bm-t01"), (30, "s261130bm-t02"), (50, "s261130bm-t10"))
    ]
    await repo.apply_plan(["tel1"], plan)
    assert {j.state for j in await repo.list_jobs(station_id="tel1")} == {JobState.SCHEDULED}

    # An UPDATE with a sharper map (sigma 1 degree: 90 % in 14 deg2) needs fewer tiles: the ones it shares are moved
    # to its positions, the rest are deleted and their pending jobs cancelled as SUPERSEDED.
    update = await server.alerts.ingest(
        _lvk_notice(multi_order_map(sigma_deg=1.0), created="2026-11-30T12:20:00Z"), origin="test"
    )
    updated = update.outcomes[0].record
    assert updated.status == AlertStatus.ACCEPTED and updated.alert_id != record.alert_id
    kept = [t for t, _, _ in await repo.alert_tiles(updated.alert_id)]
    assert 2 <= len(kept) < 10 and kept[0] == "s261130bm-t01"
    live = {r.target.target_id for r in await repo.list_targets()}
    assert live == set(kept)
    by_target = {j.target_id: j for j in await repo.list_jobs(station_id="tel1")}
    assert by_target["s261130bm-t10"].state == JobState.CANCELLED and by_target["s261130bm-t10"].cause == 6
    assert by_target["s261130bm-t01"].state == JobState.SCHEDULED
    tiles = [(t, 0, 0.0) for t in {t for t, _, _ in tiles} | set(kept)]

    retraction = await server.alerts.ingest(fixture("lvk_retraction.json"), origin="test")
    assert retraction.outcomes[0].record.status == AlertStatus.RETRACTION and retraction.replan_requested
    jobs = {j.target_id: j for j in await repo.list_jobs(station_id="tel1")}
    assert len(jobs) == 3
    for target_id in ("s261130bm-t01", "s261130bm-t02"):
        assert jobs[target_id].state == JobState.CANCELLED and jobs[target_id].cause == CAUSE_ALERT_RETRACTED
    assert not any(r.target.target_id.startswith("s261130bm-") for r in await repo.list_targets())
    assert not set(await repo.alert_windows(repo.clock.now())) & {t for t, _, _ in tiles}


async def test_unreadable_skymap_keeps_the_alert_stored(start_server: StartServer) -> None:
    server = await start_server(reduction_workers=1)
    for n, skymap in enumerate((b"SIMPLE  =                    T", b"\x1f\x8b\x08\x00garbage")):
        result = await server.alerts.ingest(_lvk_notice(skymap, superevent=f"S26120{n}a"), origin="test")
        record = result.outcomes[0].record
        assert record.status == AlertStatus.STORED and not record.target_id and not result.replan_requested
        assert record.error.startswith("sky map not tiled:"), record.error
    assert await server.repo.list_targets() == []


async def test_a_skymap_stored_before_a_stop_is_tiled_at_the_next_start(start_server: StartServer) -> None:
    """The server stopped between storing an LVK alert and tiling its map: the next start tiles it."""
    first = await start_server(reduction_workers=0)
    packet = _lvk_notice(multi_order_map(), superevent="S261202c")
    (alert,) = parse_alerts(packet)
    config = first.config.alerts
    stored = await first.repo.store_alert(
        alert, packet, origin="test", rule=config.rule_for("gcn", "lvk"), match_radius_deg=config.match_radius_deg
    )  # what ingest does before it tiles
    assert stored.record.status == AlertStatus.STORED
    await first.stop(grace_s=0.1)

    second = await start_server(reduction_workers=1)
    deadline = asyncio.get_running_loop().time() + 60.0
    while (record := (await second.repo.get_alert(stored.record.alert_id))[0]).status == AlertStatus.STORED:
        assert asyncio.get_running_loop().time() < deadline, record.error
        await asyncio.sleep(0.2)
    assert record.status == AlertStatus.ACCEPTED and record.target_id == "s261202c-t01"
    assert len(await second.repo.alert_tiles(record.alert_id)) == 10
