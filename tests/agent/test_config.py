"""AgentConfig from YAML plus SKYMESH_AGENT_* overrides; errors name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from skymesh.agent.config import load_config
from skymesh.core.errors import InvalidArgument
from skymesh.core.model import StationKind

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "agent"


def test_examples_load() -> None:
    gs = load_config(EXAMPLES / "ground-station.yaml", env={"SKYMESH_AGENT_API_KEY": "k"})
    assert gs.kind == StationKind.GROUND_STATION and gs.drivers.rotator.kind == "simulated"
    tel = load_config(EXAMPLES / "telescope.yaml", env={"SKYMESH_AGENT_API_KEY": "k"})
    assert tel.kind == StationKind.TELESCOPE and tel.drivers.camera.kind == "simulated"


def test_yaml_env_overrides_and_key_file(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("smk_abc_def\n")
    (tmp_path / "a.yaml").write_text(
        "station_id: gs-1\nserver_address: 10.0.0.1:50051\napi_key_file: key\nstate_dir: state\n"
        "drivers:\n  rotator: {kind: rotctld, host: 127.0.0.1, port: 4533}\n  radio: {kind: rigctld}\n"
        "limits: {azimuth_min_deg: -180, azimuth_max_deg: 450}\n"
    )
    config = load_config(tmp_path / "a.yaml", env={"SKYMESH_AGENT_SERVER_ADDRESS": "server:443"})
    assert config.api_key == "smk_abc_def"
    assert config.server_address == "server:443"
    assert config.state_dir == tmp_path / "state"
    assert config.drivers.rotator.effective_port == 4533 and config.drivers.radio.effective_port == 4532
    assert config.limits.azimuth_max_deg == 450.0


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("station_id: ''\n", "station_id"),
        ("station_id: a\ntelemetry_rate_hz: fast\n", "telemetry_rate_hz"),
        ("station_id: a\ndrivers: {rotator: {kind: magic}}\n", "drivers.rotator.kind"),
        ("station_id: a\ndrivers: {rotator: {kind: rotctld, port: 99999}}\n", "drivers.rotator.port"),
        ("station_id: a\nlocation: {latitude_deg: 123}\n", "latitude_deg"),
        ("station_id: a\nlimits: {slew_rate_deg_s: 0}\n", "limits.slew_rate_deg_s"),
        ("station_id: a\nbogus: 1\n", "bogus"),
        ("station_id: a\napi_key_file: missing\n", "api_key_file"),
    ],
)
def test_errors_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    (tmp_path / "a.yaml").write_text(text)
    with pytest.raises(InvalidArgument) as info:
        load_config(tmp_path / "a.yaml", env={})
    assert info.value.field is not None and field in info.value.field


def test_cli_check_validates_and_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from skymesh.cli.main import main

    (tmp_path / "a.yaml").write_text("station_id: gs-9\napi_key: k\nstate_dir: s\n")
    assert main(["agent", "--config", str(tmp_path / "a.yaml"), "--check"]) == 0
    out = capsys.readouterr().out
    assert "station gs-9 (ground_station)" in out and "rotator: simulated" in out
    (tmp_path / "b.yaml").write_text("station_id: gs-9\ndrivers: {radio: {kind: sdr}}\n")
    assert main(["agent", "--config", str(tmp_path / "b.yaml"), "--check"]) == 2
    assert "drivers.radio.kind" in capsys.readouterr().err
