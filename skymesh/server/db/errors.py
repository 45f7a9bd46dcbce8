"""What a database failure means to a client: the server's `Translator` for `skymesh.api.guard.GuardInterceptor`.

An unreachable, restarting or locked database (connection refused or reset, a terminated backend, a pool timeout,
SQLite's "database is locked") is UNAVAILABLE with a retry delay in the trailing metadata
(`skymesh-error-retry-after-s`): the client should come back, and nothing was written (every repository method is
one transaction). Any other database error is not translated: it is a bug, answered INTERNAL with an error id.
The driver's text never reaches the client.
"""

from __future__ import annotations

import socket

from sqlalchemy import exc as sa_exc

from skymesh.core.errors import SkyMeshError, Unavailable

__all__ = ["RETRY_AFTER_S", "translate_db_error"]

RETRY_AFTER_S = 2.0
# PostgreSQL SQLSTATEs of a server that cannot serve now: connection exceptions (08), insufficient resources (53),
# operator intervention such as an admin shutdown or "cannot connect now" (57P), a database not accepting
# connections (55000) and a lock not available (55P03).
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P", "55000", "55P03")


def _sqlstate(exc: BaseException) -> str:
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            break
        state = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(state, str):
            return state
        seen = getattr(seen, "orig", None) or seen.__cause__
    return ""


def translate_db_error(exc: BaseException) -> SkyMeshError | None:
    unavailable = (
        isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.DisconnectionError | sa_exc.TimeoutError
        )
        or (isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated)
        or _sqlstate(exc).startswith(_UNAVAILABLE_SQLSTATES)
    )
    # asyncpg raises plain OS errors while connecting (refused, reset, timed out, name not resolved).
    if unavailable or isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
        return Unavailable(
            "the database is unavailable; retry later",
            reason="DATABASE_UNAVAILABLE",
            details={"retry-after-s": f"{RETRY_AFTER_S:g}"},
        )
    return None
