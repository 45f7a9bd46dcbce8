"""`skymesh demo`: the whole system on one machine, with simulated stations, on the embedded SQLite default.

Starts the scheduler and the server as their own processes (the same `skymesh scheduler` / `skymesh server` a
deployment runs), registers a fleet of simulated ground stations and telescopes through the public gRPC API, issues
each a key, starts their agents (`skymesh agent`, one process each, with the built-in simulator), then shows a live
view of stations, jobs and stored observations until at least one satellite pass and one telescope exposure are
stored (or the time limit passes), and prints a summary.

The telescopes' simulated cameras render the star field around each target from a catalogue the demo generates at
start (`demo_catalogue`: a synthetic field around each of the fleet's stars, written to the data directory), and the
server reduces their frames against the same catalogue, so the light curves are the server's calibrated reductions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skymesh.core.model import CelestialTarget, Station, StationKind, Target
from skymesh.sim.fleet import VariableStar


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run server + scheduler + simulated stations on SQLite with a live view",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--ground-stations", type=int, default=4, help="simulated ground stations (default 4)")
    p.add_argument("--telescopes", type=int, default=3, help="simulated telescopes at sites in darkness (default 3)")
    p.add_argument("--satellites", type=int, default=25, help="generated satellites of real orbit families")
    p.add_argument("--max-duration-s", type=float, default=300.0, help="stop after this long at most (default 300)")
    p.add_argument(
        "--linger-s", type=float, default=10.0, help="keep running this long after the goal is reached (default 10)"
    )
    p.add_argument("--data-dir", default="var/demo", help="where the database, keys and agent state go")
    p.add_argument("--no-live", action="store_true", help="plain log lines instead of the live terminal view")
    p.add_argument(
        "--observe",
        action="store_true",
        help="also start a real Prometheus (the 'prometheus' binary) scraping every process, with SkyMesh's rules",
    )
    p.add_argument("--prometheus-port", type=int, default=9090, help="Prometheus port with --observe (default 9090)")
    p.add_argument(
        "--web-listen",
        default="127.0.0.1:8080",
        help="the web gateway's address (default 127.0.0.1:8080; any free port if that one is taken)",
    )
    p.set_defaults(func=_run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class _Procs:
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: Path = Path()

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it for its lifetime
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "skymesh", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    def check(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
                raise SystemExit(f"{name} exited with code {proc.returncode}; last lines:\n" + "\n".join(tail))

    def stop(self) -> None:
        # Agents and the gateway first, then the server (it drains), then the scheduler.
        order = sorted(self.procs, key=lambda n: (n == "scheduler", n == "server"))
        for name in order:
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                proc.kill()


def _run(args: argparse.Namespace) -> int:
    data = Path(args.data_dir).resolve()
    if data.exists():
        shutil.rmtree(data)
    (data / "logs").mkdir(parents=True)
    (data / "agents").mkdir()
    return asyncio.run(_demo(args, data))


def demo_catalogue(stars: tuple[VariableStar, ...], path: Path) -> Path | None:
    """A synthetic field around each demo star (the star at its centre with its mean V magnitude), written as ECSV.
    Comparison stars run from half a magnitude below the star's mean (never brighter than it: they must not saturate
    where the star does not), or V 9.5 for stars fainter than V 9, over 7 magnitudes to at most V 16: a 4th-magnitude
    Cepheid is measured in millisecond exposures (`demo_exposure_s`) where only stars of V 9 or brighter rise above
    the noise, as observers of bright variables pick comparisons within a few magnitudes of them. None when the
    products extra (astropy) is not installed: frames are then stored but not reduced."""
    try:
        from skymesh.products.catalog import FieldCentre, generate_field_catalogue, write_catalogue
    except ImportError:
        return None
    fields = []
    for i, s in enumerate(stars):
        bright = s.magnitude + 0.5 if s.magnitude < 9.0 else max(9.5, s.magnitude)
        fields.append(
            FieldCentre(
                s.target_id,
                s.ra_deg,
                s.dec_deg,
                s.magnitude,
                seed=100 + i,
                star_count=300,
                radius_deg=0.2,
                bright_v_mag=bright,
                faint_v_mag=min(16.0, bright + (5.0 if s.magnitude < 9.0 else 7.0)),
            )
        )
    return write_catalogue(generate_field_catalogue(fields, "SkyMesh demo fields (skymesh demo)"), path)


def demo_exposure_s(star: VariableStar, aperture_m: float, *, max_exposure_s: float = 2.0) -> float:
    """The demo's exposure for a variable: unsaturated at its brightest on a telescope of `aperture_m` (the largest
    of the demo's telescopes, so none saturates), at most `max_exposure_s` (the demo is fast)."""
    from skymesh.products.exposure import unsaturated_exposure_s

    return unsaturated_exposure_s(star.magnitude - star.amplitude_mag, aperture_m, max_exposure_s=max_exposure_s)


def _exposed(
    stars: tuple[CelestialTarget, ...], variables: tuple[VariableStar, ...], stations: tuple[Station, ...]
) -> tuple[CelestialTarget, ...]:
    """The demo's stars with exposures that do not saturate on its largest telescope."""
    apertures = [s.aperture_m for s in stations if s.kind == StationKind.TELESCOPE and s.aperture_m > 0]
    if not apertures:
        return stars
    by_id = {v.target_id: v for v in variables}
    return tuple(
        dataclasses.replace(t, exposure_s=demo_exposure_s(by_id[t.target_id], max(apertures)))
        if t.target_id in by_id
        else t
        for t in stars
    )


def _agent_config(
    station: Station,
    api_key: str,
    server_addr: str,
    data: Path,
    variables: tuple[VariableStar, ...],
    metrics_port: int | None = None,
    star_catalogue: Path | None = None,
) -> dict[str, Any]:
    """The YAML an operator would write for this station's agent, with the built-in simulator as hardware."""
    ground = station.kind == StationKind.GROUND_STATION
    return {
        "metrics_port": metrics_port,
        "station_id": station.station_id,
        "server_address": server_addr,
        "api_key": api_key,
        "state_dir": str(data / "agents" / station.station_id),
        "kind": "ground_station" if ground else "telescope",
        "location": {
            "latitude_deg": station.location.latitude_deg,
            "longitude_deg": station.location.longitude_deg,
            "altitude_m": station.location.altitude_m,
        },
        "bands": list(station.bands),
        "filters": list(station.filters),
        "aperture_m": station.aperture_m,
        "heartbeat_interval_s": 5.0,
        "limits": {"elevation_min_deg": 0.0, "slew_rate_deg_s": station.slew_rate_deg_s},
        "drivers": {}
        if ground
        else {
            "mount": {"kind": "simulated"},
            "camera": {
                "kind": "simulated",
                "aperture_m": station.aperture_m,
                # The simulator's sky: each variable's light curve, so the stored photometry varies as it should.
                "variables": {
                    v.target_id: {"period_s": v.period_days * 86400.0, "amplitude_mag": v.amplitude_mag}
                    for v in variables
                },
                **({"star_catalogue": str(star_catalogue)} if star_catalogue is not None else {}),
            },
        },
    }


def _web_listen(wanted: str) -> str:
    host, _, port = wanted.rpartition(":")
    with socket.socket() as s:
        try:
            s.bind((host, int(port)))
        except OSError:
            return f"{host}:{_free_port()}"
    return wanted


async def _create_login(channel: Any) -> tuple[str, str]:
    """A demo admin for the web gateway with a random password, made through the API with the first admin's token."""
    import secrets

    from skymesh.api.control.v1 import auth_pb2, auth_pb2_grpc, users_pb2, users_pb2_grpc

    password = secrets.token_urlsafe(12)
    await users_pb2_grpc.UserServiceStub(channel).CreateUser(
        users_pb2.CreateUserRequest(user_id="demo-admin", role=users_pb2.ROLE_ADMIN), timeout=10
    )
    await auth_pb2_grpc.AuthServiceStub(channel).SetPassword(
        auth_pb2.SetPasswordRequest(user_id="demo-admin", password=password), timeout=10
    )
    return "demo-admin", password


def _write_yaml(path: Path, content: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(content))
    return path


async def _wait_serving(address: str, timeout_s: float = 60.0) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"nothing serving at {address} after {timeout_s:.0f} s")
            await asyncio.sleep(0.3)


def _start_prometheus(data: Path, scrape: dict[str, list[str]], port: int) -> Any:
    """A real Prometheus scraping every demo process every 5 s, with SkyMesh's recording and alert rules."""
    from skymesh.observability.prometheus import start_prometheus

    prometheus = start_prometheus(data / "prometheus", scrape, port=port)
    print(f"  prometheus {prometheus.url}  (alerts {prometheus.url}/alerts, rules {prometheus.url}/rules)")
    print(f"             config {prometheus.config_path}", flush=True)
    return prometheus


async def _demo(args: argparse.Namespace, data: Path) -> int:
    from skymesh.api import convert
    from skymesh.api.channel import control_channel
    from skymesh.api.control.v1 import stations_pb2, stations_pb2_grpc, targets_pb2, targets_pb2_grpc
    from skymesh.cli import demo_view
    from skymesh.sim.fleet import build_demo_fleet

    now = datetime.now(UTC)
    print(f"SkyMesh demo: building a fleet for {now:%Y-%m-%d %H:%M:%S} UTC ...", flush=True)
    fleet = build_demo_fleet(
        now, ground_stations=args.ground_stations, telescopes=args.telescopes, satellites=args.satellites
    )
    catalogue = demo_catalogue(fleet.variables, data / "demo_fields.ecsv")
    sched_addr = f"127.0.0.1:{_free_port()}"
    server_addr = f"127.0.0.1:{_free_port()}"
    server_metrics, sched_metrics = _free_port(), _free_port()
    procs = _Procs(logs=data / "logs")
    scrape: dict[str, list[str]] = {
        "skymesh-server": [f"127.0.0.1:{server_metrics}"],
        "skymesh-scheduler": [f"127.0.0.1:{sched_metrics}"],
        "skymesh-agent": [],
    }
    prometheus = None
    server_cfg = _write_yaml(
        data / "server.yaml",
        {
            "listen": server_addr,
            "database_url": f"sqlite+aiosqlite:///{data / 'skymesh.sqlite3'}",
            "scheduler_address": sched_addr,
            "data_dir": str(data / "server-data"),
            "metrics_port": server_metrics,
            "replan_interval_s": 60,
            "heartbeat_interval_s": 5,
            "offline_grace_s": 60,
            "plan_horizon_s": 6 * 3600,
            **({"reference_catalogue": str(catalogue)} if catalogue is not None else {}),
        },
    )
    web_addr = _web_listen(args.web_listen)
    try:
        procs.start("scheduler", ["scheduler", "--listen", sched_addr, "--metrics-port", str(sched_metrics)])
        procs.start("server", ["server", "--config", str(server_cfg)])
        await _wait_serving(sched_addr)
        await _wait_serving(server_addr)
        web_args = ["web", "--listen", web_addr, "--server", server_addr, "--scheduler", sched_addr]
        procs.start("web", web_args)
        print(f"  scheduler  {sched_addr}  (metrics http://127.0.0.1:{sched_metrics}/metrics)")
        print(f"  server     {server_addr}  (metrics http://127.0.0.1:{server_metrics}/metrics)")
        # The server gave its fresh database a first admin and wrote the token here, owner-only.
        token = (data / "server-data" / "admin.token").read_text().strip()
        async with control_channel(server_addr, token=token) as channel:
            user, password = await _create_login(channel)
            print(f"  web        http://{web_addr}/  log in as {user} / {password}  (API docs http://{web_addr}/docs)")
            station_api = stations_pb2_grpc.StationServiceStub(channel)
            target_api = targets_pb2_grpc.TargetServiceStub(channel)
            targets: list[Target] = [*fleet.satellites, *_exposed(fleet.stars, fleet.variables, fleet.stations)]
            for target in targets:
                await target_api.CreateTarget(targets_pb2.CreateTargetRequest(target=convert.target_to_proto(target)))
            for station in fleet.stations:
                await station_api.CreateStation(
                    stations_pb2.CreateStationRequest(station=convert.station_to_proto(station))
                )
                key = await station_api.IssueStationKey(
                    stations_pb2.IssueStationKeyRequest(station_id=station.station_id)
                )
                agent_metrics = _free_port() if args.observe else None
                cfg = _write_yaml(
                    data / "agents" / f"{station.station_id}.yaml",
                    _agent_config(station, key.api_key, server_addr, data, fleet.variables, agent_metrics, catalogue),
                )
                procs.start(f"agent-{station.station_id}", ["agent", "--config", str(cfg)])
                if agent_metrics is not None:
                    scrape["skymesh-agent"].append(f"127.0.0.1:{agent_metrics}")
            print(
                f"  {len(fleet.stations)} stations ({args.ground_stations} ground, "
                f"{len(fleet.stations) - args.ground_stations} telescopes), {len(fleet.satellites)} satellites, "
                f"{len(fleet.stars)} variable stars registered; agents started"
            )
            if args.observe:
                prometheus = _start_prometheus(data, scrape, args.prometheus_port)
            for target_id, (station_id, aos) in fleet.soon.items():
                print(f"  {target_id} rises over {station_id} at {aos:%H:%M:%S} UTC")
            print(f"  logs in {data / 'logs'}\n", flush=True)
            summary = await demo_view.watch(
                channel,
                procs.check,
                max_duration_s=args.max_duration_s,
                linger_s=args.linger_s,
                live=not args.no_live and sys.stdout.isatty(),
            )
    finally:
        if prometheus is not None:
            prometheus.stop()
        procs.stop()
    print(summary.render())
    return 0 if summary.goal_reached else 1
