"""Alert ingest in a real server over real gRPC, on SQLite and PostgreSQL: roles, dedup, revisions refining a
target, test alerts, rejected packets kept raw with nothing else written, retractions cancelling jobs with
ALERT_RETRACTED, alias and cone matching, the watch directory, the Kafka consumer loop on a recorded stream, the
planner's time-critical demand, and the `skymesh alerts` CLI."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import grpc
import pytest

from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import alerts_pb2, alerts_pb2_grpc, targets_pb2, targets_pb2_grpc
from skymesh.cli.main import main as cli_main
from skymesh.core.jobs import JobState
from skymesh.core.model import CelestialTarget, GeoLocation, Station, StationKind, StationState, TimeWindow
from skymesh.server import RunningServer
from skymesh.server.alerts.kafka import KafkaMessage, RecordedStream, consume, write_recording
from skymesh.server.db.records import PlannedJob, Role
from tests.server.agent_client import AgentClient
from tests.server.alerts.packets import SCHEMAS, fixture, gcn_notice, rubin_confluent_packet, ztf_packet, ztf_record
from tests.server.conftest import Fleet, StartServer
from tests.server.fake_scheduler import fake_scheduler

S = alerts_pb2.AlertStatus


def _auth(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def _tokens(server: RunningServer) -> dict[str, str]:
    out = {}
    for user, role in (("ada", Role.ADMIN), ("opal", Role.OPERATOR), ("otto", Role.OBSERVER)):
        await server.repo.create_user(user, role)
        out[user] = await server.repo.issue_user_token(user)
    return out


async def _count_rows(server: RunningServer, table: str) -> int:
    from sqlalchemy import text

    async with server.engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_ingest_dedup_revisions_test_alerts_and_rejections(start_server: StartServer) -> None:
    server = await start_server(control_auth=True)
    tokens = await _tokens(server)
    admin = _auth(tokens["ada"])
    async with grpc.aio.insecure_channel(server.address) as channel:
        alerts = alerts_pb2_grpc.AlertServiceStub(channel)
        targets = targets_pb2_grpc.TargetServiceStub(channel)

        async def ingest(name: str, token: str = tokens["opal"]) -> alerts_pb2.IngestAlertResponse:
            request = alerts_pb2.IngestAlertRequest(packet=fixture(name))
            return await alerts.IngestAlert(request, metadata=_auth(token))

        with pytest.raises(grpc.aio.AioRpcError) as err:
            await ingest("gcn_swift_bat_guano.json", tokens["otto"])
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await alerts.IngestAlert(alerts_pb2.IngestAlertRequest(packet=fixture("gcn_swift_bat_guano.json")))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert await _count_rows(server, "alerts") == 0

        first = await ingest("gcn_swift_bat_guano.json")
        (a,) = first.alerts
        assert a.status == S.ALERT_STATUS_ACCEPTED and a.target_id == "grb-261130a" and first.replan_requested
        assert a.origin == "grpc:user:opal" and a.priority == 9
        assert a.time_critical.end.ToDatetime() - a.time_critical.start.ToDatetime() == timedelta(hours=6)
        target = (await targets.GetTarget(targets_pb2.GetTargetRequest(target_id="grb-261130a"), metadata=admin)).target
        assert target.priority == 9 and target.celestial.ra_deg == pytest.approx(201.3651)
        assert target.name == "GRB 261130A"

        again = await ingest("gcn_swift_bat_guano.json")
        assert [x.status for x in again.alerts] == [S.ALERT_STATUS_DUPLICATE]
        assert again.alerts[0].alert_id == a.alert_id
        assert await _count_rows(server, "alerts") == 1

        update = await ingest("gcn_swift_bat_guano_update.json")
        assert update.alerts[0].target_id == "grb-261130a"
        target = (await targets.GetTarget(targets_pb2.GetTargetRequest(target_id="grb-261130a"), metadata=admin)).target
        assert target.celestial.ra_deg == pytest.approx(201.3702)  # the refined position

        test_alert = await ingest("gcn_test_notice.json")
        assert test_alert.alerts[0].status == S.ALERT_STATUS_TEST and not test_alert.alerts[0].target_id
        voe_test = await ingest("voevent_test.xml")
        assert voe_test.alerts[0].status == S.ALERT_STATUS_TEST and not voe_test.replan_requested
        stored = await ingest("lvk_preliminary.json")  # no position: kept, no target
        assert stored.alerts[0].status == S.ALERT_STATUS_STORED
        listed = await targets.ListTargets(targets_pb2.ListTargetsRequest(), metadata=admin)
        assert [t.target_id for t in listed.targets] == ["grb-261130a"]

        targets_before = await _count_rows(server, "targets")
        for name in ("hostile_billion_laughs.xml", "hostile_external_entity.xml", "truncated_gcn.json"):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await ingest(name)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "ALERT_REJECTED" in (err.value.details() or "")
            trailing: dict[str, Any] = dict(cast(Any, err.value.trailing_metadata()) or ())
            rejected_id = str(trailing["skymesh-error-alert_id"])
            got = await alerts.GetAlert(
                alerts_pb2.GetAlertRequest(alert_id=rejected_id, include_raw=True), metadata=admin
            )
            assert got.alert.status == S.ALERT_STATUS_REJECTED and got.raw == fixture(name)
            assert got.alert.error and not got.alert.target_id
        assert await _count_rows(server, "targets") == targets_before
        assert await _count_rows(server, "target_aliases") == 0  # the event name is the target name: no alias rows

        rejected = await alerts.ListAlerts(alerts_pb2.ListAlertsRequest(status=S.ALERT_STATUS_REJECTED), metadata=admin)
        assert len(rejected.alerts) == 3
        everything = await alerts.ListAlerts(alerts_pb2.ListAlertsRequest(), metadata=_auth(tokens["otto"]))
        assert len(everything.alerts) == 8


async def test_retraction_cancels_jobs_and_deletes_the_event_target(start_server: StartServer) -> None:
    server = await start_server()
    await server.repo.create_station(Station("tel1", "T1", StationKind.TELESCOPE, GeoLocation(-30.2, -70.7, 2200.0)))
    ingest = server.alerts.ingest
    accepted = await ingest(fixture("gcn_swift_bat_guano.json"), origin="test")
    target_id = accepted.outcomes[0].record.target_id
    assert target_id == "grb-261130a"
    now = server.repo.clock.now()
    plan = [
        PlannedJob("tel1", target_id, TimeWindow(now + timedelta(minutes=m), now + timedelta(minutes=m + 5)))
        for m in (10, 30)
    ]
    await server.repo.apply_plan(["tel1"], plan)
    jobs = await server.repo.list_jobs(station_id="tel1")
    assert len(jobs) == 2 and all(j.state == JobState.SCHEDULED for j in jobs)

    result = await ingest(fixture("gcn_swift_bat_guano_retraction.json"), origin="test")
    (outcome,) = result.outcomes
    assert outcome.record.status.name == "RETRACTION" and outcome.replan and result.replan_requested
    assert outcome.record.target_id == target_id
    jobs = await server.repo.list_jobs(station_id="tel1")
    assert {(j.state, j.cause) for j in jobs} == {(JobState.CANCELLED, common_pb2.CAUSE_CODE_ALERT_RETRACTED)}
    assert target_id not in {t.target.target_id for t in await server.repo.list_targets()}
    earlier = await server.repo.list_alerts(source="gcn")
    assert sorted(r.status.name for r in earlier) == ["RETRACTED", "RETRACTION"]
    assert await server.repo.alert_windows(now) == {}

    # A revision that arrives after its retraction (out of order) is stored as retracted, never scheduled.
    late = await ingest(fixture("gcn_swift_bat_guano_update.json"), origin="test")
    assert late.outcomes[0].record.status.name == "RETRACTED" and not late.replan_requested
    assert target_id not in {t.target.target_id for t in await server.repo.list_targets()}


async def test_alias_and_cone_matching_update_existing_targets(start_server: StartServer, tmp_path: Path) -> None:
    rules = [{"source": "ztf", "action": "target", "priority": 7}, {"source": "tns", "action": "target", "priority": 5}]
    server = await start_server(alerts={"rules": [*rules, {"source": "gcn", "action": "target", "priority": 10}]})
    ingest = server.alerts.ingest
    tns = await ingest(fixture("tns_object.json"), origin="test")
    assert tns.outcomes[0].record.target_id == "sn-2026xyz"
    # The ZTF alert names the object by its ZTF id, which TNS listed as an internal name: same target.
    ztf = await ingest(ztf_packet(), origin="test")
    assert ztf.outcomes[0].record.target_id == "sn-2026xyz"
    assert (await server.repo.get_target("sn-2026xyz")).target.priority == 7  # raised to the ZTF rule's

    await server.repo.create_target(CelestialTarget("m31-core", "M31 core", 10.6847, 41.2690, priority=3))
    near = gcn_notice(ra_deg=10.6847 + 2.0 / 3600.0, dec_deg=41.2690, trigger_id=424242)  # 2 arcsec away
    cone = await ingest(near, origin="test")
    assert cone.outcomes[0].record.target_id == "m31-core"
    catalogue = (await server.repo.get_target("m31-core")).target
    assert isinstance(catalogue, CelestialTarget)
    assert catalogue.priority == 10 and catalogue.ra_deg == pytest.approx(10.6847)  # position kept
    far = await ingest(gcn_notice(ra_deg=10.6847 + 60.0 / 3600.0, dec_deg=41.2690, trigger_id=424243), origin="t")
    assert far.outcomes[0].record.target_id == "grb-424243"
    # Retracting the cone-matched event leaves the catalogue target alive, at its own priority again.
    retraction = gcn_notice(ra_deg=0.0, dec_deg=0.0, trigger_id=424242, record_number=3, alert_type="retraction")
    await ingest(retraction, origin="test")
    restored = (await server.repo.get_target("m31-core")).target
    assert restored.target_id == "m31-core" and restored.priority == 3


async def test_watch_directory_moves_files_to_done_and_rejected(start_server: StartServer, tmp_path: Path) -> None:
    watch = tmp_path / "inbox"
    server = await start_server(alerts={"watch_dir": str(watch), "watch_interval_s": 0.05})
    for _ in range(100):
        if (watch / "done").is_dir():
            break
        await asyncio.sleep(0.05)
    files = {
        "swift.json": fixture("gcn_swift_bat_guano.json"),
        "again.json": fixture("gcn_swift_bat_guano.json"),
        "ztf.avro": ztf_packet(),
        "evil.xml": fixture("hostile_billion_laughs.xml"),
    }
    for name, data in files.items():
        (watch / f".{name}").write_bytes(data)  # hidden while being written
        (watch / "half.part").write_bytes(data[:10])  # a partial file is never touched
        (watch / f".{name}").rename(watch / name)
        await asyncio.sleep(0.02)
    for _ in range(200):
        if not [p for p in watch.iterdir() if p.is_file() and not p.name.endswith(".part")]:
            break
        await asyncio.sleep(0.05)
    assert sorted(p.name for p in (watch / "done").iterdir()) == ["again.json", "swift.json", "ztf.avro"]
    assert [p.name for p in (watch / "rejected").iterdir()] == ["evil.xml"]
    assert (watch / "half.part").exists()
    records = await server.repo.list_alerts()
    assert sorted(r.status.name for r in records) == ["ACCEPTED", "REJECTED", "STORED"]
    assert {r.origin for r in records} == {"watch:swift.json", "watch:ztf.avro", "watch:evil.xml"}


async def test_kafka_loop_commits_after_storing_and_redelivery_is_deduplicated(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = await start_server()
    topic_gcn, topic_ztf = "gcn.notices.swift.bat.guano", "ztf_20261130_programid1"
    messages = [
        KafkaMessage(topic_gcn, 0, 0, fixture("gcn_swift_bat_guano.json")),
        KafkaMessage(topic_ztf, 0, 0, ztf_packet([ztf_record(candid=1)])),
        KafkaMessage(topic_ztf, 0, 1, ztf_packet([ztf_record(candid=2)])),
        KafkaMessage(topic_gcn, 0, 1, b'{"$schema": "https://gcn.nasa.gov/schema/gcn/notices/x.json", "id": '),
        KafkaMessage(topic_gcn, 0, 2, fixture("gcn_swift_bat_guano_update.json")),
    ]
    recording = tmp_path / "stream.jsonl"
    write_recording(recording, messages)
    stream = RecordedStream(recording)
    # Handle two messages, then "crash" before committing the third: its ingest happened, its commit did not.
    assert stream.poll(0) == messages[0]
    await server.alerts.ingest(messages[0].value, origin="kafka:crash-test")
    stream.commit(messages[0])
    third = stream.poll(0)
    assert third == messages[1]
    await server.alerts.ingest(third.value, origin="kafka:crash-test")  # stored, never committed
    restarted = RecordedStream(recording)
    assert restarted.committed == {f"{topic_gcn}/0": 1}
    registry = server.metrics.registry
    duplicates_before = registry.get_sample_value(
        "skymesh_server_alerts_total", {"source": "ztf", "status": "duplicate"}
    )
    handled = await consume(restarted, server.alerts, poll_s=0.0, stop_when_idle=True)
    duplicates = registry.get_sample_value("skymesh_server_alerts_total", {"source": "ztf", "status": "duplicate"})
    assert (duplicates or 0.0) - (duplicates_before or 0.0) == 1.0
    assert handled == 4  # ztf 0 (redelivered), ztf 1, the broken packet, the update
    assert RecordedStream(recording).committed == {f"{topic_gcn}/0": 3, f"{topic_ztf}/0": 2}
    records = await server.repo.list_alerts()
    assert sorted(r.status.name for r in records) == ["ACCEPTED", "ACCEPTED", "REJECTED", "STORED", "STORED"]
    assert await _count_rows(server, "alerts") == 5  # the redelivered ZTF packet was a duplicate
    assert await consume(RecordedStream(recording), server.alerts, poll_s=0.0, stop_when_idle=True) == 0


async def test_planner_sends_the_alert_window_as_time_critical_demand(start_server: StartServer) -> None:
    async with fake_scheduler() as (scheduler, address, _server):
        server = await start_server(
            planning_enabled=True, scheduler_address=address, replan_interval_s=3600.0, replan_debounce_s=0.05
        )
        station = Station("tel1", "T1", StationKind.TELESCOPE, GeoLocation(-30.2, -70.7, 2200.0))
        await server.repo.create_station(station)
        # ONLINE without a live agent: enough for the planner to plan for it.
        await server.repo.set_station_state("tel1", StationState.ONLINE, last_seen=server.repo.clock.now())
        seen = len(scheduler.requests)
        await server.alerts.ingest(fixture("gcn_swift_bat_guano.json"), origin="test")
        for _ in range(100):
            if len(scheduler.requests) > seen and any(
                t.target.target_id == "grb-261130a" for t in scheduler.requests[-1].targets
            ):
                break
            await asyncio.sleep(0.05)
        request = scheduler.requests[-1]
        (planned,) = [t for t in request.targets if t.target.target_id == "grb-261130a"]
        assert planned.demand.time_critical_boost == pytest.approx(2.0)
        (window,) = planned.demand.time_critical
        assert window.end.ToDatetime() - window.start.ToDatetime() == timedelta(hours=6)


async def test_cli_ingest(start_server: StartServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = await start_server(control_auth=True)
    tokens = await _tokens(server)
    good = tmp_path / "swift.json"
    good.write_bytes(fixture("gcn_swift_bat_guano.json"))
    bad = tmp_path / "evil.xml"
    bad.write_bytes(fixture("hostile_external_entity.xml"))
    args = ["alerts", "--server", server.address, "--token", tokens["opal"], "ingest", str(good), str(bad)]
    code = await asyncio.to_thread(cli_main, args)
    out, err = capsys.readouterr()
    assert code == 1
    assert "swift.json: gcn swift:786169265 rev 1: ACCEPTED -> target grb-261130a" in out
    assert "evil.xml: INVALID_ARGUMENT" in err and "hostile XML refused" in err
    code = await asyncio.to_thread(cli_main, ["alerts", "--server", server.address, "--token", tokens["otto"], "list"])
    listed = [json.loads(line) for line in capsys.readouterr()[0].splitlines()]
    assert code == 0 and sorted(a["status"] for a in listed) == ["ALERT_STATUS_ACCEPTED", "ALERT_STATUS_REJECTED"]


def test_alert_settings_load_from_the_server_yaml(tmp_path: Path) -> None:
    from skymesh.core.errors import InvalidArgument
    from skymesh.server.config import load_config

    path = tmp_path / "server.yaml"
    path.write_text(
        "server:\n"
        "  alerts:\n"
        "    watch_dir: /srv/alerts\n"
        "    match_radius_deg: 0.002\n"
        "    rules:\n"
        "      - {source: ztf, action: target, priority: 4, window_s: 86400, filters: [r, g]}\n"
        "      - {source: gcn, alert_type: 'swift.*', action: target, priority: 10}\n"
    )
    alerts = load_config(path, env={}).alerts
    assert alerts.watch_dir == "/srv/alerts" and alerts.match_radius_deg == pytest.approx(0.002)
    assert alerts.rule_for("ztf", "ztf").filters == ("r", "g") and alerts.rule_for("ztf", "ztf").priority == 4
    assert alerts.rule_for("gcn", "swift.bat.guano").priority == 10
    assert alerts.rule_for("gcn", "fermi.gbm.alert").action == "store"  # no rule: stored only
    with pytest.raises(InvalidArgument, match=r"alerts\.rules"):
        load_config(overrides={"alerts": {"rules": [{"source": "x", "priority": 11, "action": "target"}]}}, env={})
    with pytest.raises(InvalidArgument, match="unknown settings"):
        load_config(overrides={"alerts": {"watchdir": "/x"}}, env={})
    with pytest.raises(InvalidArgument, match="YAML"):
        load_config(env={"SKYMESH_ALERTS": "watch_dir=/x"})


def test_confluent_consumer_settings_are_accepted_by_librdkafka() -> None:
    """No Kafka broker can be installed here (PyPI/npm/Debian have none), so this checks only what can be checked
    without one: librdkafka accepts the consumer's settings (manual commits, earliest offset), refuses a bad one, and
    polling an unreachable broker gives nothing or a transport error rather than a crash."""
    from confluent_kafka import KafkaException

    from skymesh.server.alerts.kafka import ConfluentAlertConsumer

    consumer = ConfluentAlertConsumer("127.0.0.1:9", ["gcn.notices.swift.bat.guano"], "skymesh-test")
    try:
        message = consumer.poll(0.2)
        assert message is None or message.error
    finally:
        consumer.close()
    with pytest.raises(KafkaException):
        ConfluentAlertConsumer("127.0.0.1:9", ["t"], "g", {"no.such.setting": "1"})


async def test_retraction_reaches_a_connected_agent(fleet: Fleet) -> None:
    """The agent holds two jobs of the alert's target, one RUNNING: the retraction sends it a schedule without the
    queued one (cancelled, ALERT_RETRACTED) and an urgent AbortJob for the running one."""
    server = fleet.server
    accepted = await server.alerts.ingest(fixture("gcn_swift_bat_guano.json"), origin="test")
    target_id = accepted.outcomes[0].record.target_id
    assert target_id is not None
    now = datetime.now(UTC)
    windows = [TimeWindow(now + timedelta(seconds=s), now + timedelta(seconds=s + 60)) for s in (5, 600)]
    await server.repo.apply_plan(["gs1"], [PlannedJob("gs1", target_id, w) for w in windows])
    jobs = sorted(await server.repo.list_jobs(station_id="gs1"), key=lambda j: j.window.start)
    running, queued = jobs[0].job_id, jobs[1].job_id
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1") as agent:
        await agent.expect("welcome")
        schedule = await agent.expect("schedule")
        assert {j.job_id for j in schedule.jobs} == {running, queued}
        await agent.job_update(1, running, common_pb2.JOB_STATE_RUNNING)
        await agent.expect("upstream_ack")
        result = await server.alerts.ingest(fixture("gcn_swift_bat_guano_retraction.json"), origin="test")
        assert [j.job_id for j in result.outcomes[0].running_jobs] == [running]
        command = await agent.expect("command")  # the urgent abort goes first
        assert command.abort_job.job_id == running and "alert retracted" in command.abort_job.reason
        assert command.priority == agent_pb2.COMMAND_PRIORITY_URGENT
        schedule = await agent.expect("schedule")
        assert [j.job_id for j in schedule.jobs] == [running]
    cancelled = await server.repo.get_job(queued)
    assert (cancelled.state, cancelled.cause) == (JobState.CANCELLED, common_pb2.CAUSE_CODE_ALERT_RETRACTED)


async def test_confluent_framed_rubin_packets_use_the_configured_schema_dir(
    start_server: StartServer, tmp_path: Path
) -> None:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "42.avsc").write_text((SCHEMAS / "rubin.v11_0.alert.avsc").read_text())
    server = await start_server(alerts={"avro_schema_dir": str(schemas)})
    result = await server.alerts.ingest(rubin_confluent_packet(42), origin="kafka:lsst-alerts-v11/0/7")
    (outcome,) = result.outcomes
    assert outcome.record.source == "rubin" and outcome.record.schema_version == "11.0"
    assert outcome.record.status.name == "STORED"  # the default rule keeps survey alerts without targeting them
    assert outcome.record.magnitude_ab == pytest.approx(20.0, abs=1e-3)
    unknown = await server.alerts.ingest(rubin_confluent_packet(43), origin="kafka:lsst-alerts-v11/0/8")
    assert unknown.error is not None and "no schema registered under id 43" in str(unknown.error)


async def test_source_loops_survive_broker_and_filesystem_failures(start_server: StartServer, tmp_path: Path) -> None:
    server = await start_server()

    class FlakyBroker:
        """Fails its first poll and its first commit, as a broker connection that drops would."""

        def __init__(self, messages: list[KafkaMessage]) -> None:
            self.messages = list(messages)
            self.polls = 0
            self.commits: list[int] = []
            self.closed = False

        def poll(self, timeout_s: float) -> KafkaMessage | None:
            self.polls += 1
            if self.polls == 1:
                raise RuntimeError("broker transport failure")
            return self.messages.pop(0) if self.messages else None

        def commit(self, message: KafkaMessage) -> None:
            self.commits.append(message.offset)
            if len(self.commits) == 1:
                raise RuntimeError("commit failed")

        def close(self) -> None:
            self.closed = True

    broker = FlakyBroker([KafkaMessage("t", 0, 0, fixture("gcn_icecube_gold.json")), KafkaMessage("t", 0, 1, b"x")])
    assert await consume(broker, server.alerts, poll_s=0.0, stop_when_idle=True) == 2
    assert broker.commits == [0, 1] and broker.closed
    assert sorted(r.status.name for r in await server.repo.list_alerts()) == ["ACCEPTED", "REJECTED"]

    from skymesh.server.alerts.watch import AlertWatcher

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "done").write_text("not a directory")  # the move fails: the file stays and nothing is lost
    watcher = AlertWatcher(server.alerts, inbox, 0.05)
    (inbox / "swift.json").write_bytes(fixture("gcn_swift_bat_guano.json"))
    assert await watcher.scan_once() == 0 and (inbox / "swift.json").exists()
    (inbox / "done").unlink()
    (inbox / "done").mkdir()
    assert await watcher.scan_once() == 1 and (inbox / "done" / "swift.json").exists()
    swift = [r for r in await server.repo.list_alerts() if r.source == "gcn" and r.external_id == "swift:786169265"]
    assert len(swift) == 1  # the second scan found a duplicate, not a second alert
