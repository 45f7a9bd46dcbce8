"""Runs the accepted schedule and the received commands from the agent's own clock, link or no link.

- Schedule: the next job starts at its start time (late if the previous one overran); a job whose end passed before
  it could start is EXPIRED; a job interrupted by a restart is resumed if time remains, else FAILED with cause
  AGENT_RESTARTED. Job states and their JobUpdates (and the ObservationRecord before SUCCEEDED) are written to the
  store in one transaction each; the link delivers them whenever it can.
- Commands: each runs at its `not_before` (EXPIRED if past `expires_at`). URGENT ones (AbortJob) run at once beside
  anything else; the others take turns. AbortJob interrupts the running job (ABORTED); Stow aborts and parks; Point
  moves the rotator when idle; SetUnavailable records a window in which jobs are REJECTED.
- Telemetry: samples at `telemetry_rate_hz`, batched every `telemetry_batch_interval_s` into the outbox.
- Mount: parked once no telescope job starts within 30 minutes of the last one (the end of the night).

Imports: the agent's store, drivers and observing code, `skymesh.api`, `skymesh.core`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Iterator
from datetime import UTC, datetime

from skymesh.agent.aio import wait_event_or_sleep
from skymesh.agent.config import AgentConfig
from skymesh.agent.drivers import DriverSet
from skymesh.agent.drivers.base import DriverError
from skymesh.agent.metrics import AGENT_COMMANDS, AGENT_JOBS, AGENT_OUTBOX_DEPTH
from skymesh.agent.observing import JobContext, JobFailed, perform_job, preposition
from skymesh.agent.store import AsyncStore, LocalJob
from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.api.convert import timestamp_from_datetime
from skymesh.api.validation import split_telemetry_samples
from skymesh.core.clock import Clock
from skymesh.core.jobs import JobState
from skymesh.observability import tracing

__all__ = ["Executor"]

_log = logging.getLogger(__name__)

_IDLE_RECHECK_S = 30.0
# Point the antenna at a pass's rise point this long before it starts, so tracking begins on target.
_PREPOSITION_S = 60.0
# Park the telescope mount once no telescope job starts within this long (the end of the night, or a long gap).
_PARK_MOUNT_IDLE_S = 1800.0
_C = agent_pb2


class _Rejected(Exception):
    def __init__(self, cause: int, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause
        self.detail = detail


class Executor:
    def __init__(self, config: AgentConfig, store: AsyncStore, drivers: DriverSet, clock: Clock, boot_id: str) -> None:
        self.config = config
        self.store = store
        self.drivers = drivers
        self.clock = clock
        self.boot_id = boot_id
        self.telemetry_batch_interval_s = config.telemetry_batch_interval_s
        self.live: dict[str, float] = {}
        self.progress: dict[str, float] = {}
        self.current_job_id = ""
        self._job_task: asyncio.Task[agent_pb2.ObservationRecord] | None = None
        self._abort_detail: tuple[int, str] | None = None
        self._prepositioned: set[str] = set()
        self._mount_in_use = False  # a telescope job ran since the mount was last parked
        self._command_turn = asyncio.Lock()
        self._idle = asyncio.Event()
        self._idle.set()

    # ------------------------------------------------------------------------------------------------ entry point

    async def run(self) -> None:
        """Run until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._schedule_loop(), name="agent-schedule")
            tg.create_task(self._command_loop(tg), name="agent-commands")
            tg.create_task(self._telemetry_loop(), name="agent-telemetry")

    # ------------------------------------------------------------------------------------------------ schedule

    async def _schedule_loop(self) -> None:
        sync = self.store.sync
        while True:
            self.store.schedule_changed.clear()
            now = self.clock.now()
            jobs = await self.store.call(sync.jobs, JobState.RECEIVED, JobState.RUNNING)
            runnable: list[LocalJob] = []
            for job in jobs:
                interrupted = job.state == JobState.RUNNING and job.boot_id != self.boot_id
                if job.end <= now:
                    if interrupted:
                        await self._finish(
                            job.job_id,
                            JobState.FAILED,
                            common_pb2.CAUSE_CODE_AGENT_RESTARTED,
                            "the agent restarted during the job and its time ran out",
                        )
                    elif job.state == JobState.RECEIVED:
                        await self._finish(
                            job.job_id,
                            JobState.EXPIRED,
                            common_pb2.CAUSE_CODE_EXPIRED_BEFORE_START,
                            f"ended at {job.end.isoformat()} before it could start",
                        )
                elif (job.state == JobState.RECEIVED and job.in_schedule) or interrupted:
                    runnable.append(job)
            upcoming = min(runnable, key=lambda j: (j.start, j.job_id)) if runnable else None
            if upcoming is None or (upcoming.start - now).total_seconds() > _PARK_MOUNT_IDLE_S:
                await self._park_idle_mount()
            if upcoming is None:
                await wait_event_or_sleep(self.clock, self.store.schedule_changed, _IDLE_RECHECK_S)
                continue
            job = upcoming
            wait_s = (job.start - now).total_seconds()
            if wait_s > 0:
                if wait_s <= _PREPOSITION_S and job.job_id not in self._prepositioned and not self.current_job_id:
                    self._prepositioned.add(job.job_id)
                    await preposition(job, self._context())
                nap_s = wait_s - _PREPOSITION_S if wait_s > _PREPOSITION_S else wait_s
                await wait_event_or_sleep(self.clock, self.store.schedule_changed, min(nap_s, _IDLE_RECHECK_S))
                continue
            await self._run_job(job)

    async def _park_idle_mount(self) -> None:
        if not self._mount_in_use or self.drivers.mount is None or self.current_job_id:
            return
        self._mount_in_use = False
        try:
            await self.drivers.mount.park()
            _log.info("no telescope job within %.0f s: mount parked", _PARK_MOUNT_IDLE_S)
        except DriverError as exc:
            _log.warning("could not park the idle mount: %s", exc)

    def _context(self) -> JobContext:
        return JobContext(self.config, self.drivers, self.clock, self.live, self.progress)

    async def _finish(self, job_id: str, state: JobState, cause: int, detail: str, **kw: object) -> bool:
        done = await self.store.transition_job(
            job_id,
            state,
            self.boot_id,
            self.clock.now(),
            cause=cause,
            detail=detail,
            **kw,  # type: ignore[arg-type]
        )
        if done:
            AGENT_JOBS.labels(state=state.name.lower()).inc()
            _log.info("job %s -> %s %s", job_id, state.name, detail)
        return done

    async def _run_job(self, job: LocalJob) -> None:
        unavailable = await self.store.call(self.store.sync.unavailable_at, self.clock.now())
        if unavailable is not None and job.state == JobState.RECEIVED:
            await self._finish(
                job.job_id, JobState.REJECTED, common_pb2.CAUSE_CODE_UNSPECIFIED, f"station unavailable: {unavailable}"
            )
            return
        resumed = job.state == JobState.RUNNING
        # Claim the hardware before reporting RUNNING, so an AbortJob arriving meanwhile finds the job.
        self.current_job_id = job.job_id
        self._abort_detail = None
        self._idle.clear()
        try:
            await self._finish(
                job.job_id,
                JobState.RUNNING,
                common_pb2.CAUSE_CODE_UNSPECIFIED,
                "resumed after agent restart" if resumed else "",
            )
        except BaseException:
            self.current_job_id = ""
            self._idle.set()
            raise
        if job.spec.target.WhichOneof("kind") == "celestial":
            self._mount_in_use = True
        task = asyncio.create_task(perform_job(job, self._context()), name=f"agent-job-{job.job_id}")
        self._job_task = task
        if self._abort_detail is not None:
            task.cancel()  # aborted while RUNNING was being recorded
        try:
            record = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._abort_detail is None or (current is not None and current.cancelling()):
                raise  # the agent is shutting down: the job stays RUNNING and is resumed on restart
            cause, detail = self._abort_detail
            await self._stop_hardware()
            await self._finish(job.job_id, JobState.ABORTED, cause, detail)
        except JobFailed as exc:
            await self._finish(job.job_id, JobState.FAILED, exc.cause, exc.detail)
        except Exception as exc:  # a bug must fail the job, not the agent
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise asyncio.CancelledError from exc
            _log.exception("job %s crashed", job.job_id)
            await self._finish(
                job.job_id, JobState.FAILED, common_pb2.CAUSE_CODE_UNSPECIFIED, f"internal error: {exc!r}"
            )
        else:
            await self._finish(job.job_id, JobState.SUCCEEDED, common_pb2.CAUSE_CODE_OK, "", observation=record)
        finally:
            self.current_job_id = ""
            self._job_task = None
            self.progress.pop(job.job_id, None)
            self.live.clear()  # a job's readings are not the idle station's
            self._idle.set()

    async def _stop_hardware(self) -> None:
        for device in (self.drivers.rotator, self.drivers.mount):
            if device is not None:
                try:
                    await device.stop()
                except DriverError as exc:
                    _log.warning("stop failed: %s", exc)

    async def abort_current(self, cause: int, detail: str) -> bool:
        """Interrupt the running job (reported ABORTED); returns False when none is running."""
        if not self.current_job_id:
            return False
        self._abort_detail = (cause, detail)
        task = self._job_task
        if task is not None and not task.done():
            task.cancel()
        await self._idle.wait()
        return True

    # ------------------------------------------------------------------------------------------------ commands

    async def _command_loop(self, tg: asyncio.TaskGroup) -> None:
        started: set[str] = set()
        while True:
            self.store.commands_received.clear()
            for command in await self.store.call(self.store.sync.open_commands):
                if command.command_id not in started:
                    started.add(command.command_id)
                    tg.create_task(self._traced_command(command), name=f"agent-command-{command.command_id}")
            await wait_event_or_sleep(self.clock, self.store.commands_received, _IDLE_RECHECK_S)

    async def _set_command(self, command: agent_pb2.Command, state: int, cause: int = 0, detail: str = "") -> None:
        await self.store.set_command_state(command.command_id, state, self.clock.now(), cause, detail)
        name = agent_pb2.CommandState.Name(state)  # type: ignore[arg-type]
        AGENT_COMMANDS.labels(state=name.removeprefix("COMMAND_STATE_").lower()).inc()

    def _expired(self, command: agent_pb2.Command) -> bool:
        if not command.HasField("expires_at"):
            return False
        return self.clock.now() > command.expires_at.ToDatetime(tzinfo=UTC)

    async def _traced_command(self, command: agent_pb2.Command) -> None:
        # The job updates it causes (spooled inside) carry the command's trace back to the server.
        with tracing.continued("agent execute command", command.trace_context, kind="internal"):
            await self._execute_command(command)

    async def _execute_command(self, command: agent_pb2.Command) -> None:
        if command.HasField("not_before"):
            not_before = command.not_before.ToDatetime(tzinfo=UTC)
            wait_s = (not_before - self.clock.now()).total_seconds()
            if wait_s > 0 and not self._expired(command):
                await self.clock.sleep(wait_s)
        urgent = command.priority == agent_pb2.COMMAND_PRIORITY_URGENT
        if urgent:
            await self._run_command(command)
        else:
            async with self._command_turn:
                await self._run_command(command)

    async def _run_command(self, command: agent_pb2.Command) -> None:
        if self._expired(command):
            await self._set_command(
                command, _C.COMMAND_STATE_EXPIRED, common_pb2.CAUSE_CODE_EXPIRED_BEFORE_START, "past expires_at"
            )
            return
        await self._set_command(command, _C.COMMAND_STATE_STARTED)
        try:
            detail = await self._dispatch(command)
        except _Rejected as exc:
            await self._set_command(command, _C.COMMAND_STATE_REJECTED, exc.cause, exc.detail)
        except DriverError as exc:
            await self._set_command(command, _C.COMMAND_STATE_FAILED, common_pb2.CAUSE_CODE_HARDWARE_FAULT, str(exc))
        else:
            await self._set_command(command, _C.COMMAND_STATE_SUCCEEDED, common_pb2.CAUSE_CODE_OK, detail)

    async def _dispatch(self, command: agent_pb2.Command) -> str:
        kind = command.WhichOneof("payload")
        if kind == "abort_job":
            return await self._abort_job(command.abort_job)
        if kind == "stow":
            aborted = await self.abort_current(common_pb2.CAUSE_CODE_ABORTED_BY_OPERATOR, "stow command")
            if self.drivers.rotator is not None:
                await self.drivers.rotator.park()
            if self.drivers.mount is not None:
                await self.drivers.mount.park()
            return "stowed" + (" (aborted the running job)" if aborted else "")
        if kind == "point":
            if self.current_job_id:
                raise _Rejected(common_pb2.CAUSE_CODE_INVALID, f"busy with job {self.current_job_id}")
            if self.drivers.rotator is None:
                raise _Rejected(common_pb2.CAUSE_CODE_UNSUPPORTED, "no rotator to point")
            await self.drivers.rotator.set_position(command.point.azimuth_deg, command.point.elevation_deg)
            return f"pointing at az {command.point.azimuth_deg:.2f} el {command.point.elevation_deg:.2f}"
        if kind == "set_unavailable":
            window = command.set_unavailable.window
            start = window.start.ToDatetime(tzinfo=UTC)
            end = window.end.ToDatetime(tzinfo=UTC)
            if end <= start:
                raise _Rejected(common_pb2.CAUSE_CODE_INVALID, "window end must be after its start")
            await self.store.call(self.store.sync.add_unavailable, start, end, command.set_unavailable.reason)
            self.store.schedule_changed.set()
            return f"unavailable {start.isoformat()} .. {end.isoformat()}"
        raise _Rejected(common_pb2.CAUSE_CODE_UNSUPPORTED, f"unknown command payload {kind!r}")

    async def _abort_job(self, abort: agent_pb2.AbortJob) -> str:
        detail = abort.reason or "aborted by operator"
        if self.current_job_id == abort.job_id:
            await self.abort_current(common_pb2.CAUSE_CODE_ABORTED_BY_OPERATOR, detail)
            return f"aborted running job {abort.job_id}"
        job = await self.store.call(self.store.sync.job, abort.job_id)
        if job is None:
            raise _Rejected(common_pb2.CAUSE_CODE_INVALID, f"unknown job {abort.job_id}")
        if job.state == JobState.RECEIVED:
            # An agent reports REJECTED, not CANCELLED (the server owns CANCELLED): it will never run.
            await self._finish(job.job_id, JobState.REJECTED, common_pb2.CAUSE_CODE_ABORTED_BY_OPERATOR, detail)
            self.store.schedule_changed.set()
            return f"job {abort.job_id} will not run (aborted before it started)"
        raise _Rejected(common_pb2.CAUSE_CODE_INVALID, f"job {abort.job_id} is already {job.state.name}")

    # ------------------------------------------------------------------------------------------------ telemetry

    async def _telemetry_loop(self) -> None:
        period_s = 1.0 / self.config.telemetry_rate_hz
        samples: list[agent_pb2.TelemetrySample] = []
        batch_started = self.clock.monotonic()
        while True:
            values = await self._sample()
            samples.append(agent_pb2.TelemetrySample(at=timestamp_from_datetime(self.clock.now()), values=values))
            if self.clock.monotonic() - batch_started >= self.telemetry_batch_interval_s - 1e-9:
                # Batches within the contract's limits (skymesh.api.validation): the server never refuses one.
                batches = [
                    agent_pb2.ConnectRequest(telemetry=agent_pb2.TelemetryBatch(boot_id=self.boot_id, samples=part))
                    for part in split_telemetry_samples(samples)
                ]
                await self.store.enqueue(self.boot_id, batches)
                AGENT_OUTBOX_DEPTH.set(await self.store.call(self.store.sync.outbox_depth))
                samples = []
                batch_started = self.clock.monotonic()
            await self.clock.sleep(period_s)

    async def _sample(self) -> dict[str, float]:
        """Fresh readings only: a device that does not answer now leaves its channels out of this sample (never the
        last known value), and every device's health is sampled with them (`<role>.connected`,
        `<role>.errors_total`, `<role>.last_ok_age_s`)."""
        busy = bool(self.current_job_id)
        # While a job runs its loop reads the rotator and radio every tick and keeps `live` current (it drops a
        # channel whose device failed); otherwise they are read here.
        values = dict(self.live) if busy else {}
        if self.drivers.rotator is not None and not busy:
            with self._reading("rotator"):
                az, el = await self.drivers.rotator.get_position()
                values["rotator.azimuth_deg"], values["rotator.elevation_deg"] = az, el
        if self.drivers.radio is not None and not busy:
            with self._reading("radio"):
                values["radio.frequency_hz"] = await self.drivers.radio.get_frequency()
        if self.drivers.camera is not None:
            with self._reading("camera"):
                values["camera.temperature_c"] = await self.drivers.camera.temperature_c()
        now = datetime.now(UTC)
        for role, health in self.drivers.health().items():
            values[f"{role}.connected"] = 1.0 if health.connected else 0.0
            values[f"{role}.errors_total"] = float(health.errors_total)
            if health.last_ok is not None:
                values[f"{role}.last_ok_age_s"] = max((now - health.last_ok).total_seconds(), 0.0)
        values["agent.job_running"] = 1.0 if self.current_job_id else 0.0
        for job_id, progress in self.progress.items():
            if job_id == self.current_job_id:
                values["job.progress_ratio"] = progress
        return {k: float(v) for k, v in values.items() if math.isfinite(v)}  # the server rejects NaN and inf

    @contextlib.contextmanager
    def _reading(self, role: str) -> Iterator[None]:
        try:
            yield
        except DriverError as exc:
            _log.debug("telemetry: no %s reading: %s", role, exc)
