"""The one grammar for identifiers a client chooses: stations, targets, campaigns, users.

Following Google AIP-122 resource ids: 1-63 characters, lowercase ASCII letters, digits and hyphens, starting with
a letter and not ending with a hyphen ("gs-athens", "sat-25544", "delta-cep", "ada"). Such an id is safe in a URL,
a file name, a metric label and a log line: no "/", "..", NUL, whitespace or case-folding surprises.

The API boundary (server servicers, CLI) calls `check_id` on every client-chosen id before anything is stored;
file paths are never built from them (see `skymesh.server.uploads`). Imports only the standard library and core.
"""

from __future__ import annotations

import re

from skymesh.core.errors import InvalidArgument

__all__ = ["ID_MAX_LENGTH", "ID_PATTERN", "check_id", "is_valid_id"]

ID_MAX_LENGTH = 63
ID_PATTERN = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
_RULE = "must be 1-63 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen"


def is_valid_id(value: str) -> bool:
    """True if `value` follows the identifier grammar."""
    return ID_PATTERN.fullmatch(value) is not None


def check_id(value: str, *, field: str) -> str:
    """Return `value` if it follows the grammar; else raise InvalidArgument naming `field` and the rule."""
    if not value:
        raise InvalidArgument("must not be empty", field=field, reason="INVALID_ID")
    if len(value) > ID_MAX_LENGTH:
        raise InvalidArgument(f"{_RULE} (got {len(value)} characters)", field=field, reason="INVALID_ID")
    if not is_valid_id(value):
        raise InvalidArgument(f"{_RULE} (got {value[:80]!r})", field=field, reason="INVALID_ID")
    return value
