"""The gateway's copy of the server's target catalogue, for ranked lists (`GET /api/v1/targets?site_id=...`).

A station's client asks for its ranked list every few seconds. Each request still calls ListTargets with the
caller's token (so the server checks the caller's role as before), but names the catalogue version it holds: the
server answers `unchanged` after one version read, or the whole list when any target changed (a new, changed or
deleted target shows in the next request). The scheduler, likewise, is sent a list once and then named by the
catalogue id it answered (`skymesh.scheduler.service.RankCatalogues`); when it no longer holds it, the list is
sent again. Bounded: a few campaigns, a few filters per catalogue.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from google.protobuf.timestamp_pb2 import Timestamp

from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import targets_pb2
from skymesh.api.scheduler.v1 import scheduler_pb2
from skymesh.core.errors import FailedPrecondition

if TYPE_CHECKING:  # the client holds this module's cache
    from skymesh.web.client import ControlClient

__all__ = ["Catalogue", "RankSelection", "TargetCatalogues", "rank"]

# Campaign filters kept (each a whole catalogue), and selections (kind, priority_min) kept per catalogue.
_MAX_CAMPAIGNS = 8
_MAX_SELECTIONS = 16


@dataclass
class RankSelection:
    """The targets of one kind at or above a priority, by id, and the scheduler's id for that list once known."""

    by_id: dict[str, common_pb2.Target]
    plan_targets: list[scheduler_pb2.PlanTarget]
    catalogue_id: str = ""


@dataclass
class Catalogue:
    """Every target of one campaign filter as listed at `version`, and the selections ranked from it."""

    version: int
    targets: list[common_pb2.Target]
    selections: dict[tuple[str, float], RankSelection] = field(default_factory=dict)

    def select(self, kind: str, priority_min: float) -> RankSelection:
        key = (kind, priority_min)
        sel = self.selections.get(key)
        if sel is None:
            by_id = {
                t.target_id: t for t in self.targets if t.priority >= priority_min and t.WhichOneof("kind") == kind
            }
            sel = RankSelection(by_id, [scheduler_pb2.PlanTarget(target=t) for t in by_id.values()])
            if len(self.selections) >= _MAX_SELECTIONS:
                self.selections.clear()
            self.selections[key] = sel
        return sel


class TargetCatalogues:
    """Per gateway (one control server): the catalogue last listed for each campaign filter, by version."""

    def __init__(self) -> None:
        self._held: OrderedDict[str, Catalogue] = OrderedDict()

    async def current(self, c: ControlClient, token: str, campaign: str) -> Catalogue:
        """The targets in `campaign` (every campaign: "") as of now, read with the caller's token."""
        kept = self._held.get(campaign)
        req = targets_pb2.ListTargetsRequest(campaign_id=campaign, known_version=kept.version if kept else 0)
        resp = await c.call(c.targets.ListTargets, req, token)
        if resp.unchanged and kept is not None and kept.version == resp.catalogue_version:
            self._held.move_to_end(campaign)
            return kept
        listed = Catalogue(resp.catalogue_version, list(resp.targets))
        # Concurrent requests may finish out of order: keep the newest version (0: the server has none, keep none).
        now = self._held.get(campaign)
        if listed.version and (now is None or now.version <= listed.version):
            self._held[campaign] = listed
            self._held.move_to_end(campaign)
            while len(self._held) > _MAX_CAMPAIGNS:
                self._held.popitem(last=False)
        return listed


async def rank(
    c: ControlClient, sel: RankSelection, station: common_pb2.Station, at: Timestamp, count: int
) -> list[scheduler_pb2.RankedTarget]:
    """The scheduler's ranked list of `sel` for `station`: by catalogue id when the scheduler was sent it before."""
    if not sel.by_id:
        return []
    if sel.catalogue_id:
        req = scheduler_pb2.RankTargetsRequest(station=station, at=at, count=count, catalogue_id=sel.catalogue_id)
        try:
            return list((await c.call(c.scheduler.RankTargets, req, None)).targets)
        except FailedPrecondition as exc:
            if exc.reason != "CATALOGUE_UNKNOWN":
                raise
    req = scheduler_pb2.RankTargetsRequest(station=station, at=at, count=count, targets=sel.plan_targets)
    resp = await c.call(c.scheduler.RankTargets, req, None)
    sel.catalogue_id = resp.catalogue_id
    return list(resp.targets)
