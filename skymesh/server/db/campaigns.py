"""Repository part for changing and removing campaigns (creating and listing them is in `registry`): each change in
one transaction with its audit entry."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update

from skymesh.core.errors import InvalidArgument, NotFound
from skymesh.server.db.base import RepoBase
from skymesh.server.db.models import CampaignRow, TargetRow
from skymesh.server.db.records import CampaignRecord

__all__ = ["UPDATABLE_CAMPAIGN_FIELDS", "CampaignRepo"]

UPDATABLE_CAMPAIGN_FIELDS = ("name", "description", "priority_boost", "start", "end")


def _record(row: CampaignRow) -> CampaignRecord:
    return CampaignRecord(row.campaign_id, row.name, row.description, row.priority_boost, row.start, row.end)


class CampaignRepo(RepoBase):
    async def update_campaign(
        self, campaign: CampaignRecord, *, fields: Sequence[str], actor: str = "system"
    ) -> CampaignRecord:
        """Copy `fields` of `campaign` onto the stored campaign of its id. The result must still have end after
        start (InvalidArgument on `campaign.end`, nothing written); NotFound for an unknown campaign."""
        for i, name in enumerate(fields):
            if name not in UPDATABLE_CAMPAIGN_FIELDS:
                raise InvalidArgument(
                    f"{name!r} cannot be updated (updatable: {', '.join(UPDATABLE_CAMPAIGN_FIELDS)})",
                    field=f"update_mask.paths[{i}]",
                )
        now = self._now()
        async with self._tx("update_campaign") as s:
            row = await s.get(CampaignRow, campaign.campaign_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no campaign {campaign.campaign_id!r}", field="campaign.campaign_id")
            values = {name: getattr(campaign, name) for name in fields}
            start, end = values.get("start", row.start), values.get("end", row.end)
            if start is not None and end is not None and end <= start:
                raise InvalidArgument("must be after start", field="campaign.end")
            changed = sorted(name for name, value in values.items() if getattr(row, name) != value)
            for name in changed:
                setattr(row, name, values[name])
            if changed:
                self._audit(s, now, actor, "update_campaign", row.campaign_id, fields=changed)
            return _record(row)

    async def delete_campaign(self, campaign_id: str, *, actor: str = "system") -> int:
        """Remove a campaign; its targets stay, in no campaign. Returns how many targets it had. NotFound for an
        unknown campaign."""
        now = self._now()
        async with self._tx("delete_campaign") as s:
            row = await s.get(CampaignRow, campaign_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no campaign {campaign_id!r}", field="campaign_id")
            count = int(
                await s.scalar(select(func.count()).select_from(TargetRow).where(TargetRow.campaign_id == campaign_id))
                or 0
            )
            await s.execute(update(TargetRow).where(TargetRow.campaign_id == campaign_id).values(campaign_id=None))
            await s.delete(row)
            self._audit(s, now, actor, "delete_campaign", campaign_id, released_targets=count)
            return count
