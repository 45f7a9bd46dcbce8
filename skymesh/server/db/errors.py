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


def translate_db_error(exc: BaseException) -> SkyMeshError | None:
    unavailable = isinstance(
        exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.DisconnectionError | sa_exc.TimeoutError
    ) or (isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated)
    # asyncpg raises plain OS errors while connecting (refused, reset, timed out, name not resolved).
    if unavailable or isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
        return Unavailable(
            "the database is unavailable; retry later",
            reason="DATABASE_UNAVAILABLE",
            details={"retry-after-s": f"{RETRY_AFTER_S:g}"},
        )
    return None
