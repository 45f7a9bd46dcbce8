"""Page tokens for list endpoints: an opaque token carrying the offset into the (stably ordered) result and a
fingerprint of the filters, so a token cannot be replayed against a different query.

The one place the gateway pages: today the control List RPCs return everything and the gateway slices here. When
they take `page_size`/`page_token` themselves, `paginate` is the function to replace by passing the server's token
through (its callers in `skymesh.web.api`: list_sites, list_targets, list_campaigns, list_jobs, list_observations),
and the JSON API's `next_page_token` stays the same field."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import TypeVar

from skymesh.core.errors import InvalidArgument

__all__ = ["paginate"]

_T = TypeVar("_T")


def _fingerprint(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:12]


def decode(token: str, query: str) -> int:
    if not token:
        return 0
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)))
        offset, fp = int(value["o"]), str(value["f"])
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("is not a token this API issued", field="page_token") from None
    if fp != _fingerprint(query) or offset < 0:
        raise InvalidArgument("belongs to a different query", field="page_token")
    return offset


def encode(offset: int, query: str) -> str:
    raw = json.dumps({"o": offset, "f": _fingerprint(query)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def paginate(items: Sequence[_T], page_size: int, page_token: str, query: str) -> tuple[list[_T], str]:
    """(this page, next page token or "")."""
    start = decode(page_token, query)
    page = list(items[start : start + page_size])
    end = start + len(page)
    return page, encode(end, query) if end < len(items) else ""
