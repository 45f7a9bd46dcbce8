"""The agent's metric calls, without loading prometheus_client into an agent that exports no metrics.

prometheus_client costs a station agent about 5 MB of resident memory (an eighth of its 40 MB budget on a
Raspberry Pi), so it is loaded only by a process that exports metrics: `skymesh agent` with `metrics_port` set
starts `skymesh.observability.metrics.AgentMetrics`, and a test or demo that imports that module gets the counts
too. The metrics themselves (names, help, labels) are defined once, in `AgentMetrics`; each name here stands for one
of its attributes and forwards to it once that module is loaded (the handle `AgentMetrics.current()` gives, so a
restarted handle is followed), and does nothing before (nothing is counted that nobody can scrape).

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
    def __init__(self, attr: str) -> None:
        self.attr = attr  # the `AgentMetrics` attribute this name stands for

    def resolve(self) -> Any:
        """The prometheus_client metric this name counts into now; None while no module has loaded the metrics."""
        module = sys.modules.get(_METRICS_MODULE)
        return None if module is None else getattr(module.AgentMetrics.current(), self.attr)

    def labels(self, **labels: str) -> Any:
        target = self.resolve()
        return _UNEXPORTED if target is None else target.labels(**labels)

    def inc(self, amount: float = 1.0) -> None:
        target = self.resolve()
        if target is not None:
            target.inc(amount)

    def set(self, value: float) -> None:
        target = self.resolve()
        if target is not None:
            target.set(value)


AGENT_COMMANDS = _Metric("commands")
AGENT_JOBS = _Metric("jobs")
AGENT_OUTBOX_DEPTH = _Metric("spool_messages")
AGENT_RECONNECTS = _Metric("reconnects")
AGENT_REFUSED_MESSAGES = _Metric("refused_messages")
AGENT_SCHEDULE_VERSION = _Metric("schedule_version")
AGENT_STREAM_CONNECTED = _Metric("connected")
AGENT_UPSTREAM_SENT = _Metric("upstream_sent")
