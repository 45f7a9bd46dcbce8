"""The agent installs on a Raspberry Pi: `pip install skymesh` without extras pulls none of the server's heavy
dependencies, and the agent command still runs from that install."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {
    "ortools",
    "sqlalchemy",
    "fastapi",
    "astropy",
    "alembic",
    "asyncpg",
    "skyfield",
    "uvicorn",
    "opentelemetry-sdk",
}


@pytest.mark.slow
def test_agent_only_install_is_light(tmp_path: Path) -> None:
    env_dir = tmp_path / "pi"
    venv.create(env_dir, with_pip=True, system_site_packages=False)
    py = env_dir / "bin" / "python"
    subprocess.run(
        [py, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    listed = subprocess.run(
        [py, "-m", "pip", "list", "--format=freeze"], check=True, capture_output=True, text=True
    ).stdout
    installed = {line.split("==")[0].lower().replace("_", "-") for line in listed.splitlines()}
    assert not (installed & HEAVY), f"agent install pulled heavy packages: {sorted(installed & HEAVY)}"
    out = subprocess.run(
        [env_dir / "bin" / "skymesh", "agent", "--help"], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    assert "--config" in out
    # The agent's modules import with only the base dependencies.
    subprocess.run([py, "-c", "import skymesh.agent.link, skymesh.agent.executor"], check=True, timeout=60)


def test_python_version() -> None:
    assert sys.version_info >= (3, 11)
