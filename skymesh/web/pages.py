"""Page tokens of the JSON API's list endpoints: the server's keyset page tokens, handed through (docs/api.md).

A list endpoint sends the caller's `page_size` and `page_token` to its List RPC and answers the RPC's
`next_page_token`, so a page costs the server one database page and has the server's guarantees (no item skipped or
repeated while the list changes; a token replayed with other filters refused on `page_token`). The gateway keeps no
offsets and fetches nothing it does not return.

One wrinkle: an endpoint whose time range defaults relative to now (jobs: the last and next 24 h; observations with
only one bound) would ask the server a different question on its next page, which the server refuses. Such an
endpoint pins what its first page resolved: `pinned_token` wraps the server's token with the resolved bounds and
`open_pinned` gives both back. The wrapped token is as opaque as the server's: a caller who edits the bounds gets
the server's refusal, since its token is bound to the first page's filters.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from skymesh.core.errors import InvalidArgument

__all__ = ["MAX_TOKEN_CHARS", "open_pinned", "pinned_token"]

# The server's tokens are at most 512 characters; a pinned one adds two timestamps and base64.
MAX_TOKEN_CHARS = 1024


def pinned_token(server_token: str, pinned: dict[str, str]) -> str:
    """The JSON API's next_page_token for the server's `server_token` ("" stays ""), carrying `pinned`."""
    if not server_token:
        return ""
    raw = json.dumps({"t": server_token, "p": pinned}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def open_pinned(token: str) -> tuple[str, dict[str, str]]:
    """(server token, pinned values) of a token `pinned_token` made; ("", {}) for no token."""
    if not token:
        return "", {}
    bad = InvalidArgument("is not a page token this API issued", field="page_token")
    try:
        data: Any = json.loads(base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(data, dict) or not isinstance(data.get("t"), str) or not isinstance(data.get("p"), dict):
        raise bad
    pinned = data["p"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in pinned.items()):
        raise bad
    return data["t"], pinned
