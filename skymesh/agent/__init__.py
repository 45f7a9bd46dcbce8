"""The SkyMesh station agent: keeps one stream to the server, runs its schedule from its own clock with or without
the link, drives the station's hardware, and never loses what it has not had acknowledged.

Runs on a Raspberry Pi with the base dependencies only (grpcio, protobuf, numpy, sgp4, pyyaml, prometheus-client);
never imports skymesh.server, skymesh.scheduler or skymesh.web.
"""

from skymesh.agent.config import AgentConfig, load_config
from skymesh.agent.runtime import Agent, run_agent, run_agents

__all__ = ["Agent", "AgentConfig", "load_config", "run_agent", "run_agents"]
