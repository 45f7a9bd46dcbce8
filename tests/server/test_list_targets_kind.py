"""ListTargets by kind (what a station's ranked list asks for), on SQLite and PostgreSQL: each kind alone, their union
is the unfiltered list, every listed record is the one GetTarget answers (newest element set, aliases), pages follow
their kind, and an unknown kind is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from skymesh.api.control.v1 import targets_pb2, targets_pb2_grpc
from skymesh.astro.tle_gen import generate_tles
from skymesh.core.model import CelestialTarget, SatelliteTarget
from tests.server.conftest import StartServer


async def test_list_targets_by_kind(start_server: StartServer) -> None:
    server = await start_server()
    now = datetime.now(UTC)
    tles = generate_tles("sso", 4, now, seed=5)
    for t in tles[:3]:
        await server.repo.create_target(SatelliteTarget(f"sat-{t.norad_id}", t.name, t.norad_id, t.line1, t.line2))
    for i in range(4):
        star = CelestialTarget(f"star-{i}", f"Star {i}", 30.0 * i, -10.0, aliases=(f"HD {i}", f"alias-{i}"))
        await server.repo.create_target(star)
    await server.repo.delete_target("star-3")
    # New elements for one satellite: the list must carry the newest set, as GetTarget does.
    newer = generate_tles("sso", 4, now + timedelta(hours=6), seed=5)[0]
    sat0 = f"sat-{tles[0].norad_id}"
    await server.repo.update_elements(sat0, newer.line1, newer.line2, source="test", epoch=newer.epoch)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = targets_pb2_grpc.TargetServiceStub(channel)
        everything = (await stub.ListTargets(targets_pb2.ListTargetsRequest())).targets
        sats = (await stub.ListTargets(targets_pb2.ListTargetsRequest(kind="satellite"))).targets
        stars = (await stub.ListTargets(targets_pb2.ListTargetsRequest(kind="celestial"))).targets
        assert [t.target_id for t in sats] == sorted(f"sat-{t.norad_id}" for t in tles[:3])
        assert [t.target_id for t in stars] == ["star-0", "star-1", "star-2"]
        assert sorted([*sats, *stars], key=lambda t: t.target_id) == list(everything)
        for t in everything:
            assert t == (await stub.GetTarget(targets_pb2.GetTargetRequest(target_id=t.target_id))).target
        assert next(t for t in sats if t.target_id == sat0).satellite.tle_line1 == newer.line1
        assert list(stars[1].aliases) == ["HD 1", "alias-1"]

        # Pages of one kind, and a token bound to its kind.
        first = await stub.ListTargets(targets_pb2.ListTargetsRequest(kind="satellite", page_size=2))
        rest = await stub.ListTargets(
            targets_pb2.ListTargetsRequest(kind="satellite", page_size=2, page_token=first.next_page_token)
        )
        assert [t.target_id for t in [*first.targets, *rest.targets]] == [t.target_id for t in sats]
        assert not rest.next_page_token
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListTargets(targets_pb2.ListTargetsRequest(kind="celestial", page_token=first.next_page_token))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListTargets(targets_pb2.ListTargetsRequest(kind="planet"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "kind" in (err.value.details() or "")
