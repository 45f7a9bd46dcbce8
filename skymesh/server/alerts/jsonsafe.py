"""JSON with limits: a packet larger than `max_bytes` or nested deeper than `max_depth` is refused before the
standard-library decoder sees it (so a hostile packet cannot exhaust the stack or the memory of the server).

The depth is measured by a vectorised scan of the bytes with strings blanked out, not by recursion. Imports the
standard library and numpy only.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from skymesh.server.alerts.model import AlertParseError

__all__ = ["DEFAULT_MAX_DEPTH", "load_json", "nesting_depth"]

DEFAULT_MAX_DEPTH = 32
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPEN = np.zeros(256, dtype=np.int32)
_OPEN[[ord("{"), ord("[")]] = 1
_OPEN[[ord("}"), ord("]")]] = -1


def nesting_depth(data: bytes) -> int:
    """Deepest bracket nesting of a JSON text (strings ignored)."""
    bare = _STRING.sub(b'""', data)
    if not bare:
        return 0
    steps = _OPEN[np.frombuffer(bare, dtype=np.uint8)]
    return int(np.cumsum(steps).max(initial=0))


def load_json(data: bytes, *, max_bytes: int, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    if len(data) > max_bytes:
        raise AlertParseError(f"packet of {len(data)} bytes exceeds the {max_bytes}-byte limit", field="packet")
    depth = nesting_depth(data)
    if depth > max_depth:
        raise AlertParseError(f"JSON nested {depth} deep exceeds the limit of {max_depth}", field="packet")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AlertParseError(f"not UTF-8 text: {exc.reason} at byte {exc.start}", field="packet") from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise AlertParseError(
            f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", field="packet"
        ) from None


def _no_constant(name: str) -> Any:
    raise AlertParseError(f"JSON constant {name} is not allowed", field="packet")
