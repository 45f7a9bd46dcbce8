"""The rolling planner: asks the scheduler service for a plan and turns it into jobs and schedule versions.

It runs every `replan_interval_s`, and soon after an event (`request`: a station entering or leaving a schedulable
state, a target created, changed or deleted, new elements, an accepted or retracted alert, the Replan RPC), debounced
so a burst of events makes one plan. Accepted alerts' time-critical windows go to the scheduler as the targets'
`Demand.time_critical` with their boost. A plan that arrives later than `plan_apply_deadline_s` after its request
was sent is discarded (logged, counted as `late`), the current schedules stay and the planner asks again. The
scheduler is reached only through the generated `SchedulerServiceStub` (the server never imports
`skymesh.scheduler`). When it is unreachable the current schedules stay as they are and the planner retries.

With several server replicas (issue 8) only the replica holding the planner lock plans (`Leadership`,
skymesh.server.replicas): the others wait for it (taking it over when the planning replica dies), and pass their
plan requests on to it (`forward`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import grpc

from skymesh.api.control.v1 import events_pb2
from skymesh.api.convert import (
    spacecraft_forecast_from_proto,
    station_to_proto,
    time_window_from_proto,
    time_window_to_proto,
    timestamp_from_datetime,
    timestamp_to_datetime,
)
from skymesh.api.scheduler.v1 import scheduler_pb2
from skymesh.core.clock import Clock
from skymesh.core.errors import DeadlineExceeded, SkyMeshError, Unavailable
from skymesh.core.model import CelestialTarget, SatelliteTarget, Station, StationState, TimeWindow, work_blocked_by
from skymesh.observability.metrics import SERVER_PLANS, ServerMetrics
from skymesh.server.config import ServerConfig
from skymesh.server.db import Repository
from skymesh.server.db.records import JobRecord, PlannedJob, TargetRecord
from skymesh.server.dispatch import Dispatcher
from skymesh.server.looplag import LoopLag, LoopLagMonitor
from skymesh.server.wire import target_record_to_proto

if TYPE_CHECKING:
    from skymesh.api.scheduler.v1.scheduler_pb2_grpc import SchedulerServiceAsyncStub

__all__ = ["LatestPlan", "PlanLate", "PlanResult", "Planner", "plannable_station"]

log = logging.getLogger(__name__)

_SOLVERS = {"greedy": scheduler_pb2.SOLVER_GREEDY, "cpsat": scheduler_pb2.SOLVER_CPSAT}


class Leadership(Protocol):
    """Whether this replica is the one that plans (holds the planner lock), and a way to wait until it is."""

    @property
    def leading(self) -> bool: ...

    async def wait_leading(self) -> None: ...


class PlanLate(DeadlineExceeded):
    """The scheduler's answer came after the plan's apply deadline: it was discarded."""


@dataclass(frozen=True)
class PlanResult:
    assignments: int
    unscheduled: int
    objective: float
    gap: float
    changed_stations: tuple[str, ...]


@dataclass(frozen=True)
class LatestPlan:
    """The last applied plan, for PlanService.GetLatestPlan (why targets were not scheduled): kept in memory and
    stored (`to_proto`) so that every replica answers it."""

    planned_at: datetime
    reason: str
    assignments: int
    explanations: tuple[scheduler_pb2.Explanation, ...]

    def to_proto(self) -> events_pb2.GetLatestPlanResponse:
        out = events_pb2.GetLatestPlanResponse(
            reason=self.reason, assignments=self.assignments, unscheduled=self.explanations
        )
        out.planned_at.CopyFrom(timestamp_from_datetime(self.planned_at))
        return out


def plannable_station(station: Station, failing_roles: tuple[str, ...]) -> Station | None:
    """The station as the scheduler should see it, or None when it gets no new work.

    A DEGRADED station whose failing devices are all ones its kind of work does not need (`work_blocked_by`) is
    planned as ONLINE; one DEGRADED by a device its work needs, or by a telemetry anomaly (no failing device), is not.
    """
    if station.state.schedulable:
        return station
    if station.state == StationState.DEGRADED and failing_roles and not work_blocked_by(station.kind, failing_roles):
        return dataclasses.replace(station, state=StationState.ONLINE)
    return None


class Planner:
    def __init__(
        self,
        repo: Repository,
        dispatcher: Dispatcher,
        scheduler: SchedulerServiceAsyncStub,
        config: ServerConfig,
        clock: Clock,
        *,
        failing_devices: Callable[[str], tuple[str, ...]] = lambda _station_id: (),
        leadership: Leadership | None = None,
        forward: Callable[[str], None] = lambda _reason: None,
        loop_lag: LoopLagMonitor | None = None,
    ) -> None:
        self._loop_lag = loop_lag  # the server's event-loop lag monitor: each plan logs its worst lateness
        self._leadership = leadership  # None: the only server, always plans
        self._forward = forward  # a plan request made here while another replica plans
        self._failing_devices = failing_devices  # the agents' last health reports (liveness), by station
        self._repo = repo
        self._dispatcher = dispatcher
        self._scheduler = scheduler
        self._config = config
        self._clock = clock
        self._wake = asyncio.Event()
        self._reasons: set[str] = set()
        self._lock = asyncio.Lock()
        # The plan running now, if any, and when it began to read; when the planner was last asked for a plan
        # (`request`: every change it is told of). A Replan that finds a plan running which began reading after the
        # last such change joins it instead of queueing a second, identical plan (500 x 3,000: a drop's Replan took
        # 81 s, two plans back to back, where the first already covered the drop).
        self._running: asyncio.Future[PlanResult] | None = None
        self._running_read_at = 0.0
        self._asked_at = 0.0
        # The scheduler call's timeout: `scheduler_timeout_s`, doubled after each timeout up to 95 % of the apply
        # deadline, and back after a plan arrives. A plan that cannot be made within the timeout on this machine
        # (500 x 3,000 x 24 h at load 7: ~70 s against 60) would otherwise be asked for, cut and asked again forever.
        self._timeout_s = config.scheduler_timeout_s
        self.latest: LatestPlan | None = None
        self.runs = 0
        self.failures = 0
        self.late = 0
        # Unix time of the last applied plan that covered each station (the schedule-staleness gauge reads it).
        self.planned_at: dict[str, float] = {}
        self.started_at = time.time()
        # Stations connected before a restart, and how to read their state now: the first plan waits for them.
        self._awaited: set[str] = set()
        self._state_of: Callable[[str], StationState] | None = None

    def await_reconnects(self, station_ids: Iterable[str], state_of: Callable[[str], StationState]) -> None:
        """Before its first plan, wait (up to `plan_startup_grace_s`) until these stations are connected again.

        After a restart every stream is gone; planning at once would plan for the few stations back first and
        churn everything when the rest return."""
        self._awaited = set(station_ids)
        self._state_of = state_of

    async def _startup_grace(self) -> None:
        state_of = self._state_of
        if not self._awaited or state_of is None or self._config.plan_startup_grace_s <= 0:
            return
        deadline = time.monotonic() + self._config.plan_startup_grace_s
        while time.monotonic() < deadline:
            waiting = [s for s in self._awaited if state_of(s) == StationState.DISCONNECTED]
            if not waiting:
                break
            await asyncio.sleep(0.5)
        waiting = [s for s in self._awaited if state_of(s) == StationState.DISCONNECTED]
        if waiting:
            log.info("planning without %d stations not yet reconnected (their jobs stay frozen)", len(waiting))
        self._awaited = set()

    @property
    def leading(self) -> bool:
        """Whether this server plans (always, unless another replica holds the planner lock)."""
        return self._leadership is None or self._leadership.leading

    def request(self, reason: str) -> None:
        """Ask for a plan soon (debounced). Safe to call from anywhere in the event loop. On a replica that does not
        plan, the request goes to the one that does."""
        if not self.leading:
            self._forward(reason)
            return
        self._reasons.add(reason)
        self._asked_at = time.monotonic()
        self._wake.set()

    async def _await_leadership(self) -> None:
        if self._leadership is not None and not self._leadership.leading:
            log.info("another replica plans; this one waits for the planner lock")
            await self._leadership.wait_leading()
            log.info("this replica holds the planner lock now: planning")
            self._wake.set()

    async def run(self) -> None:
        """The loop: owned and cancelled by the server."""
        retry_s = min(self._config.replan_interval_s, 10.0)
        delay = self._config.replan_interval_s
        await self._await_leadership()
        await self._startup_grace()
        self._wake.set()  # plan once at start
        while True:
            try:
                async with asyncio.timeout(delay):  # not wait_for: it can swallow cancellation on 3.11
                    await self._wake.wait()
                await asyncio.sleep(self._config.replan_debounce_s)
            except TimeoutError:
                self._reasons.add("interval")
            self._wake.clear()
            await self._await_leadership()  # lost with the presence connection: wait to take it again
            reasons, self._reasons = sorted(self._reasons), set()
            try:
                await self.plan_once(reason=",".join(reasons) or "start")
                delay = self._config.replan_interval_s
            except Exception as exc:  # never crash the loop: keep the current schedules and retry
                log.warning("planning failed (%s); current schedules kept, retrying in %.0f s", exc, retry_s)
                delay = retry_s

    async def plan_once(self, reason: str = "manual", *, join: bool = False) -> PlanResult:
        """Plan now (after the plan in progress, if any). With `join` (the Replan RPC), a plan in progress that
        began reading after the last change the planner was told of is the answer: it already covers everything."""
        if not self.leading:
            self._forward(reason)
            raise Unavailable(
                "another server replica holds the planner lock; the plan was requested there",
                reason="NOT_PLANNER",
            )
        running = self._running
        if running is not None and not running.done() and self._running_read_at > self._asked_at and join:
            log.info("plan (%s): joins the plan in progress (it began after the last change)", reason)
            try:
                return await asyncio.shield(running)
            except PlanLate:
                pass  # that plan was cut by the scheduler timeout (now longer) or came late: this call plans itself
        async with self._lock:
            mark = self._loop_lag.mark() if self._loop_lag is not None else -1
            running = self._running = asyncio.get_running_loop().create_future()
            self._running_read_at = time.monotonic()
            try:
                result = await self._plan(reason, mark)
            except PlanLate as exc:
                self.failures += 1
                self.late += 1
                SERVER_PLANS.labels("late").inc()
                self.request("late plan")  # ask again (debounced): a late answer took the deadline
                _settle(running, exc)
                raise
            except Exception as exc:
                self.failures += 1
                SERVER_PLANS.labels("failed").inc()
                _settle(running, exc)
                raise
            except BaseException:
                running.cancel()
                raise
            finally:
                if self._loop_lag is not None:
                    self._loop_lag.worst_since(mark)  # closes the window when the plan failed
            running.set_result(result)
            self.runs += 1
            SERVER_PLANS.labels("ok").inc()
            record_plan(result)
            return result

    def _satellite_demand(self, record: TargetRecord) -> tuple[int, float]:
        """(max_per_period, period_s): the per-satellite demand the CLI's scenarios state, so the gap means the
        same; (0, 0) for no limit."""
        if isinstance(record.target, SatelliteTarget) and self._config.plan_satellite_max_per_period > 0:
            return self._config.plan_satellite_max_per_period, self._config.plan_satellite_period_s
        return 0, 0.0

    def _plan_request(
        self,
        window: TimeWindow,
        stations: Sequence[Station],
        away: Sequence[Station],
        targets: Sequence[TargetRecord],
        boosts: Mapping[str, float],
        alert_windows: Mapping[str, tuple[list[TimeWindow], float]],
        frozen: Sequence[JobRecord],
    ) -> scheduler_pb2.ComputePlanRequest:
        """The scheduler's request (run in a worker thread: it only reads its arguments and the config)."""
        return scheduler_pb2.ComputePlanRequest(
            window=time_window_to_proto(window),
            stations=[
                *(station_to_proto(s) for s in stations),
                *(station_to_proto(replace(s, unavailable=(window,))) for s in away),
            ],
            targets=[
                scheduler_pb2.PlanTarget(
                    target=target_record_to_proto(t),
                    demand=scheduler_pb2.Demand(
                        max_per_period=self._satellite_demand(t)[0],
                        period_s=self._satellite_demand(t)[1],
                        campaign_boost=boosts.get(t.campaign_id, 0.0),
                        cadence_s=t.target.cadence_s if isinstance(t.target, CelestialTarget) else 0.0,
                        time_critical=[
                            time_window_to_proto(w) for w in alert_windows.get(t.target.target_id, ([], 0.0))[0]
                        ],
                        time_critical_boost=alert_windows.get(t.target.target_id, ([], 0.0))[1],
                    ),
                )
                for t in targets
            ],
            frozen=[
                scheduler_pb2.FrozenJob(
                    job_id=j.job_id,
                    station_id=j.station_id,
                    target_id=j.target_id,
                    window=time_window_to_proto(j.window),
                    preemptible=False,
                )
                for j in frozen
            ],
            solver=_SOLVERS[self._config.plan_solver],
            time_limit_s=self._config.plan_time_limit_s,
            turnaround_s=self._config.plan_turnaround_s,
            request_id=str(uuid.uuid4()),
        )

    async def _plan(self, reason: str, lag_mark: int = -1) -> PlanResult:
        t_read = time.monotonic()
        took: dict[str, float] = {}
        now = self._clock.now()
        window = TimeWindow(now, now + timedelta(seconds=self._config.plan_horizon_s))
        records = await self._repo.list_stations()
        stations = [
            st
            for s in records
            if (st := plannable_station(s.station, self._failing_devices(s.station.station_id))) is not None
        ]
        # DISCONNECTED stations run the jobs they hold on their own: those jobs are frozen (whatever their start),
        # and the station goes to the scheduler unavailable for the whole window, so it gets nothing new and no
        # satellite is booked elsewhere while one of them holds it.
        away = [s.station for s in records if s.station.state == StationState.DISCONNECTED]
        targets = await self._repo.list_targets()
        boosts = await self._repo.campaign_boosts(now)
        alert_windows = await self._repo.alert_windows(now)  # time-critical windows of accepted alerts
        frozen = await self._repo.frozen_jobs(
            now + timedelta(seconds=self._config.freeze_s), held_by=[s.station_id for s in away]
        )
        station_ids = [s.station_id for s in stations]
        sent_ids = set(station_ids) | {s.station_id for s in away}
        frozen_here = [j for j in frozen if j.station_id in sent_ids]
        # Demand already met: a target with a cadence visited within its cadence by a job whose data passed quality
        # (or was never judged) goes to the scheduler as a frozen placement in the past, so the cadence rule spaces
        # the next visit from it. A visit whose frames failed quality (cause BAD_DATA) is not sent: the target is
        # planned again at once. Only visits by stations in this plan can be sent (the scheduler knows no others).
        cadences = {
            t.target.target_id: t.target.cadence_s
            for t in targets
            if isinstance(t.target, CelestialTarget) and t.target.cadence_s > 0
        }
        live_ids = {j.job_id for j in frozen_here}
        visits = [
            j
            for j in await self._repo.good_visits(cadences, now)
            if j.station_id in sent_ids and j.job_id not in live_ids
        ]
        visit_ids = {j.job_id for j in visits}
        priorities = {t.target.target_id: t.target.priority for t in targets}
        response = scheduler_pb2.ComputePlanResponse()
        if stations and targets:
            # Building the request (3,000 targets with their elements at 500 x 3,000) is pure CPU: a worker thread
            # does it, so the event loop keeps serving (it takes the interpreter back every few milliseconds).
            request = await asyncio.to_thread(
                self._plan_request, window, stations, away, targets, boosts, alert_windows, (*frozen_here, *visits)
            )
            sent = time.monotonic()
            took["read"] = sent - t_read
            try:
                response = await self._scheduler.ComputePlan(request, timeout=self._timeout_s)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    timeout_s = self._timeout_s
                    self._timeout_s = min(2 * timeout_s, 0.95 * self._config.plan_apply_deadline_s)
                    raise PlanLate(
                        f"no plan within the scheduler timeout ({timeout_s:.1f} s; the next call waits "
                        f"{self._timeout_s:.1f} s)"
                    ) from exc
                raise Unavailable(f"scheduler at {self._config.scheduler_address}: {exc.code().name}") from exc
            self._timeout_s = self._config.scheduler_timeout_s
            elapsed = took["scheduler"] = time.monotonic() - sent
            if elapsed > self._config.plan_apply_deadline_s:
                log.warning(
                    "plan (%s) %s arrived %.1f s after its request, past the %.1f s apply deadline: discarded, "
                    "current schedules kept",
                    reason,
                    request.request_id,
                    elapsed,
                    self._config.plan_apply_deadline_s,
                )
                raise PlanLate(
                    f"plan arrived {elapsed:.1f} s after its request (apply deadline "
                    f"{self._config.plan_apply_deadline_s:.1f} s)"
                )
        t_apply = time.monotonic()
        schedulable = set(station_ids)
        # Assignments to jobs (36,000 at 500 x 3,000): pure CPU, in a worker thread like the request.
        planned = await asyncio.to_thread(_planned_jobs, response, schedulable, visit_ids, priorities)
        outcome = await self._repo.apply_plan(
            station_ids, planned, frozen_ids=[j.job_id for j in frozen_here if j.station_id in schedulable]
        )
        self.planned_at.update(dict.fromkeys(station_ids, time.time()))
        forecasts = []
        for i, msg in enumerate(response.spacecraft_forecasts):
            try:
                forecasts.append(spacecraft_forecast_from_proto(msg, f"spacecraft_forecasts[{i}]"))
            except SkyMeshError as exc:
                log.warning("scheduler returned a bad spacecraft forecast, skipped: %s", exc)
        await self._repo.store_spacecraft_forecasts(forecasts)
        for f in forecasts:
            if f.below_min_soc:
                log.warning("plan (%s): %s goes below its minimum state of charge: %s", reason, f.target_id, f.detail)
        self.latest = LatestPlan(now, reason, len(planned), (*response.unscheduled, *response.partially_met))
        latest = self.latest
        stored = await asyncio.to_thread(lambda: latest.to_proto().SerializeToString())  # thousands of explanations
        await self._repo.save_latest_plan(now, stored)  # for every replica
        if self._dispatcher.events is not None:
            self._dispatcher.events.plan(len(planned), len(response.unscheduled), sorted(outcome.versions))
        t_push = time.monotonic()
        took["apply"] = t_push - t_apply
        await self._dispatcher.push_schedules(list(outcome.versions))
        took["push"] = time.monotonic() - t_push
        lag = LoopLag(float("nan"), float("nan"), float("nan"))
        if self._loop_lag is not None:
            lag = self._loop_lag.worst_since(lag_mark)
            for part, value in zip(("late", "busy", "gc"), lag, strict=True):
                ServerMetrics.current().plan_loop_lag_max.labels(part).set(value)
        log.info(
            "plan (%s): %d stations, %d targets -> %d assignments (%d new, %d kept, %d cancelled) in %s; "
            "event loop at most %.3f s late (%.3f s of it busy; longest full GC %.3f s); new versions %s",
            reason,
            len(stations),
            len(targets),
            len(planned),
            outcome.created,
            outcome.kept,
            outcome.cancelled,
            ", ".join(f"{k} {v:.2f} s" for k, v in took.items()),
            lag.late_s,
            lag.busy_s,
            lag.gc_s,
            outcome.versions,
        )
        return PlanResult(
            assignments=len(planned),
            unscheduled=len(response.unscheduled),
            objective=response.stats.objective,
            gap=response.stats.gap,
            changed_stations=tuple(outcome.versions),
        )


def _planned_jobs(
    response: scheduler_pb2.ComputePlanResponse,
    schedulable: set[str],
    visit_ids: set[str],
    priorities: Mapping[str, int],
) -> list[PlannedJob]:
    """The plan's assignments as jobs to apply (run in a worker thread: it only reads its arguments)."""
    planned = []
    for i, a in enumerate(response.assignments):
        if a.station_id not in schedulable:
            continue  # a frozen job of a disconnected station handed back: it stays as it is
        if a.job_id and a.job_id in visit_ids:
            continue  # a past visit handed back as a kept placement: it is history, not a job to make
        try:
            planned.append(
                PlannedJob(
                    station_id=a.station_id,
                    target_id=a.target_id,
                    window=time_window_from_proto(a.window, f"assignments[{i}].window"),
                    job_id=a.job_id,
                    tca=timestamp_to_datetime(a.tca, "tca") if a.HasField("tca") else None,
                    max_elevation_deg=a.max_elevation_deg,
                    filter=a.filter,
                    exposure_s=a.exposure_s,
                    exposure_count=a.exposure_count,
                    priority=priorities.get(a.target_id, 5),
                    score=a.score,
                )
            )
        except SkyMeshError as exc:
            log.warning("scheduler returned a bad assignment, skipped: %s", exc)
    return planned


def _settle(running: asyncio.Future[PlanResult], exc: BaseException) -> None:
    """Hand a failed plan's error to the Replans that joined it (marked retrieved: nobody may have joined)."""
    running.set_exception(exc)
    running.exception()


def record_plan(result: PlanResult) -> None:
    """The last applied plan's moment, objective, gap and unscheduled count, for plan-age and quality alerts."""
    metrics = ServerMetrics.current()
    metrics.plan_last_success.set(time.time())
    metrics.plan_objective.set(result.objective)
    metrics.plan_gap.set(result.gap)
    metrics.plan_unscheduled.set(result.unscheduled)
