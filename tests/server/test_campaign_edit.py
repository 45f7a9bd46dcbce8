"""CampaignService.UpdateCampaign and DeleteCampaign over real gRPC with authentication on, on SQLite and
PostgreSQL, and `skymesh campaigns update|delete` on top: only the masked fields change, bad input changes nothing
and names the field, the server enforces the operator role, every change is in the audit log, and a deleted
campaign's targets stay, in no campaign."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from skymesh.api.control.v1 import targets_pb2, targets_pb2_grpc
from skymesh.api.convert import timestamp_from_datetime
from skymesh.core.model import CelestialTarget
from skymesh.server.db.records import CampaignRecord, Role
from tests.server.conftest import StartServer
from tests.server.test_cli_operator import Capture, Cli

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


async def test_update_and_delete_campaigns(start_server: StartServer) -> None:
    server = await start_server(control_auth=True)
    repo = server.repo
    await repo.create_campaign(CampaignRecord("novae", "Novae", "old words", 1.0, T0, T0 + timedelta(days=30)))
    await repo.create_target(CelestialTarget("v1405-cas", "V1405 Cas", 351.16, 61.15), campaign_id="novae")
    await repo.create_target(CelestialTarget("m31", "M31", 10.68, 41.27), campaign_id="")
    for user, role in (("otto", Role.OPERATOR), ("olga", Role.OBSERVER)):
        await repo.create_user(user, role)
    operator = _bearer(await repo.issue_user_token("otto"))
    observer = _bearer(await repo.issue_user_token("olga"))

    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = targets_pb2_grpc.CampaignServiceStub(channel)

        async def stored() -> targets_pb2.Campaign:
            (c,) = (await stub.ListCampaigns(targets_pb2.ListCampaignsRequest(), metadata=operator)).campaigns
            return c

        before = await stored()
        change = targets_pb2.UpdateCampaignRequest(
            campaign=targets_pb2.Campaign(campaign_id="novae", name="Galactic novae", priority_boost=2.5),
            update_mask=FieldMask(paths=["name", "priority_boost", "end"]),  # end unset: cleared
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.UpdateCampaign(change, metadata=observer)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert await stored() == before

        reply = await stub.UpdateCampaign(change, metadata=operator)
        assert (reply.campaign.name, reply.campaign.priority_boost) == ("Galactic novae", 2.5)
        assert reply.campaign.description == "old words" and reply.campaign.start == before.start
        assert not reply.campaign.HasField("end")
        assert await stored() == reply.campaign

        # Bad input: refused naming the field, nothing written.
        bad = [
            (["description", "colour"], {}, "update_mask.paths[1]"),
            (["end"], {"end": timestamp_from_datetime(T0 - timedelta(days=1))}, "campaign.end"),
            (["priority_boost"], {"priority_boost": float("nan")}, "campaign.priority_boost"),
            (["name"], {"name": ""}, "campaign.name"),
            (["name", "name"], {"name": "x"}, "update_mask.paths"),
        ]
        for paths, fields, field in bad:
            request = targets_pb2.UpdateCampaignRequest(
                campaign=targets_pb2.Campaign(campaign_id="novae", **fields), update_mask=FieldMask(paths=paths)
            )
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.UpdateCampaign(request, metadata=operator)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, paths
            assert field in (err.value.details() or ""), (paths, err.value.details())
        assert await stored() == reply.campaign
        for request in (
            targets_pb2.UpdateCampaignRequest(campaign=targets_pb2.Campaign(campaign_id="nope", name="x")),
            targets_pb2.DeleteCampaignRequest(campaign_id="nope"),
        ):
            call = (
                stub.UpdateCampaign if isinstance(request, targets_pb2.UpdateCampaignRequest) else stub.DeleteCampaign
            )
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(request, metadata=operator)  # type: ignore[operator]
            assert err.value.code() == grpc.StatusCode.NOT_FOUND

        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.DeleteCampaign(targets_pb2.DeleteCampaignRequest(campaign_id="novae"), metadata=observer)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        deleted = await stub.DeleteCampaign(targets_pb2.DeleteCampaignRequest(campaign_id="novae"), metadata=operator)
        assert deleted.released_target_count == 1
        assert list((await stub.ListCampaigns(targets_pb2.ListCampaignsRequest(), metadata=operator)).campaigns) == []
    kept = await repo.get_target("v1405-cas")
    assert kept.campaign_id == ""
    audit = [(e.actor, e.action, e.subject) for e in await repo.list_audit(limit=20)]
    assert ("user:otto", "update_campaign", "novae") in audit and ("user:otto", "delete_campaign", "novae") in audit
    assert sum(1 for _, action, _ in audit if action in ("update_campaign", "delete_campaign")) == 2


@pytest.fixture
async def cli(start_server: StartServer, capsys: Capture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.chdir(tmp_path)
    server = await start_server(control_auth=True)
    return Cli(server, capsys, server.config.admin_token_path)


async def test_campaigns_update_and_delete_commands(cli: Cli) -> None:
    await cli("campaigns", "create", "transits", "--priority-boost", "1", "--start", "2026-12-01T00:00:00Z")
    await cli.server.repo.create_target(CelestialTarget("wasp-12", "WASP-12", 97.64, 29.67), campaign_id="transits")
    got = await cli.json(
        "campaigns", "update", "transits", "--name", "Exoplanet transits", "--end", "2027-01-01T00:00:00Z"
    )
    assert got["name"] == "Exoplanet transits" and got["priority_boost"] == 1 and got["end"] == "2027-01-01T00:00:00Z"
    out, _ = await cli("campaigns", "update", "transits", "--start", "none")
    assert "Exoplanet transits" in out
    (listed,) = (await cli.json("campaigns", "list"))["campaigns"]
    assert "start" not in listed or listed["start"] is None
    for argv, words in (
        (("campaigns", "update", "transits"), "nothing to change"),
        (("campaigns", "update", "transits", "--start", "2027-02-01T00:00:00Z"), "campaign.end"),
        (("campaigns", "update", "transits", "--start", "soon"), "--start"),
        (("campaigns", "update", "nope", "--name", "x"), "NOT_FOUND"),
        (("campaigns", "delete", "transits"), "--yes"),
    ):
        _, err = await cli(*argv, ok=False)
        assert words in err, (argv, err)
    out, _ = await cli("campaigns", "delete", "transits", "--yes")
    assert "deleted campaign transits: 1 target(s) now in no campaign" in out
    assert (await cli.json("campaigns", "list"))["campaigns"] == []
    assert (await cli.server.repo.get_target("wasp-12")).campaign_id == ""
