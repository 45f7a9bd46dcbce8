"""`skymesh telemetry` against a real server with authentication on, over real gRPC, on SQLite and PostgreSQL: it
reads what the station sent through ListTelemetry (never the database), across pages, filtered; bad options are one
line on stderr and exit 2."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from skymesh.server.db.records import TelemetryIn
from tests.server.conftest import StartServer, add_station
from tests.server.test_cli_operator import Capture, Cli


@pytest.fixture
async def cli(start_server: StartServer, capsys: Capture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.chdir(tmp_path)
    server = await start_server(control_auth=True)
    return Cli(server, capsys, server.config.admin_token_path)


async def test_telemetry_command(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("skymesh.cli.telemetry.PAGE_SIZE", 7)
    await add_station(cli.server, "gs-athens")
    now = datetime.now(UTC).replace(microsecond=0)
    old = now - timedelta(hours=3)
    batches = []
    for k in range(5):  # 5 batches of 6 one-second samples, 10 minutes apart, ending about 10 minutes ago
        start = now - timedelta(minutes=50 - 10 * k)
        samples = [
            {
                "at": (start + timedelta(seconds=i)).isoformat(),
                "values": {"rotator.azimuth_deg": float(10 * k + i), **({"radio.snr_db": 3.5} if i == 0 else {})},
            }
            for i in range(6)
        ]
        batches.append(("gs-athens", "boot-1", k + 2, TelemetryIn.from_samples(samples)))
    early = TelemetryIn.from_samples([{"at": old.isoformat(), "values": {"rotator.azimuth_deg": -1.0}}])
    await cli.server.repo.ingest_telemetry_many([("gs-athens", "boot-1", 1, early), *batches])

    # Default: the last hour, oldest first, every page followed.
    got = await cli.json("telemetry", "--station", "gs-athens")
    assert len(got["samples"]) == 30
    assert [s["values"]["rotator.azimuth_deg"] for s in got["samples"]][:7] == [0, 1, 2, 3, 4, 5, 10]
    assert got["samples"][0]["boot_id"] == "boot-1"
    out, err = await cli("telemetry", "--station", "gs-athens", "--since", "4h", "--limit", "12")
    lines = out.splitlines()
    assert lines[0].split() == ["AT", "BOOT", "radio.snr_db", "rotator.azimuth_deg"]
    assert len(lines) == 13 and lines[1].split()[-1] == "-1" and "more match" in err

    # A channel, an explicit range.
    snr = await cli.json("telemetry", "--station", "gs-athens", "--channel", "radio.snr_db", "--since", "1d")
    assert [s["values"] for s in snr["samples"]] == [{"radio.snr_db": 3.5}] * 5
    start = (now - timedelta(minutes=40)).isoformat()
    end = (now - timedelta(minutes=30)).isoformat()
    ranged = await cli.json("telemetry", "--station", "gs-athens", "--after", start, "--before", end)
    assert [s["values"]["rotator.azimuth_deg"] for s in ranged["samples"]] == [10, 11, 12, 13, 14, 15]
    out, _ = await cli("telemetry", "--station", "gs-athens", "--after", "2020-01-01T00:00:00Z", "--before", start)
    assert "-1" in out and out.count("\n") == 1 + 1 + 6  # header, the early sample, the first batch
    out, _ = await cli("telemetry", "--station", "gs-athens", "--channel", "nothing-here")
    assert out.strip() == "no telemetry in that range"

    # Bad input: one line, exit 2, naming the option or the field.
    for argv, words in (
        (("--station", "nope"), "NOT_FOUND"),
        (("--station", "gs-athens", "--since", "1h", "--after", "now"), "--since"),
        (("--station", "gs-athens", "--since", "soon"), "--since"),
        (("--station", "gs-athens", "--after", "now", "--before", "2020-01-01"), "--before"),
        (("--station", "gs-athens", "--after", "yesterday"), "--after"),
        (("--station", "gs-athens", "--limit", "-1"), "--limit"),
        (("--station", "gs-athens", "--channel", ""), "channels[0]"),
    ):
        _, err = await cli("telemetry", *argv, ok=False)
        assert words in err, (argv, err)
    # The JSON is the API's message, parseable as a whole.
    out, _ = await cli("telemetry", "--station", "gs-athens", "--json", "--limit", "1")
    assert len(json.loads(out)["samples"]) == 1
