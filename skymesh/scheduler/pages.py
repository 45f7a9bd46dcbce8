"""Pages of explanations: a plan's reasons, flattened (unscheduled targets first, then partly met), cut into pages.

A plan of the TALOS day explains tens of thousands of left-out opportunities, one reason each, so the API pages
them. The scheduler is stateless: a page token carries the offset and a fingerprint of the plan it belongs to, and
the next page is computed by `ExplainPlan` from the request and the plan's assignments; a token from another plan is
refused rather than silently paging through a different list.

Imports: the standard library and the scheduler's input types only.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from skymesh.core.errors import InvalidArgument
from skymesh.scheduler.inputs import Assignment, Explanation
from skymesh.scheduler.reasons import Reason

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


def _regroup(entries: Sequence[tuple[str, Reason]]) -> tuple[Explanation, ...]:
    groups: list[tuple[str, list[Reason]]] = []
    for target_id, reason in entries:
        if groups and groups[-1][0] == target_id:
            groups[-1][1].append(reason)
        else:
            groups.append((target_id, [reason]))
    return tuple(Explanation(t, tuple(rs)) for t, rs in groups)


def page_explanations(
    unscheduled: Sequence[Explanation],
    partially_met: Sequence[Explanation],
    *,
    page_size: int,
    page_token: str,
    fingerprint: str,
) -> ExplanationPage:
    """The page at `page_token` of at most `page_size` reasons (0 = everything); a target may span two pages."""
    if page_size < 0:
        raise InvalidArgument("must not be negative", field="page_size")
    flat = [("u", e.target_id, r) for e in unscheduled for r in e.reasons]
    flat += [("p", e.target_id, r) for e in partially_met for r in e.reasons]
    start = decode_token(page_token, fingerprint)
    if start > len(flat):
        raise InvalidArgument("points past the last page", field="page_token")
    stop = len(flat) if page_size == 0 else min(len(flat), start + page_size)
    page = flat[start:stop]
    return ExplanationPage(
        _regroup([(t, r) for k, t, r in page if k == "u"]),
        _regroup([(t, r) for k, t, r in page if k == "p"]),
        _encode(stop, fingerprint) if stop < len(flat) else "",
        len(flat),
    )
