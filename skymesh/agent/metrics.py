"""The agent's metric calls, without loading prometheus_client into an agent that exports no metrics.

prometheus_client costs a station agent about 5 MB of resident memory (an eighth of its 40 MB budget on a
Raspberry Pi), so it is loaded only by a process that exports metrics: `skymesh agent` with `metrics_port` set
starts `skymesh.observability.metrics.AgentMetrics`, and a test or demo that imports that module gets the counts
too. Each name here forwards to the same-named metric of `skymesh.observability.metrics` once that module is loaded,
and does nothing before (nothing is counted that nobody can scrape).

Imports the standard library only.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = [
    "AGENT_COMMANDS",
    "AGENT_JOBS",
    "AGENT_OUTBOX_DEPTH",
    "AGENT_RECONNECTS",
    "AGENT_REFUSED_MESSAGES",
    "AGENT_SCHEDULE_VERSION",
    "AGENT_STREAM_CONNECTED",
    "AGENT_UPSTREAM_SENT",
]

_METRICS_MODULE = "skymesh.observability.metrics"


class _Unexported:
    def inc(self, amount: float = 1.0) -> None:
        return None

    def set(self, value: float) -> None:
        return None


_UNEXPORTED = _Unexported()


class _Metric:
    def __init__(self, name: str) -> None:
        self._name = name

    def _target(self) -> Any:
        module = sys.modules.get(_METRICS_MODULE)
        return None if module is None else getattr(module, self._name)

    def labels(self, **labels: str) -> Any:
        target = self._target()
        return _UNEXPORTED if target is None else target.labels(**labels)

    def inc(self, amount: float = 1.0) -> None:
        target = self._target()
        if target is not None:
            target.inc(amount)

    def set(self, value: float) -> None:
        target = self._target()
        if target is not None:
            target.set(value)


AGENT_COMMANDS = _Metric("AGENT_COMMANDS")
AGENT_JOBS = _Metric("AGENT_JOBS")
AGENT_OUTBOX_DEPTH = _Metric("AGENT_OUTBOX_DEPTH")
AGENT_RECONNECTS = _Metric("AGENT_RECONNECTS")
AGENT_REFUSED_MESSAGES = _Metric("AGENT_REFUSED_MESSAGES")
AGENT_SCHEDULE_VERSION = _Metric("AGENT_SCHEDULE_VERSION")
AGENT_STREAM_CONNECTED = _Metric("AGENT_STREAM_CONNECTED")
AGENT_UPSTREAM_SENT = _Metric("AGENT_UPSTREAM_SENT")
