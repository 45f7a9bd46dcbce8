"""The contract's field limits (skymesh.api.validation): every rule names a real field, every case of issue 7 is
refused naming its field, sane messages pass, and telemetry splits into batches the server takes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from google.protobuf import descriptor_pool
from google.protobuf.message import Message

from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import (
    alerts_pb2,
    auth_pb2,
    events_pb2,
    observations_pb2,
    stations_pb2,
    targets_pb2,
    users_pb2,
)
from skymesh.api.scheduler.v1 import scheduler_pb2
from skymesh.api.validation import (
    AGENT_MAX_MESSAGE_BYTES,
    FIELD_RULES,
    MAX_TELEMETRY_SAMPLES,
    MessageRefused,
    parse,
    split_telemetry_samples,
)
from skymesh.core.errors import InvalidArgument, ResourceExhausted

# Every contract module loaded: a rule may name a field of any of them (this file alone must pass).
_MODULES = (
    agent_pb2,
    common_pb2,
    scheduler_pb2,
    alerts_pb2,
    auth_pb2,
    events_pb2,
    observations_pb2,
    stations_pb2,
    targets_pb2,
    users_pb2,
)


def test_every_rule_names_a_real_field() -> None:
    pool = descriptor_pool.Default()
    assert _MODULES
    for key in FIELD_RULES:
        pool.FindFieldByName(key.split("[", 1)[0])  # raises KeyError for a rule about no field


def _refused(message: Message) -> MessageRefused:
    with pytest.raises(MessageRefused) as info:
        parse(type(message), message.SerializeToString())
    return info.value


def _hello(**fields: object) -> agent_pb2.ConnectRequest:
    hello = agent_pb2.Hello(station_id="gs1", agent_version="1.0", protocol_version=1, boot_id="b-1")
    for name, value in fields.items():
        setattr(hello, name, value)
    return agent_pb2.ConnectRequest(hello=hello)


def _telemetry(values: dict[str, float], seq: int = 1) -> agent_pb2.ConnectRequest:
    sample = agent_pb2.TelemetrySample(values=values)
    sample.at.FromSeconds(1_700_000_000)
    return agent_pb2.ConnectRequest(telemetry=agent_pb2.TelemetryBatch(samples=[sample]), seq=seq, boot_id="b-1")


def _caps_nan() -> agent_pb2.ConnectRequest:
    request = _hello()
    request.hello.capabilities.aperture_m = float("nan")
    return request


def _observation(**fields: object) -> agent_pb2.ConnectRequest:
    record = agent_pb2.ObservationRecord(observation_id="o-1")
    for name, value in fields.items():
        if name == "filter":
            record.photometry.filter = str(value)
        elif name == "headers":
            record.headers.update(value)  # type: ignore[call-overload]
        else:
            setattr(record, name, value)
    return agent_pb2.ConnectRequest(observation=record, seq=1, boot_id="b-1")


CASES: list[tuple[str, Callable[[], Message], str]] = [
    ("agent_version over 64 chars", lambda: _hello(agent_version="v" * 65), "hello.agent_version"),
    ("NUL in agent_version", lambda: _hello(agent_version="1.0\x00"), "hello.agent_version"),
    ("NaN in capabilities", _caps_nan, "hello.capabilities.aperture_m"),
    ("boot_id over 64 chars", lambda: _hello(boot_id="b" * 65), "hello.boot_id"),
    ("protocol_version -5", lambda: _hello(protocol_version=-5), "hello.protocol_version"),
    ("NUL in station id", lambda: _hello(station_id="gs1\x00"), "hello.station_id"),
    ("photometry.filter over 32", lambda: _observation(filter="V" * 33), "observation.photometry.filter"),
    ("100 kB header", lambda: _observation(headers={"OBSERVER": "x" * 100_000}), "observation.headers['OBSERVER']"),
    ("100 kB channel name", lambda: _telemetry({"c" * 100_000: 1.0}), "telemetry.samples[0].values[key]"),
    ("1 MB header", lambda: _observation(headers={"OBSERVER": "x" * 1_000_000}), ""),
    ("1 MB channel name", lambda: _telemetry({"c" * 1_000_000: 1.0}), ""),
    ("inf telemetry", lambda: _telemetry({"snr": float("inf")}), "telemetry.samples[0].values['snr']"),
    ("seq 2^63", lambda: _telemetry({"a": 1.0}, seq=2**63), "seq"),
    (
        "5 MB ScheduleAck.error",
        lambda: agent_pb2.ConnectRequest(schedule_ack=agent_pb2.ScheduleAck(version=1, error="e" * 5_000_000)),
        "",  # over the message size limit first
    ),
    (
        "CreateStation state=99",
        lambda: stations_pb2.CreateStationRequest(station=common_pb2.Station(station_id="gs1", state=99)),  # type: ignore[arg-type]
        "station.state",
    ),
    (
        "command update with undefined state",
        lambda: agent_pb2.ConnectRequest(command_update=agent_pb2.CommandUpdate(command_id="c", state=42)),  # type: ignore[arg-type]
        "command_update.state",
    ),
    (
        "timestamp in year 10000",
        lambda: agent_pb2.ConnectRequest(heartbeat=agent_pb2.Heartbeat(agent_time={"seconds": 253_402_300_800})),
        "heartbeat.agent_time",
    ),
]


def test_inf_and_minus_inf_in_one_map_are_refused_naming_a_value() -> None:
    # Their sum raises ValueError in `fsum`, which once escaped `parse` instead of naming the value.
    refused = _refused(_telemetry({"a": -float("inf"), "b": float("inf")}))
    assert isinstance(refused.error, InvalidArgument)
    assert refused.error.field in ("telemetry.samples[0].values['a']", "telemetry.samples[0].values['b']")


@pytest.mark.parametrize(("make", "field"), [(m, f) for _, m, f in CASES], ids=[c[0] for c in CASES])
def test_hostile_fields_are_refused_naming_the_field(make: Callable[[], Message], field: str) -> None:
    refused = _refused(make())
    if field:
        assert isinstance(refused.error, InvalidArgument)
        assert refused.error.field == field, refused.error
        assert str(refused.error).startswith(field)
    else:
        assert isinstance(refused.error, ResourceExhausted)
        assert refused.error.reason == "MESSAGE_TOO_LARGE"
        assert str(AGENT_MAX_MESSAGE_BYTES) in str(refused.error)
    assert refused.message is not None  # parsed: the stream can still name a refused upstream message


@pytest.mark.parametrize("raw", [b"\xff\xff\xff", b"\x0a\x02\xff\xfe", b"\x0a\x05abc"])
def test_malformed_bytes_and_invalid_utf8_are_invalid_argument(raw: bytes) -> None:
    with pytest.raises(MessageRefused) as info:
        parse(agent_pb2.ConnectRequest, raw)
    assert isinstance(info.value.error, InvalidArgument)
    assert info.value.error.field == "body"
    assert info.value.message is None


def test_sane_messages_pass() -> None:
    request = _hello()
    request.hello.capabilities.aperture_m = 0.4
    request.hello.capabilities.filters.extend(["V", "R"])
    assert parse(agent_pb2.ConnectRequest, request.SerializeToString()) == request
    telemetry = _telemetry({f"ch{i}.value": float(i) for i in range(64)}, seq=2**63 - 1)
    assert parse(agent_pb2.ConnectRequest, telemetry.SerializeToString()) == telemetry
    plan = scheduler_pb2.ComputePlanRequest(stations=[common_pb2.Station(station_id=f"s{i}") for i in range(5000)])
    assert len(parse(scheduler_pb2.ComputePlanRequest, plan.SerializeToString()).stations) == 5000


def test_telemetry_splits_into_batches_the_server_takes() -> None:
    samples = []
    for i in range(2500):
        sample = agent_pb2.TelemetrySample(values={f"channel.{j}_with_a_long_name_db": float(i) for j in range(40)})
        sample.at.FromSeconds(1_700_000_000 + i)
        samples.append(sample)
    batches = list(split_telemetry_samples(samples))
    assert [s for b in batches for s in b] == samples  # all of them, in order
    for seq, batch in enumerate(batches, 1):
        request = agent_pb2.ConnectRequest(
            telemetry=agent_pb2.TelemetryBatch(boot_id="b", samples=batch), seq=seq, boot_id="b"
        )
        assert len(batch) <= MAX_TELEMETRY_SAMPLES
        assert request.ByteSize() <= AGENT_MAX_MESSAGE_BYTES
        parse(agent_pb2.ConnectRequest, request.SerializeToString())


def test_a_repeated_catalogue_is_checked_once_and_a_bad_target_still_refused() -> None:
    def catalogue(bad: int | None = None, name: str = "Star") -> scheduler_pb2.RankTargetsRequest:
        req = scheduler_pb2.RankTargetsRequest(count=20)
        for i in range(100):
            target = common_pb2.Target(target_id=f"star-{i}", name=name, priority=5)
            target.celestial.ra_deg = float("nan") if i == bad else float(i)
            req.targets.add(target=target)
        return req

    for _ in range(2):  # the second parse takes the kept items: same answer
        assert parse(scheduler_pb2.RankTargetsRequest, catalogue().SerializeToString()) == catalogue()
    # One target of a known catalogue changed to something invalid, and the same invalid catalogue again.
    for _ in range(2):
        refused = _refused(catalogue(bad=37))
        assert isinstance(refused.error, InvalidArgument)
        assert refused.error.field == "targets[37].target.celestial.ra_deg"
    assert _refused(catalogue(name="x" * 201)).error.field == "targets[0].target.name"
