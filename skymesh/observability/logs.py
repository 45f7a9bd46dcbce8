"""Process logging: plain text or one JSON object per line, each record carrying the current trace and span ids.

`configure_logging(level, json_lines)` is called once by the CLI (`skymesh --log-format json ...` or
`SKYMESH_LOG_FORMAT=json`). A line logged inside a traced request names its trace, so an SRE can go from a log line
to the whole trace and back. Imports the standard library and `tracing` only.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from skymesh.observability import tracing

__all__ = ["JsonFormatter", "TraceContextFilter", "configure_logging"]

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(trace_suffix)s"


class TraceContextFilter(logging.Filter):
    """Adds `trace_id`, `span_id` (empty outside a span) and `trace_suffix` (for the text format) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = tracing.current_ids()
        record.trace_id, record.span_id = ids if ids else ("", "")
        record.trace_suffix = f" trace_id={ids[0]} span_id={ids[1]}" if ids else ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        trace_id = getattr(record, "trace_id", "")
        if trace_id:
            entry["trace_id"] = trace_id
            entry["span_id"] = getattr(record, "span_id", "")
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: int | str = logging.INFO, *, json_lines: bool = False) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(_TEXT_FORMAT))
    # Like basicConfig: a no-op when the root logger already has handlers (an embedding application, pytest).
    logging.basicConfig(level=level, handlers=[handler])
