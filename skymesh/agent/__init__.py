"""The SkyMesh station agent: keeps one stream to the server, runs its schedule from its own clock with or without
the link, drives the station's hardware, and never loses what it has not had acknowledged.

Runs on a Raspberry Pi with the base dependencies only (grpcio, protobuf, numpy, sgp4, pyyaml, prometheus-client);
never imports skymesh.server, skymesh.scheduler or skymesh.web. A ground station's agent (tracking a pass on a
simulated rotator or rotctld/rigctld) loads neither numpy nor prometheus_client (this one unless `metrics_port` is
set): its RSS goal is 40 MB (`benchmarks/agent_footprint.py`, `tests/agent/test_footprint.py`, the import contract
in pyproject.toml). Telescopes load numpy with their drivers.
"""

from skymesh.agent.config import AgentConfig, load_config
from skymesh.agent.runtime import Agent, run_agent, run_agents

__all__ = ["Agent", "AgentConfig", "load_config", "run_agent", "run_agents"]
