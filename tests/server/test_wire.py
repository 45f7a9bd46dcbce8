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
