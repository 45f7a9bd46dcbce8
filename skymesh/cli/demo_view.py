"""The demo's live terminal view and closing summary, read only through the server's public control API."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import (
    observations_pb2,
    observations_pb2_grpc,
    stations_pb2,
    stations_pb2_grpc,
    targets_pb2,
    targets_pb2_grpc,
)
from skymesh.cli.status import spacecraft_rows

_STATE = {v: k.removeprefix("STATION_STATE_") for k, v in common_pb2.StationState.items()}
_JOB = {v: k.removeprefix("JOB_STATE_") for k, v in common_pb2.JobState.items()}


@dataclass
class Snapshot:
    stations: list[Any] = field(default_factory=list)
    jobs: list[Any] = field(default_factory=list)
    observations: list[Any] = field(default_factory=list)
    elapsed_s: float = 0.0
    spacecraft: list[dict[str, Any]] = field(default_factory=list)  # `skymesh status` rows: profile + forecast

    @property
    def passes(self) -> list[Any]:
        return [o for o in self.observations if o.record.HasField("pass_quality")]

    @property
    def exposures(self) -> list[Any]:
        return [o for o in self.observations if o.record.HasField("photometry")]


@dataclass
class Summary:
    last: Snapshot
    goal_reached: bool

    def render(self) -> str:
        s = self.last
        jobs = Counter(_JOB.get(j.state, "?") for j in s.jobs)
        lines = [
            "",
            f"SkyMesh demo summary after {s.elapsed_s:.0f} s",
            f"  stations: {len(s.stations)} "
            + ", ".join(f"{k.lower()} {v}" for k, v in sorted(Counter(_STATE[x.state] for x in s.stations).items())),
            "  jobs: " + ", ".join(f"{k.lower()} {v}" for k, v in sorted(jobs.items())),
            f"  observations stored: {len(s.observations)} "
            f"({_count(len(s.passes), 'satellite pass', 'satellite passes')}, "
            f"{_count(len(s.exposures), 'telescope exposure', 'telescope exposures')})",
        ]
        for o in s.passes[:5]:
            q = o.record.pass_quality
            lines.append(
                f"    pass     {o.station_id:<18} {o.record.target_id:<12} max el {q.max_elevation_deg:5.1f} deg  "
                f"mean SNR {q.mean_snr_db:5.1f} dB  max Doppler {q.max_doppler_hz / 1e3:6.2f} kHz"
            )
        for o in s.exposures[:5]:
            p = o.record.photometry
            lines.append(
                f"    exposure {o.station_id:<18} {o.record.target_id:<12} {p.filter} = {p.magnitude:6.3f} "
                f"+/- {p.magnitude_error:.3f}  airmass {o.record.airmass:4.2f}  "
                f"flags {','.join(o.record.quality_flags) or '-'}"
            )
        if s.spacecraft:
            lines.append(
                f"  spacecraft (simulated, latest plan): {len(s.spacecraft)} satellites with a profile; "
                "closest to their battery floor first"
            )
        # Tightest power margin first: those are the ones the plan had to protect.
        planned = sorted(
            (r for r in s.spacecraft if r["soc"] is not None),
            key=lambda r: (not r["below_min_soc"], r["min_state_of_charge"] - r["min_soc"]),
        )
        shown = planned[:6]
        for r in shown:
            lines.append(
                f"    {r['target_id']:<12} {r['battery_capacity_wh']:6.0f} Wh  SoC {r['initial_soc']:4.0%} -> "
                f"{r['soc']:4.0%} (min {r['min_state_of_charge']:4.0%}, floor {r['min_soc']:3.0%})  "
                f"on board {r['data_on_board_bytes'] / 1e6:8.1f} MB"
                + ("  BELOW FLOOR" if r["below_min_soc"] else "")
                + (f"  {r['detail']}" if r["detail"] else "")
            )
        if len(s.spacecraft) > len(shown):
            lines.append(f"    ... {len(s.spacecraft) - len(shown)} more (skymesh status --server ... lists all)")
        lines.append(
            "  goal reached: at least one satellite pass and one telescope exposure completed and stored"
            if self.goal_reached
            else "  goal NOT reached within the time limit: see the logs in the data dir"
        )
        return "\n".join(lines)


async def _snapshot(channel: grpc.aio.Channel, started: float) -> Snapshot:
    stations = stations_pb2_grpc.StationServiceStub(channel)
    jobs = observations_pb2_grpc.JobServiceStub(channel)
    obs = observations_pb2_grpc.ObservationServiceStub(channel)
    targets = targets_pb2_grpc.TargetServiceStub(channel)
    st, jb, ob, tg = await asyncio.gather(
        stations.ListStations(stations_pb2.ListStationsRequest(), timeout=5),
        jobs.ListJobs(observations_pb2.ListJobsRequest(), timeout=5),
        obs.ListObservations(observations_pb2.ListObservationsRequest(page_size=1000), timeout=5),
        targets.ListTargets(targets_pb2.ListTargetsRequest(), timeout=5),
    )
    return Snapshot(
        list(st.stations), list(jb.jobs), list(ob.observations), time.monotonic() - started, spacecraft_rows(tg)
    )


def _table(s: Snapshot) -> Any:
    from rich.console import Group
    from rich.table import Table

    running = {j.station_id: j for j in s.jobs if j.state == common_pb2.JOB_STATE_RUNNING}
    nxt: dict[str, Any] = {}
    for j in sorted(s.jobs, key=lambda j: j.window.start.seconds):
        if j.state in (common_pb2.JOB_STATE_DISPATCHED, common_pb2.JOB_STATE_RECEIVED):
            nxt.setdefault(j.station_id, j)
    stored = Counter(o.station_id for o in s.observations)
    t = Table(title=f"SkyMesh demo  t+{s.elapsed_s:.0f}s", expand=False)
    for col in ("station", "kind", "state", "now", "next job (UTC)", "stored"):
        t.add_column(col)
    for st in s.stations:
        kind = "ground" if st.kind == common_pb2.STATION_KIND_GROUND_STATION else "telescope"
        run = running.get(st.station_id)
        n = nxt.get(st.station_id)
        nxt_text = f"{n.target_id} {time.strftime('%H:%M:%S', time.gmtime(n.window.start.seconds))}" if n else "-"
        t.add_row(
            st.station_id,
            kind,
            _STATE.get(st.state, "?"),
            run.target_id if run else "idle",
            nxt_text,
            str(stored.get(st.station_id, 0)),
        )
    jobs = Counter(_JOB.get(j.state, "?") for j in s.jobs)
    foot = Table.grid()
    foot.add_row("jobs: " + "  ".join(f"{k.lower()}={v}" for k, v in sorted(jobs.items())))
    foot.add_row(
        f"stored: {_count(len(s.passes), 'satellite pass', 'satellite passes')}, "
        f"{_count(len(s.exposures), 'telescope exposure', 'telescope exposures')}"
    )
    return Group(t, foot)


async def watch(
    channel: grpc.aio.Channel,
    check_processes: Callable[[], None],
    *,
    max_duration_s: float,
    linger_s: float,
    live: bool,
) -> Summary:
    started = time.monotonic()
    goal_at: float | None = None
    snap = Snapshot()
    live_view: Any = None
    if live:
        from rich.live import Live

        live_view = Live(refresh_per_second=2)
        live_view.start()
    last_print = 0.0
    try:
        while True:
            check_processes()
            try:
                snap = await _snapshot(channel, started)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
            if live_view is not None:
                live_view.update(_table(snap))
            elif time.monotonic() - last_print >= 10:
                last_print = time.monotonic()
                jobs = Counter(_JOB.get(j.state, "?") for j in snap.jobs)
                print(
                    f"t+{snap.elapsed_s:4.0f}s  stations online "
                    f"{sum(1 for x in snap.stations if x.state == common_pb2.STATION_STATE_ONLINE)}/"
                    f"{len(snap.stations)}  jobs "
                    + " ".join(f"{k.lower()}={v}" for k, v in sorted(jobs.items()))
                    + f"  stored passes={len(snap.passes)} exposures={len(snap.exposures)}",
                    flush=True,
                )
            if goal_at is None and snap.passes and snap.exposures:
                goal_at = time.monotonic()
            now = time.monotonic()
            if (goal_at is not None and now - goal_at >= linger_s) or now - started >= max_duration_s:
                break
            await asyncio.sleep(1.0)
    finally:
        if live_view is not None:
            live_view.stop()
    return Summary(snap, goal_reached=bool(snap.passes and snap.exposures))


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"
