"""Pages of explanations: every target's own reasons first, then its per-opportunity reasons, cut into pages.

A dense plan explains tens of thousands of left-out opportunities, one reason each (16,740 reasons, 5.5 MB on the
wire for 20 stations x 400 satellites x 24 h), so the API pages them: the first page lists every unscheduled and
partly met target with its target-level reasons (a summary, the filter log's), every page up to `page_size`
per-opportunity reasons (unscheduled targets first). The scheduler is stateless: a page token carries the offset
and a fingerprint of the plan it belongs to, and the next page is computed by `ExplainPlan` from the request and
the plan's assignments; a token from another plan is refused rather than silently paging through a different list.

Imports: the standard library and the scheduler's input types only.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from skymesh.core.errors import InvalidArgument
from skymesh.scheduler.inputs import Assignment, Explanation

__all__ = ["ExplanationPage", "decode_token", "page_explanations", "plan_fingerprint", "resign_token"]


@dataclass(frozen=True)
class ExplanationPage:
    unscheduled: tuple[Explanation, ...]
    partially_met: tuple[Explanation, ...]
    next_page_token: str
    total_reasons: int


def plan_fingerprint(assignments: Sequence[Assignment]) -> str:
    """A short hash of what the plan placed where and when (order-independent)."""
    rows = sorted(
        f"{a.station_id}\x1f{a.target_id}\x1f{a.window.start.isoformat()}\x1f{a.window.end.isoformat()}"
        for a in assignments
    )
    return hashlib.sha256("\x1e".join(rows).encode()).hexdigest()[:16]


def _encode(offset: int, fingerprint: str) -> str:
    return base64.urlsafe_b64encode(f"v1:{offset}:{fingerprint}".encode()).decode()


def decode_token(token: str, fingerprint: str) -> int:
    """The offset a page token points at; "" is the first page. Refuses a token of another plan."""
    if not token:
        return 0
    try:
        version, offset, fp = base64.urlsafe_b64decode(token.encode()).decode().split(":")
        value = int(offset)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("is not a page token of this API", field="page_token") from None
    if version != "v1" or value < 0:
        raise InvalidArgument("is not a page token of this API", field="page_token")
    if fp != fingerprint:
        raise InvalidArgument("belongs to another plan (its assignments differ)", field="page_token")
    return value


def resign_token(token: str, old_fingerprint: str, new_fingerprint: str) -> str:
    """The same offset for a plan whose assignments changed after the page was cut (e.g. the spacecraft check)."""
    return _encode(decode_token(token, old_fingerprint), new_fingerprint) if token else ""


def page_explanations(
    unscheduled: Sequence[Explanation],
    partially_met: Sequence[Explanation],
    *,
    page_size: int,
    page_token: str,
    fingerprint: str,
) -> ExplanationPage:
    """The page at `page_token`: on the first page every target with its target-level reasons (those without a
    window), on every page up to `page_size` per-opportunity reasons (0 = all of them); a target's opportunities may
    span pages. Targets with no reason on a later page are left out of it."""
    if page_size < 0:
        raise InvalidArgument("must not be negative", field="page_size")
    start = decode_token(page_token, fingerprint)
    windows = [
        (k, e.target_id, r)
        for k, items in (("u", unscheduled), ("p", partially_met))
        for e in items
        for r in e.reasons
        if r.start is not None
    ]
    if start > len(windows) or (start and start == len(windows)):
        raise InvalidArgument("points past the last page", field="page_token")
    stop = len(windows) if page_size == 0 else min(len(windows), start + page_size)
    shown = {id(r) for _, _, r in windows[start:stop]}
    first = start == 0

    def cut(items: Sequence[Explanation]) -> tuple[Explanation, ...]:
        out = []
        for e in items:
            kept = tuple(r for r in e.reasons if (r.start is None and first) or id(r) in shown)
            if kept or (first and not e.reasons):
                out.append(Explanation(e.target_id, kept))
        return tuple(out)

    total = sum(len(e.reasons) for e in (*unscheduled, *partially_met))
    return ExplanationPage(
        cut(unscheduled), cut(partially_met), _encode(stop, fingerprint) if stop < len(windows) else "", total
    )
