"""Property tests for the upstream converters: any message is either accepted whole or rejected with an
InvalidArgument naming a field, never anything else (no half-parsed values reach the database)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from skymesh.api.agent.v1 import agent_pb2
from skymesh.core.errors import InvalidArgument
from skymesh.server.db.telemetry_blob import unpack
from skymesh.server.wire import job_update_from_proto, observation_from_proto, telemetry_from_proto

_floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
_seconds = st.integers(min_value=-(2**40), max_value=2**40)
_ids = st.text(min_size=0, max_size=80)


def _timestamp() -> SearchStrategy[dict[str, int]]:
    return st.fixed_dictionaries({"seconds": _seconds, "nanos": st.integers(0, 999_999_999)})


@given(
    observation_id=_ids,
    start=_timestamp(),
    end=_timestamp(),
    exposure_s=_floats,
    airmass=_floats,
    magnitude=_floats,
    ra_deg=_floats,
    dec_deg=_floats,
)
def test_observation_accepted_or_rejected_naming_a_field(
    observation_id: str,
    start: dict[str, int],
    end: dict[str, int],
    exposure_s: float,
    airmass: float,
    magnitude: float,
    ra_deg: float,
    dec_deg: float,
) -> None:
    msg = agent_pb2.ObservationRecord(
        observation_id=observation_id,
        exposure_s=exposure_s,
        airmass=airmass,
        photometry=agent_pb2.Photometry(magnitude=magnitude),
        astrometry=agent_pb2.Astrometry(ra_deg=ra_deg, dec_deg=dec_deg),
    )
    msg.start.seconds, msg.start.nanos = start["seconds"], start["nanos"]
    msg.end.seconds, msg.end.nanos = end["seconds"], end["nanos"]
    try:
        obs = observation_from_proto(msg)
    except InvalidArgument as exc:
        assert exc.field is not None and exc.field.startswith("observation.")
        return
    assert obs.end >= obs.start
    assert obs.observation_id and math.isfinite(obs.exposure_s) and obs.exposure_s >= 0
    assert obs.ra_deg is not None and 0 <= obs.ra_deg < 360
    assert agent_pb2.ObservationRecord.FromString(obs.raw) == msg


@given(job_id=_ids, state=st.integers(-5, 20), cause=st.integers(-5, 20), progress=_floats)
def test_job_update_accepted_or_rejected_naming_a_field(job_id: str, state: int, cause: int, progress: float) -> None:
    msg = agent_pb2.JobUpdate(job_id=job_id, state=max(state, 0), cause=max(cause, 0), progress=progress)
    try:
        update = job_update_from_proto(msg)
    except InvalidArgument as exc:
        assert exc.field is not None and exc.field.startswith("job_update.")
        return
    assert update.job_id == job_id and int(update.state) == msg.state


@given(values=st.dictionaries(st.text(max_size=10), _floats, max_size=4), seconds=_seconds)
def test_telemetry_accepted_or_rejected_naming_a_field(values: dict[str, float], seconds: int) -> None:
    sample = agent_pb2.TelemetrySample(values=values)
    sample.at.seconds = seconds
    try:
        batch = telemetry_from_proto(agent_pb2.TelemetryBatch(samples=[sample]), "boot")
    except InvalidArgument as exc:
        assert exc.field is not None and exc.field.startswith("telemetry.")
        return
    [(_, at, stored)] = list(unpack(batch.data).samples())
    assert stored == values and at == batch.at and int(at.timestamp()) == seconds


_channels = st.sampled_from(["az", "el", "radio.snr_db", "", "x" * 70, "nul\x00"])
_sample = st.fixed_dictionaries(
    {
        "values": st.dictionaries(_channels, _floats, max_size=3),
        "seconds": st.sampled_from([0, 1_790_000_000, 1_790_000_001, 253_402_300_800]),
        "nanos": st.sampled_from([0, 5_000, 999_999_999]),
    }
)


@given(samples=st.lists(_sample, max_size=5), same=st.booleans())
def test_telemetry_one_pass_refuses_and_converts_as_guard_then_converter(
    samples: list[dict[str, object]], same: bool
) -> None:
    """The server's guard leaves telemetry samples to the converter (CHECKED_WHEN_CONVERTED), which checks and
    converts them in one pass: every batch is refused with the same error the guard's full check and then the
    general conversion gave (same field, same text), or stored exactly as the general conversion stores it."""
    from skymesh.api.validation import CHECKED_WHEN_CONVERTED, MessageRefused, parse
    from skymesh.server.wire import _columns

    if same and samples:  # the common batch: every sample with the first one's channels
        samples = [{**s, "values": samples[0]["values"]} for s in samples]
    request = agent_pb2.ConnectRequest(seq=1, boot_id="b")
    for s in samples:
        sample = request.telemetry.samples.add(values=s["values"])  # type: ignore[arg-type]
        sample.at.seconds, sample.at.nanos = s["seconds"], s["nanos"]  # type: ignore[assignment]
    raw = request.SerializeToString()
    expected: tuple[object, ...]
    try:
        full = parse(agent_pb2.ConnectRequest, raw)
        expected = ("ok", telemetry_from_general(full.telemetry, _columns))
    except MessageRefused as refused:
        expected = ("refused", refused.error.field, str(refused.error))
    except InvalidArgument as exc:
        expected = ("refused", exc.field, str(exc))
    deferred = parse(agent_pb2.ConnectRequest, raw, deferred=CHECKED_WHEN_CONVERTED)
    try:
        item = telemetry_from_proto(deferred.telemetry, "b")
        got: tuple[object, ...] = ("ok", (item.data, item.at))
    except InvalidArgument as exc:
        got = ("refused", exc.field, str(exc))
    assert got == expected


def telemetry_from_general(batch: agent_pb2.TelemetryBatch, columns: object) -> tuple[bytes, object]:
    """The stored blob and time of `batch` by the general conversion alone (what the server did before one pass)."""
    from skymesh.server.db.records import TelemetryIn
    from skymesh.server.db.telemetry_blob import TelemetryColumns

    if not batch.samples:
        raise InvalidArgument("must not be empty", field="telemetry.samples")
    item = TelemetryIn.of(TelemetryColumns(*columns(batch.samples)))  # type: ignore[operator]
    return item.data, item.at
