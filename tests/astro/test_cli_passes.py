"""`skymesh passes` as a subprocess: JSON output agrees with Skyfield; bad input gives one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from skymesh.astro.frames import datetime_to_jd
from skymesh.astro.tle import TLE
from skymesh.astro.tle_gen import generate_tles
from tests.astro.skyfield_ref import skyfield_passes

START = datetime(2026, 11, 22, 5, 0, tzinfo=UTC)
LAT, LON, ALT_M = 47.37, 8.54, 408.0


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skymesh.cli.main", "passes", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tle_file(tmp_path: Path) -> tuple[Path, list[TLE]]:
    tles = generate_tles("iss", 2, START, seed=77) + generate_tles("sso", 3, START, seed=77)
    path = tmp_path / "fleet.tle"
    path.write_text("".join(t.as_text() for t in tles))
    return path, tles


def test_json_agrees_with_skyfield(tle_file: tuple[Path, list[TLE]]) -> None:
    path, tles = tle_file
    proc = _run(
        "--tle", str(path), "--lat", str(LAT), "--lon", str(LON), "--alt-m", str(ALT_M),
        "--start", "2026-11-22T05:00:00Z", "--hours", "24", "--min-elevation-deg", "10", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert rows and set(rows[0]) == {"norad_id", "name", "aos", "tca", "los", "max_elevation_deg"}
    aos = [datetime.fromisoformat(r["aos"]) for r in rows]
    assert aos == sorted(aos)
    assert all(r["aos"].endswith("Z") and r["los"].endswith("Z") for r in rows)
    assert {r["norad_id"] for r in rows} <= {t.norad_id for t in tles}

    ref = skyfield_passes(tles, [LAT], [LON], [ALT_M], START, START + timedelta(hours=24), 10.0)
    assert len(ref) > 5
    by_id = {t.norad_id: i for i, t in enumerate(tles)}
    for p in ref:
        match = [
            r
            for r in rows
            if by_id[r["norad_id"]] == p.sat_index
            and abs(datetime_to_jd(datetime.fromisoformat(r["aos"])) - p.aos_jd_utc) * 86400 < 60
        ]
        assert len(match) == 1, p
        r = match[0]
        assert abs(datetime_to_jd(datetime.fromisoformat(r["aos"])) - p.aos_jd_utc) * 86400 < 1.0
        assert abs(datetime_to_jd(datetime.fromisoformat(r["los"])) - p.los_jd_utc) * 86400 < 1.0
        assert abs(r["max_elevation_deg"] - p.max_elevation_deg) < 0.05
    # Skyfield's list holds complete passes only; ours may add at most one clipped pass per end per satellite.
    assert len(ref) <= len(rows) <= len(ref) + 2 * len(tles)


def test_table_output(tle_file: tuple[Path, list[TLE]]) -> None:
    path, _ = tle_file
    proc = _run("--tle", str(path), "--lat", "-33.9", "--lon", "18.4", "--start", "2026-11-22T05:00:00+00:00")
    assert proc.returncode == 0, proc.stderr
    assert "AOS (UTC)" in proc.stdout and "SKYM-" in proc.stdout


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--lat", "95", "--lon", "0", "--start", "2026-11-22T00:00:00Z"], "lat"),
        (["--lat", "10", "--lon", "0", "--start", "2026-11-22T00:00:00"], "time zone"),
        (["--lat", "10", "--lon", "0", "--start", "yesterday"], "ISO 8601"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tle_file: tuple[Path, list[TLE]], extra: list[str], words: str) -> None:
    path, _ = tle_file
    proc = _run("--tle", str(path), *extra)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr


def test_bad_checksum_is_one_line_and_exit_2(tmp_path: Path) -> None:
    tle = generate_tles("iss", 1, START, seed=1)[0]
    bad = tle.line1[:68] + str((int(tle.line1[68]) + 1) % 10)
    path = tmp_path / "bad.tle"
    path.write_text(f"{tle.name}\n{bad}\n{tle.line2}\n")
    proc = _run("--tle", str(path), "--lat", "10", "--lon", "0", "--start", "2026-11-22T00:00:00Z")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "checksum" in lines[0] and "line 2" in lines[0]
    missing = _run("--tle", str(tmp_path / "nope.tle"), "--lat", "10", "--lon", "0")
    assert missing.returncode == 2 and "cannot read" in missing.stderr
