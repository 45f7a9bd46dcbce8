"""The station agent's footprint (start-up time, RSS, CPU per tracked pass) and the pass soak on real rotctld.

Three measurements, each of a separate agent process (so its RSS is the agent's alone):

- start-up: `import skymesh.agent.runtime` (everything `skymesh agent` loads before it connects), several runs.
- simulated: a worker process tracks passes on the simulated rotator and radio, the sky sped up (`ScaledClock`).
- rotctld: a worker tracks passes on `rotctld -m 1` (Hamlib's dummy: 6 deg/s of wall time; started as a
  G-5500-like 0..450 / 0..180 rotator) and `rigctld -m 1`, the sky twice as fast as the wall clock, so the agent is
  told 3 deg/s. Each pass is the minute around the culmination of a real LEO pass (mix of overhead, high and low,
  `tests.agent.passes`): pre-position, wait until the rotator stands, fly, park. The parent polls the daemon on its own
  connection and judges every reading against Skyfield: those are the pointing-error percentiles reported.

RSS is sampled from /proc/<worker>/status every 0.25 s while a pass is flown; CPU is the worker's user+system time
per pass. Results are printed as JSON and, with --write, as markdown in benchmarks/results/agent_footprint.md.

    .venv/bin/python benchmarks/agent_footprint.py                         # start-up + 3 simulated + 20 rotctld
    .venv/bin/python benchmarks/agent_footprint.py --rotctld-passes 4      # shorter
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PASS_MIX = (89.5, 10.0, 60.0, 20.0, 80.0, 35.0, 88.0, 15.0, 70.0, 45.0)
ROTCTLD_CONF = "min_az=0,max_az=450,min_el=0,max_el=180"
ROTCTLD_SPEEDUP = 2.0
DUMMY_RATE_DEG_S = 6.0


# ---------------------------------------------------------------------------------------------------- worker side


def _emit(event: dict[str, Any]) -> None:
    print(json.dumps(event), flush=True)


async def _worker(driver: str, spec: list[dict[str, Any]], ports: dict[str, int], speedup: float) -> None:
    """The agent's side: only what `skymesh agent` imports, plus the pass loop it runs."""
    import skymesh.agent.runtime  # noqa: F401  # load what the real agent loads, for an honest RSS
    from skymesh.agent.config import AgentConfig, DriverConfig, DriversConfig, HardwareLimits
    from skymesh.agent.drivers import build_drivers
    from skymesh.agent.observing import JobContext, perform_job, preposition
    from skymesh.agent.store import LocalJob
    from skymesh.api.agent.v1 import agent_pb2
    from skymesh.api.common.v1 import common_pb2
    from skymesh.api.convert import timestamp_from_datetime
    from skymesh.core.clock import ScaledClock
    from skymesh.core.jobs import JobState
    from skymesh.core.model import GeoLocation

    state = Path(tempfile.mkdtemp(prefix="agent-footprint-"))
    for i, p in enumerate(spec):
        start, end = datetime.fromisoformat(p["start"]), datetime.fromisoformat(p["end"])
        if driver == "rotctld":
            drivers_cfg = DriversConfig(
                rotator=DriverConfig(kind="rotctld", port=ports["rotctld"], timeout_s=3.0),
                radio=DriverConfig(kind="rigctld", port=ports["rigctld"], timeout_s=3.0),
            )
            limits = HardwareLimits(azimuth_max_deg=450.0, elevation_max_deg=180.0, slew_rate_deg_s=6.0 / speedup)
        else:
            drivers_cfg = DriversConfig(rotator=DriverConfig(kind="simulated"), radio=DriverConfig(kind="simulated"))
            limits = HardwareLimits(azimuth_max_deg=450.0, elevation_max_deg=180.0, slew_rate_deg_s=6.0)
        config = AgentConfig(
            station_id="gs-bench",
            state_dir=state,
            location=GeoLocation(*p["site"]),
            tracking_interval_s=0.5 if driver == "rotctld" else 1.0,
            limits=limits,
            drivers=drivers_cfg,
            seed=i,
        )
        target = common_pb2.Target(
            target_id="sat",
            name="SAT",
            priority=5,
            satellite=common_pb2.SatelliteTarget(norad_id=1, tle_line1=p["tle"][0], tle_line2=p["tle"][1]),
        )
        spec_msg = agent_pb2.ScheduledJob(
            job_id=f"pass-{i}", target=target, start=timestamp_from_datetime(start), end=timestamp_from_datetime(end)
        )
        job = LocalJob(f"pass-{i}", spec_msg, start, end, JobState.RUNNING, True, "bench")
        prep_clock = ScaledClock(start - timedelta(seconds=120), speedup)
        drivers = build_drivers(config, prep_clock)
        await drivers.connect()
        assert drivers.rotator is not None
        await preposition(job, JobContext(config, drivers, prep_clock, {}, {}))
        if driver == "rotctld":  # the dummy slews in wall time: fly once it stands
            last = await drivers.rotator.get_position()
            while True:
                await asyncio.sleep(0.25)
                now = await drivers.rotator.get_position()
                if now == last:
                    break
                last = now
        else:
            await prep_clock.sleep(120.0)
        # The simulated rotator lives on the clock it was built with; the dummy daemon on wall time (new sky clock).
        clock = ScaledClock(start - timedelta(seconds=0.5), speedup) if driver == "rotctld" else prep_clock
        _emit({"event": "fly", "pass": i, "wall": time.time(), "sky": clock.now().isoformat(), "rate": speedup})
        record = await perform_job(job, JobContext(config, drivers, clock, {}, {}))
        q = record.pass_quality
        _emit(
            {
                "event": "done",
                "pass": i,
                "wall": time.time(),
                "mode": q.track_mode,
                "p50": q.pointing_error_p50_deg,
                "p95": q.pointing_error_p95_deg,
                "max": q.pointing_error_max_deg,
                "above_1deg_s": q.pointing_error_above_1deg_s,
                "rate_limited_s": q.rate_limited_s,
                "tracked_s": q.tracked_s,
                "faults": q.hardware_faults,
                "flags": list(record.quality_flags),
            }
        )
        await drivers.close()
    shutil.rmtree(state, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------- parent side


def _rss_mb(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(m.group(1)) / 1024.0 if m else None


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def startup(runs: int) -> dict[str, Any]:
    code = (
        "import time,re;t=time.perf_counter();import skymesh.agent.runtime;d=time.perf_counter()-t;"
        "r=int(re.search(r'VmRSS:\\s+(\\d+)',open('/proc/self/status').read()).group(1))/1024;print(d,r)"
    )
    walls, rsss = [], []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=_env()
        )
        wall, rss = map(float, out.stdout.split())
        walls.append(wall)
        rsss.append(rss)
    return {
        "import_s_best": min(walls),
        "import_s_worst": max(walls),
        "rss_mb_best": min(rsss),
        "rss_mb_worst": max(rsss),
    }


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    return env


class _Observer(threading.Thread):
    """Polls rotctld's position on its own connection (wall time, az, el)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.samples: list[tuple[float, float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=3.0)
        f = sock.makefile("rw")
        while not self.stop.is_set():
            f.write("p\n")
            f.flush()
            az, el = float(f.readline()), float(f.readline())
            self.samples.append((time.time(), az, el))
            time.sleep(0.1)
        sock.close()


def run_passes(driver: str, count: int) -> dict[str, Any]:
    import numpy as np

    from tests.agent.passes import SkyfieldTruth, find_pass, separation_deg

    passes = [find_pass(PASS_MIX[i % len(PASS_MIX)]) for i in range(count)]
    spec = []
    for p in passes:
        start, end = p.window(30.0, 30.0) if driver == "rotctld" else (p.aos, p.los)
        spec.append(
            {
                "tle": [p.tle.line1, p.tle.line2],
                "site": [p.site.latitude_deg, p.site.longitude_deg, p.site.altitude_m],
                "start": start.isoformat(),
                "end": end.isoformat(),
            }
        )
    procs: list[subprocess.Popen[bytes]] = []
    ports = {"rotctld": _free_port(), "rigctld": _free_port()}
    speedup = ROTCTLD_SPEEDUP if driver == "rotctld" else 60.0
    observer = None
    if driver == "rotctld":
        rot = ["rotctld", "-m", "1", "-T", "127.0.0.1", "-t", str(ports["rotctld"]), "-C", ROTCTLD_CONF]
        procs.append(subprocess.Popen(rot))
        procs.append(subprocess.Popen(["rigctld", "-m", "1", "-T", "127.0.0.1", "-t", str(ports["rigctld"])]))
        time.sleep(1.0)
        observer = _Observer(ports["rotctld"])
        observer.start()
    spec_file = Path(tempfile.mkstemp(suffix=".json")[1])
    spec_file.write_text(json.dumps(spec))
    worker = subprocess.Popen(
        [sys.executable, __file__, "--worker", driver, "--spec", str(spec_file), "--ports", json.dumps(ports),
         "--speedup", str(speedup)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT, env=_env(),
    )  # fmt: skip
    assert worker.stdout is not None
    rss: list[float] = []
    flying = threading.Event()

    def sample_rss() -> None:
        while worker.poll() is None:
            if flying.is_set() and (value := _rss_mb(worker.pid)) is not None:
                rss.append(value)
            time.sleep(0.25)

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    results: list[dict[str, Any]] = []
    cpu_start = 0.0
    fly: dict[str, Any] = {}
    for line in worker.stdout:
        event = json.loads(line)
        if event["event"] == "fly":
            fly = event
            cpu_start = _cpu_s(worker.pid)
            flying.set()
        elif event["event"] == "done":
            flying.clear()
            event["cpu_s"] = _cpu_s(worker.pid) - cpu_start
            event["flown_wall_s"] = event["wall"] - fly["wall"]
            event["fly_wall"], event["fly_sky"] = fly["wall"], fly["sky"]
            results.append(event)
            print(json.dumps({k: event[k] for k in ("pass", "mode", "p95", "max", "cpu_s")}), file=sys.stderr)
    if worker.wait() != 0:
        raise SystemExit(f"worker failed with {worker.returncode}")
    spec_file.unlink()
    out: dict[str, Any] = {
        "passes": len(results),
        "rss_mb_while_tracking_max": max(rss),
        "rss_mb_while_tracking_median": float(np.median(rss)),
        "cpu_s_per_pass_best": min(r["cpu_s"] for r in results),
        "cpu_s_per_pass_worst": max(r["cpu_s"] for r in results),
        "flown_sky_s_per_pass": [round(r["tracked_s"]) for r in results],
        "modes": sorted({r["mode"] for r in results}),
        "agent_record_p95_deg_worst": max(r["p95"] for r in results),
        "agent_record_max_deg_worst": max(r["max"] for r in results),
        "hardware_faults": sum(r["faults"] for r in results),
        "flags": sorted({f for r in results for f in r["flags"]}),
    }
    if observer is not None:
        observer.stop.set()
        observer.join(5)
        for proc in procs:
            proc.terminate()
            proc.wait(5)
        errors = []
        per_pass_share = []
        for r, p in zip(results, passes, strict=True):
            start = datetime.fromisoformat(spec[r["pass"]]["start"])
            end = datetime.fromisoformat(spec[r["pass"]]["end"])
            sky0 = datetime.fromisoformat(r["fly_sky"])
            rows = [
                (sky0 + timedelta(seconds=(w - r["fly_wall"]) * ROTCTLD_SPEEDUP), az, el)
                for w, az, el in observer.samples
                if r["fly_wall"] <= w <= r["wall"]
            ]
            rows = [row for row in rows if start <= row[0] <= end]
            sky_az, sky_el = SkyfieldTruth(p).altaz_deg([t for t, _, _ in rows])
            err = separation_deg(np.array([a for _, a, _ in rows]), np.array([e for _, _, e in rows]), sky_az, sky_el)
            err = err[sky_el > 0]
            errors.append(err)
            per_pass_share.append(float((err < 1.0).mean()))
        allerr = np.concatenate(errors)
        out["skyfield_pointing_error_deg"] = {
            "p50": float(np.percentile(allerr, 50)),
            "p95": float(np.percentile(allerr, 95)),
            "p99": float(np.percentile(allerr, 99)),
            "max": float(allerr.max()),
            "share_below_1deg": float((allerr < 1.0).mean()),
            "share_below_1deg_worst_pass": min(per_pass_share),
            "samples": int(allerr.size),
        }
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", choices=("simulated", "rotctld"))
    parser.add_argument("--spec")
    parser.add_argument("--ports", default="{}")
    parser.add_argument("--speedup", type=float, default=1.0)
    parser.add_argument("--startup-runs", type=int, default=5)
    parser.add_argument("--simulated-passes", type=int, default=3)
    parser.add_argument("--rotctld-passes", type=int, default=20)
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/agent_footprint.md")
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(Path(args.spec).read_text())
        asyncio.run(_worker(args.worker, spec, json.loads(args.ports), args.speedup))
        return
    sys.path.insert(0, str(ROOT))
    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "startup": startup(args.startup_runs),
    }
    if args.simulated_passes:
        report["simulated"] = run_passes("simulated", args.simulated_passes)
    if args.rotctld_passes:
        report["rotctld"] = run_passes("rotctld", args.rotctld_passes)
    print(json.dumps(report, indent=2))
    if args.write:
        path = ROOT / "benchmarks" / "results" / "agent_footprint.md"
        path.write_text(
            "# Agent footprint and rotctld soak\n\n"
            f"`.venv/bin/python benchmarks/agent_footprint.py {' '.join(sys.argv[1:])}`\n\n"
            "```json\n" + json.dumps(report, indent=2) + "\n```\n"
        )


if __name__ == "__main__":
    main()
