"""A small asyncio client for Hamlib's network daemons (rotctld, rigctld): one text command per line.

Facts this relies on (Hamlib 4.x, `doc/man1/rotctld.1`, `tests/rotctl_parse.c`): a set command answers one line
`RPRT n` (0 ok, negative: a `rig_errcode_e`); a get command answers one value per line, or `RPRT -n` on error.
Short command forms (`P`, `p`, `F`, `f`) are used because some daemon/client combinations reject the long ones.
`\\dump_state` is long-form only and ends with a `done` line on rotctld.

Every call has a timeout; on a timeout or a broken connection the socket is dropped and a later call reconnects,
paced by a `Backoff` (calls in between fail at once), so a daemon that comes back is used again without an agent
restart. `health()` says whether the daemon is connected, when it last answered and how often it failed.
One lock serialises commands, since replies carry no request id.

An idempotent command (a get, or a set to an absolute value: `F`, `M`, `P`, `S`, `K`) that finds the connection
closed by the daemon (EOF, reset, broken pipe) is sent again on a fresh connection, at once and then once more
after 0.1 s: rigctld and rotctld drop a client now and then, and an absolute set sent twice does no harm. Hamlib
4.5.4's rigctld resets about 1 in 60 connections opened just after another client disconnected (measured: 5 of 200
first commands on a new connection right after a connect-and-close probe; 0 of 200 with 0.2 s between them), so the
first reconnect after a daemon restart can itself be dropped. A timeout is not retried (the daemon may still be busy
with the first one), nor is a refusal (`RPRT -n`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from skymesh.agent.aio import with_timeout
from skymesh.agent.drivers.base import Backoff, DriverError, DriverHealth, HealthTracker

__all__ = ["HAMLIB_ERRORS", "HamlibClient"]

_log = logging.getLogger(__name__)

# rig_errcode_e (include/hamlib/rig.h)
HAMLIB_ERRORS = {
    1: "EINVAL invalid parameter",
    2: "ECONF invalid configuration",
    3: "ENOMEM out of memory",
    4: "ENIMPL not implemented",
    5: "ETIMEOUT communication timed out",
    6: "EIO I/O error",
    7: "EINTERNAL internal Hamlib error",
    8: "EPROTO protocol error",
    9: "ERJCTED command rejected by the rig",
    10: "ETRUNC argument truncated",
    11: "ENAVAIL function not available",
    12: "ENTARGET VFO not targetable",
    13: "BUSERROR error talking on the bus",
    14: "BUSBUSY collision on the bus",
    15: "EARG invalid argument",
    16: "EVFO invalid VFO",
    17: "EDOM argument out of domain",
}


# Pauses before each new attempt of an idempotent command whose connection the daemon closed (see the module text).
_RETRY_PAUSES_S = (0.0, 0.1)


class _ClosedByDaemon(Exception):
    """The daemon closed (or reset) the connection under a command: worth one retry when the command is idempotent."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class HamlibClient:
    def __init__(self, host: str, port: int, *, timeout_s: float = 5.0, daemon: str = "hamlib") -> None:
        self.host, self.port, self.timeout_s, self.daemon = host, port, timeout_s, daemon
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()
        self._health = HealthTracker()
        self._backoff = Backoff()

    def health(self) -> DriverHealth:
        return self._health.snapshot(self._writer is not None)

    @property
    def address(self) -> str:
        return f"{self.daemon} at {self.host}:{self.port}"

    async def connect(self) -> None:
        async with self._lock:
            await self._ensure()

    async def _ensure(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is not None and self._writer is not None:
            return self._reader, self._writer
        wait_s = self._backoff.wait_s()
        if wait_s > 0:
            error = f"cannot connect to {self.address}: {self._health.last_error or 'down'} (retry in {wait_s:.1f} s)"
            raise DriverError(error)
        try:
            reader, writer = await with_timeout(asyncio.open_connection(self.host, self.port), self.timeout_s)
        except (OSError, TimeoutError) as exc:
            self._backoff.failed()
            self._health.failed(f"connect: {exc or 'timeout'}")
            raise DriverError(f"cannot connect to {self.address}: {exc or 'timeout'}") from exc
        if self._backoff.delay_s:
            _log.info("reconnected to %s", self.address)
        self._backoff.succeeded()
        self._reader, self._writer = reader, writer
        return reader, writer

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def _drop(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()

    async def command(
        self, line: str, *, reply_lines: int = 0, until: str | None = None, idempotent: bool = False
    ) -> list[str]:
        """Send `line`. A set (reply_lines=0) expects `RPRT 0`; a get returns `reply_lines` lines (or up to
        the line equal to `until`). Raises DriverError on `RPRT -n`, a timeout or a lost connection; an `idempotent`
        command whose connection the daemon closed is sent again on a new connection (`_RETRY_PAUSES_S`) first."""
        async with self._lock:
            pauses = _RETRY_PAUSES_S if idempotent else ()
            for attempt in range(len(pauses) + 1):
                try:
                    return await self._exchange(line, reply_lines, until)
                except _ClosedByDaemon as exc:
                    if attempt == len(pauses):
                        raise DriverError(exc.detail) from exc.__cause__
                    _log.info("%s; retrying %r on a new connection", exc.detail, line.split()[0])
                    await asyncio.sleep(pauses[attempt])
            raise AssertionError("unreachable")

    async def _exchange(self, line: str, reply_lines: int, until: str | None) -> list[str]:
        reader, writer = await self._ensure()
        command = line.split()[0]
        try:
            writer.write((line + "\n").encode("ascii"))
            await with_timeout(writer.drain(), self.timeout_s)
            reply = await with_timeout(self._read_reply(reader, line, reply_lines, until), self.timeout_s)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            await self._drop()
            self._health.failed(f"{command}: {exc}")
            raise _ClosedByDaemon(f"{self.address}: {command!r} failed: {exc}") from exc
        except (OSError, TimeoutError) as exc:
            await self._drop()
            self._health.failed(f"{command}: {exc or 'timeout'}")
            raise DriverError(f"{self.address}: {command!r} failed: {exc or 'timeout'}") from exc
        except DriverError as exc:
            # The daemon answered (RPRT -n): the link is fine, the request was refused.
            self._health.ok()
            self._health.last_error = str(exc)
            raise
        except asyncio.CancelledError:
            # A half-read reply would desynchronise the next command: start over on a fresh connection.
            await self._drop()
            raise
        self._health.ok()
        return reply

    async def _read_reply(self, reader: asyncio.StreamReader, line: str, count: int, until: str | None) -> list[str]:
        lines: list[str] = []
        while True:
            raw = await reader.readline()
            if not raw:
                raise ConnectionError("connection closed by the daemon")
            text = raw.decode("ascii", "replace").strip()
            if text.startswith("RPRT "):
                code = int(text.split()[1])
                if code == 0 and count == 0 and until is None:
                    return lines
                if code != 0:
                    meaning = HAMLIB_ERRORS.get(-code, "unknown error")
                    raise DriverError(f"{self.address} refused {line!r}: RPRT {code} ({meaning})")
                return lines
            lines.append(text)
            if until is not None and text == until:
                return lines
            if until is None and count and len(lines) >= count:
                return lines
