"""The operator's command line (`skymesh stations|targets|campaigns|jobs|observations|users|keys`) against a real
server with authentication on, over real gRPC, on SQLite and PostgreSQL: every action works, `--json` parses, and
bad input is one line on stderr, a non-zero exit and no change on the server."""

from __future__ import annotations

import asyncio
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import stations_pb2, stations_pb2_grpc
from skymesh.cli import control
from skymesh.cli.main import main
from skymesh.core.errors import NotFound
from skymesh.core.model import CelestialTarget, TimeWindow
from skymesh.server import RunningServer
from skymesh.server.db.records import PlannedJob, Role
from skymesh.server.wire import observation_from_proto
from tests.server.agent_client import observation_record
from tests.server.conftest import ISS_LINE1, ISS_LINE2, StartServer, add_station

Capture = pytest.CaptureFixture[str]


class Cli:
    def __init__(self, server: RunningServer, capsys: Capture, token_file: Path) -> None:
        self.server = server
        self.capsys = capsys
        self.token_file = token_file

    async def __call__(self, *argv: str, ok: bool = True) -> tuple[str, str]:
        """Run `skymesh ARGV --server ... --token-file ...`; (stdout, stderr). Asserts exit 0 if ok, else 2."""
        self.capsys.readouterr()
        full = [*argv, "--server", self.server.address, "--token-file", str(self.token_file)]
        code = await asyncio.to_thread(main, full)
        out, err = self.capsys.readouterr()
        assert code == (0 if ok else 2), (argv, out, err)
        if not ok:
            assert err.startswith("skymesh: error: ") and "Traceback" not in err, err
        return out, err

    async def json(self, *argv: str) -> Any:
        out, _ = await self(*argv, "--json")
        return json.loads(out)


@pytest.fixture
async def cli(start_server: StartServer, capsys: Capture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.chdir(tmp_path)  # nothing here may be written next to the caller (no stray var/skymesh.sqlite3)
    server = await start_server(control_auth=True)
    return Cli(server, capsys, server.config.admin_token_path)


async def test_stations(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, _ = await cli(
        "stations", "create", "gs-athens", "--kind", "ground-station", "--lat", "37.98", "--lon", "23.73",
        "--alt-m", "100", "--bands", "UHF,VHF", "--min-elevation-deg", "10",
    )  # fmt: skip
    assert "created station gs-athens" in out and "skymesh keys issue gs-athens" in out
    made = await cli.json("stations", "create", "tel-1", "--kind", "telescope", "--lat", "-30.2", "--lon", "-70.7")
    assert made["station_id"] == "tel-1" and made["kind"] == "STATION_KIND_TELESCOPE"

    listed = await cli.json("stations", "list")
    assert [s["station_id"] for s in listed["stations"]] == ["gs-athens", "tel-1"]
    assert all(s["state"] == "STATION_STATE_OFFLINE" for s in listed["stations"])
    only = await cli.json("stations", "list", "--kind", "telescope")
    assert [s["station_id"] for s in only["stations"]] == ["tel-1"]
    out, _ = await cli("stations", "list")
    assert out.splitlines()[0].split()[:4] == ["STATION", "NAME", "KIND", "STATE"]
    assert "gs-athens" in out and "OFFLINE" in out
    got = await cli.json("stations", "get", "gs-athens")
    assert got["bands"] == ["UHF", "VHF"] and got["location"]["latitude_deg"] == pytest.approx(37.98)
    weather = await cli.json("stations", "weather", "tel-1", "cloudy")
    assert weather["weather"] == "WEATHER_CLOUDY"

    # Update: only what is given changes; the rest of the location stays.
    moved = await cli.json("stations", "update", "gs-athens", "--lat", "38.0", "--name", "Athens", "--bands", "")
    assert moved["location"]["latitude_deg"] == pytest.approx(38.0)
    assert moved["location"]["longitude_deg"] == pytest.approx(23.73) and moved["name"] == "Athens"
    assert moved["bands"] == [] and moved["min_elevation_deg"] == 10
    _, err = await cli("stations", "update", "gs-athens", "--lat", "95", ok=False)
    assert "latitude" in err
    _, err = await cli("stations", "update", "gs-athens", ok=False)
    assert "nothing to change" in err
    _, err = await cli("stations", "update", "gs-nowhere", "--name", "x", ok=False)
    assert "NOT_FOUND" in err
    async with grpc.aio.insecure_channel(cli.server.address) as channel:
        request = stations_pb2.UpdateStationRequest(station=common_pb2.Station(station_id="gs-athens", state=1))
        request.update_mask.paths.append("state")
        token = cli.token_file.read_text().strip()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stations_pb2_grpc.StationServiceStub(channel).UpdateStation(
                request, metadata=(("authorization", f"Bearer {token}"),)
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "update_mask.paths[0]" in (refused.value.details() or "")
    kept = await cli.json("stations", "get", "gs-athens")
    assert kept["location"]["latitude_deg"] == pytest.approx(38.0) and kept["state"] == "STATION_STATE_OFFLINE"

    # The CLI follows pages: with two per page it still sees every station once.
    monkeypatch.setattr(control, "PAGE_SIZE", 1)
    for i in range(3):
        await add_station(cli.server, f"gs-{i}")
    paged = await cli.json("stations", "list")
    assert [s["station_id"] for s in paged["stations"]] == ["gs-0", "gs-1", "gs-2", "gs-athens", "tel-1"]

    # Bad input: one line, exit 2, nothing changed.
    _, err = await cli("stations", "get", "gs-nowhere", ok=False)
    assert "NOT_FOUND" in err and "gs-nowhere" in err
    _, err = await cli("stations", "create", "Bad_Id", "--kind", "telescope", "--lat", "0", "--lon", "0", ok=False)
    assert "INVALID_ARGUMENT" in err and "station_id" in err
    _, err = await cli("stations", "create", "gs-far", "--kind", "telescope", "--lat", "95", "--lon", "0", ok=False)
    assert "latitude" in err
    _, err = await cli("stations", "create", "gs-athens", "--kind", "telescope", "--lat", "1", "--lon", "1", ok=False)
    assert "ALREADY_EXISTS" in err
    _, err = await cli("stations", "delete", "gs-athens", ok=False)
    assert "--yes" in err
    assert len((await cli.json("stations", "list"))["stations"]) == 5
    assert (await cli.json("stations", "get", "gs-athens"))["location"]["latitude_deg"] == pytest.approx(38.0)

    gone = await cli.json("stations", "delete", "gs-athens", "--yes")
    assert gone == {"station_id": "gs-athens", "revoked_key_count": 0, "cancelled_job_count": 0}
    await cli("stations", "get", "gs-athens", ok=False)
    assert not (tmp_path / "var").exists()


async def test_keys_go_through_the_server(cli: Cli, tmp_path: Path) -> None:
    await add_station(cli.server, "gs-athens")
    key_file = tmp_path / "keys" / "gs-athens.key"
    out, _ = await cli("keys", "issue", "gs-athens", "--out", str(key_file))
    assert "written to" in out and "smk_" not in out
    key = key_file.read_text().strip()
    assert key.startswith("smk_") and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    station_id, key_id = await cli.server.repo.authenticate_station(key)
    assert station_id == "gs-athens" and f"key_id: {key_id}" in out
    # A second issue never overwrites the file an agent reads.
    _, err = await cli("keys", "issue", "gs-athens", "--out", str(key_file), ok=False)
    assert "exists" in err and key_file.read_text().strip() == key
    # An unknown station: a clear error, and no file.
    _, err = await cli("keys", "issue", "gs-nowhere", "--out", str(tmp_path / "nope.key"), ok=False)
    assert "NOT_FOUND" in err and not (tmp_path / "nope.key").exists()
    await cli("keys", "revoke", key_id)
    assert not await cli.server.repo.key_is_valid(key_id)
    out, _ = await cli("keys", "user", "otto", "--role", "observer")
    assert out.startswith("token: smu_")
    # Nothing was written beside the caller: the keys went to the server's own database.
    assert not (tmp_path / "var").exists()

    # An observer may read but not change.
    observer = tmp_path / "otto.token"
    observer.write_text(out.removeprefix("token:").strip())
    observer.chmod(0o600)
    as_otto = Cli(cli.server, cli.capsys, observer)
    await as_otto("stations", "list")
    _, err = await as_otto("stations", "create", "gs-x", "--kind", "telescope", "--lat", "0", "--lon", "0", ok=False)
    assert "PERMISSION_DENIED" in err
    with pytest.raises(NotFound):
        await cli.server.repo.get_station("gs-x")


async def test_targets_and_campaigns(cli: Cli, tmp_path: Path) -> None:
    tle = tmp_path / "iss.tle"
    tle.write_text(f"ISS (ZARYA)\n{ISS_LINE1}\n{ISS_LINE2}\n")
    camp = await cli.json("campaigns", "create", "winter", "--name", "Winter", "--priority-boost", "2")
    assert camp["campaign_id"] == "winter" and camp["priority_boost"] == 2
    out, _ = await cli("targets", "create", "iss", "--tle-file", str(tle), "--priority", "7", "--campaign", "winter")
    assert "created target iss (NORAD 25544)" in out
    sky = await cli.json(
        "targets", "create", "delta-cep", "--ra-deg", "337.29", "--dec-deg", "58.415", "--magnitude", "4"
    )
    assert sky["celestial"]["ra_deg"] == pytest.approx(337.29)

    listed = await cli.json("targets", "list")
    assert [t["target_id"] for t in listed["targets"]] == ["delta-cep", "iss"]
    in_winter = await cli.json("targets", "list", "--campaign", "winter")
    assert [t["target_id"] for t in in_winter["targets"]] == ["iss"]
    got = await cli.json("targets", "get", "iss")
    assert got["name"] == "ISS (ZARYA)" and got["priority"] == 7
    campaigns = await cli.json("campaigns", "list")
    assert campaigns["campaigns"][0]["target_count"] == 1
    one = await cli.json("campaigns", "get", "winter")
    assert [t["target_id"] for t in one["targets"]] == ["iss"]
    out, _ = await cli("campaigns", "list")
    assert "winter" in out and "+2" in out

    # Bad input: nothing created, nothing changed.
    broken = tmp_path / "broken.tle"
    broken.write_text(f"{ISS_LINE1}\n{ISS_LINE2[:-1]}0\n")  # checksum no longer matches
    _, err = await cli("targets", "create", "bad", "--tle-file", str(broken), ok=False)
    assert "INVALID" in err and "tle" in err.lower()
    _, err = await cli("targets", "create", "bad", "--tle-file", str(tmp_path / "missing.tle"), ok=False)
    assert "--tle-file" in err
    _, err = await cli("targets", "create", "bad", "--ra-deg", "10", ok=False)
    assert "--dec-deg" in err
    _, err = await cli("targets", "create", "bad", "--tle-file", str(tle), "--campaign", "nope", ok=False)
    assert "NOT_FOUND" in err
    _, err = await cli("campaigns", "get", "nope", ok=False)
    assert "no campaign 'nope'" in err
    _, err = await cli("campaigns", "create", "late", "--start", "2026-12-02", "--end", "yesterday", ok=False)
    assert "--end" in err
    _, err = await cli("targets", "update", "delta-cep", "--tle-file", str(tle), ok=False)
    assert "not a satellite" in err
    assert [t["target_id"] for t in (await cli.json("targets", "list"))["targets"]] == ["delta-cep", "iss"]
    assert [c["campaign_id"] for c in (await cli.json("campaigns", "list"))["campaigns"]] == ["winter"]

    updated = await cli.json("targets", "update", "iss", "--tle-file", str(tle), "--elements-source", "celestrak")
    assert updated["satellite"]["elements_source"] == "celestrak"
    await cli("targets", "delete", "delta-cep")
    _, err = await cli("targets", "get", "delta-cep", ok=False)
    assert "NOT_FOUND" in err


async def test_jobs_and_observations(cli: Cli) -> None:
    repo = cli.server.repo
    await add_station(cli.server, "gs-athens")
    await add_station(cli.server, "gs-delft")
    await repo.create_target(CelestialTarget("m31", "M31", 10.68, 41.27))
    now = datetime.now(UTC)
    soon = TimeWindow(now + timedelta(hours=2), now + timedelta(hours=2, minutes=10))
    later = TimeWindow(now + timedelta(hours=30), now + timedelta(hours=30, minutes=10))
    await repo.apply_plan(
        ["gs-athens", "gs-delft"],
        [
            PlannedJob("gs-athens", "m31", soon),
            PlannedJob("gs-athens", "m31", later),
            PlannedJob("gs-delft", "m31", soon),
        ],
    )
    out, _ = await cli("jobs", "list", "--station", "gs-athens", "--next", "24h")
    header, *rows = out.splitlines()
    assert header.split()[:5] == ["START", "END", "STATION", "TARGET", "STATE"]
    assert len(rows) == 1 and "gs-athens" in rows[0] and "m31" in rows[0] and "SCHEDULED" in rows[0]
    assert soon.start.strftime("%Y-%m-%d %H:%M:%SZ") in rows[0]
    everything = await cli.json("jobs", "list")
    assert len(everything["jobs"]) == 3
    athens = await cli.json("jobs", "list", "--station", "gs-athens", "--state", "scheduled")
    assert len(athens["jobs"]) == 2
    job_id = athens["jobs"][0]["job_id"]

    _, err = await cli("jobs", "list", "--station", "gs-nowhere", ok=False)
    assert "NOT_FOUND" in err and "gs-nowhere" in err
    _, err = await cli("jobs", "list", "--next", "soon", ok=False)
    assert "--next" in err
    _, err = await cli("jobs", "list", "--next", "1h", "--last", "1h", ok=False)
    assert "--next" in err
    _, err = await cli("jobs", "cancel", "no-such-job", ok=False)
    assert "NOT_FOUND" in err
    assert len((await cli.json("jobs", "list", "--state", "scheduled"))["jobs"]) == 3

    report = await cli.json("status")
    athens_status = next(st for st in report["stations"] if st["station_id"] == "gs-athens")
    assert athens_status["next_job"]["job_id"] == job_id and athens_status["current_job"] is None
    out, _ = await cli("jobs", "cancel", job_id, "--reason", "clouds")
    assert "CANCELLED" in out
    report = await cli.json("status")
    athens_status = next(st for st in report["stations"] if st["station_id"] == "gs-athens")
    assert athens_status["next_job"]["job_id"] == athens["jobs"][1]["job_id"]
    out, _ = await cli("status")
    assert "m31 " in out.splitlines()[2]
    cancelled = await cli.json("jobs", "list", "--state", "cancelled")
    assert [j["job_id"] for j in cancelled["jobs"]] == [job_id] and cancelled["jobs"][0]["detail"] == "clouds"
    _, err = await cli("jobs", "cancel", job_id, ok=False)
    assert "FAILED_PRECONDITION" in err

    for magnitude in (11.0, 11.5, 12.0):
        record = observation_record(target_id="m31", magnitude=magnitude)
        await repo.submit_observation("gs-athens", observation_from_proto(record))
    found = await cli.json("observations", "list", "--station", "gs-athens", "--last", "1d")
    assert [o["record"]["photometry"]["magnitude"] for o in found["observations"]] == [12.0, 11.5, 11.0]
    two = await cli.json("observations", "list", "--target", "m31", "--limit", "2")
    assert len(two["observations"]) == 2
    out, _ = await cli("observations", "list")
    assert "gs-athens" in out and "12.000 (V)" in out
    assert (await cli.json("observations", "list", "--station", "gs-delft"))["observations"] == []
    _, err = await cli("observations", "list", "--station", "gs-nowhere", ok=False)
    assert "NOT_FOUND" in err


async def test_users_pages_and_json(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ada", "bob", "cy"):
        await cli.server.repo.create_user(name, Role.OPERATOR)
    monkeypatch.setattr(control, "PAGE_SIZE", 2)
    connection = ("--server", cli.server.address, "--token-file", str(cli.token_file))
    cli.capsys.readouterr()
    assert await asyncio.to_thread(main, ["users", *connection, "--json", "list"]) == 0
    listed = json.loads(cli.capsys.readouterr().out)
    assert [u["user_id"] for u in listed["users"]] == ["ada", "admin", "bob", "cy"]
    assert listed["users"][1]["role"] == "ROLE_ADMIN" and len(listed["users"][1]["tokens"]) == 1
    assert await asyncio.to_thread(main, ["users", *connection, "create", "Bad Name", "--role", "observer"]) == 2
    assert "user_id" in cli.capsys.readouterr().err
