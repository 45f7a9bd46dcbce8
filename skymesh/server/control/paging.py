"""Page tokens for every control List RPC: keyset paging over a stable order, bound to the query that issued them.

A request carries `page_size` and `page_token`; an answer carries `next_page_token`, empty on the last page
(docs/api.md). A token is opaque to callers: base64url of a small JSON object holding the sort key of the last row
returned and a digest of the filters, so a page never repeats or skips a row that existed when the first page was
read (rows inserted meanwhile appear on a later page, or not, by their key), and a token replayed with other filters
is refused (INVALID_ARGUMENT on `page_token`) instead of answering a different question.

`page_size` 0 keeps each RPC's answer from before paging existed: for the lists that were whole (stations, targets,
campaigns, jobs, users) every match in one answer, refused with FAILED_PRECONDITION (reason PAGE_REQUIRED) when more
than `MAX_UNPAGED` match, so no caller ever gets a silently cut list; for the lists that were already bounded
(observations, alerts, audit) their default page size.

Imports only the core errors: the servicers turn rows into keys and keys into repository arguments.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from skymesh.core.errors import FailedPrecondition, InvalidArgument

__all__ = ["MAX_PAGE_SIZE", "MAX_UNPAGED", "Page", "encode_token", "key_time", "page_request"]

MAX_PAGE_SIZE = 1000
MAX_UNPAGED = 10_000
_MAX_TOKEN_CHARS = 512

_T = TypeVar("_T")


def _digest(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:16]


def encode_token(key: Sequence[str], query: str) -> str:
    raw = json.dumps({"q": _digest(query), "k": list(key)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, query: str, key_length: int) -> tuple[str, ...]:
    bad = InvalidArgument("is not a page token this server issued", field="page_token")
    if len(token) > _MAX_TOKEN_CHARS:
        raise bad
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(data, dict) or not isinstance(data.get("k"), list) or not isinstance(data.get("q"), str):
        raise bad
    key = data["k"]
    if len(key) != key_length or not all(isinstance(part, str) for part in key):
        raise bad
    if data["q"] != _digest(query):
        raise InvalidArgument("belongs to a query with other filters; start again without it", field="page_token")
    return tuple(key)


def key_time(value: str) -> datetime:
    """A datetime from a decoded key part; a token whose time does not parse was not issued here."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgument("is not a page token this server issued", field="page_token") from None
    if parsed.tzinfo is None:
        raise InvalidArgument("is not a page token this server issued", field="page_token")
    return parsed


@dataclass(frozen=True)
class Page:
    """What one List call asks the repository for: rows after `after` (None: from the start), at most `limit`
    of them plus one more that only tells whether a next page exists."""

    query: str
    limit: int
    after: tuple[str, ...] | None
    unpaged: bool
    what: str

    @property
    def fetch(self) -> int:
        return self.limit + 1

    def finish(self, rows: Sequence[_T], key: Callable[[_T], Sequence[str]]) -> tuple[list[_T], str]:
        """(rows of this answer, next_page_token); PAGE_REQUIRED when an unpaged answer would be cut."""
        if len(rows) <= self.limit:
            return list(rows), ""
        if self.unpaged:
            raise FailedPrecondition(
                f"more than {self.limit} {self.what} match: ask for pages (page_size up to {MAX_PAGE_SIZE}, "
                "then page_token = next_page_token)",
                field="page_size",
                reason="PAGE_REQUIRED",
            )
        kept = list(rows[: self.limit])
        return kept, encode_token(key(kept[-1]), self.query)


def page_request(
    page_size: int, page_token: str, query: str, *, what: str, key_length: int = 1, default: int | None = None
) -> Page:
    """Check `page_size` and `page_token` for a List call whose filters are spelled out in `query`.

    `default` None: page_size 0 means every match (up to MAX_UNPAGED, else PAGE_REQUIRED); else it means `default`.
    """
    if page_size < 0:
        raise InvalidArgument("must not be negative", field="page_size")
    after = _decode_token(page_token, query, key_length) if page_token else None
    if page_size == 0 and default is None:
        return Page(query, MAX_UNPAGED, after, True, what)
    return Page(query, min(page_size or (default or MAX_PAGE_SIZE), MAX_PAGE_SIZE), after, False, what)
