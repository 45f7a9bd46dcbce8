"""The server's data-products worker: every complete FITS upload (photometry) and SigMF IQ recording (pass products)
is reduced by `skymesh.products` in a process pool the server starts, so the event loop never blocks; results go to
the database with the observation's aggregate, and data that fail quality mark the job done-but-bad and ask the
planner for a new plan. The same pool tiles alert sky maps (LVK HEALPix) into fields of view (`tile_skymap`).

Uploads that completed while the server was down (or before a crash) are found at start and reduced then. The pool
uses the "spawn" start method: forking a process that runs gRPC and asyncio is unsafe. `skymesh.products` (astropy,
sep, photutils) is imported only inside the worker processes, so the server's own process stays lean.

Imports: stdlib, `skymesh.server.db`, `skymesh.server.config`; `skymesh.products` only in the workers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import multiprocessing
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from skymesh.server.config import ServerConfig
from skymesh.server.db import Repository
from skymesh.server.db.products import (
    FITS_KINDS,
    FRAME_COUNTS,
    FRAME_FLOATS,
    IQ_KINDS,
    PASS_FLOATS,
    FrameReductionIn,
    PassReductionIn,
    ReductionInput,
)
from skymesh.server.uploads import artifact_file

__all__ = ["Reducer", "SkyMapRefused", "is_fits", "is_reducible"]

log = logging.getLogger(__name__)

_In = TypeVar("_In")
_Out = TypeVar("_Out")


def is_fits(kind: str, resource_name: str) -> bool:
    return kind.lower() in FITS_KINDS or resource_name.lower().endswith(tuple(f".{k}" for k in FITS_KINDS))


def is_reducible(kind: str, resource_name: str) -> bool:
    """A FITS frame (photometry) or a SigMF IQ recording (pass products)."""
    return is_fits(kind, resource_name) or kind.lower() in IQ_KINDS


@dataclass(frozen=True)
class _PassJob:
    path: str
    tle_line1: str
    tle_line2: str
    latitude_deg: float | None
    longitude_deg: float | None
    altitude_m: float | None
    waterfall_path: str


def _finite_values(result: Any, names: tuple[str, ...]) -> dict[str, float]:
    """The named measurements of `result` that are finite (NaN: not measured, not stored)."""
    values = {name: float(getattr(result, name)) for name in names}
    return {k: v for k, v in values.items() if math.isfinite(v)}


def _analyze_in_worker(job: _PassJob) -> PassReductionIn:
    """Runs in a worker process: analyse one IQ recording and draw its waterfall next to it."""
    from skymesh.products.passes import analyze_pass

    try:
        result = analyze_pass(
            job.path,
            tle_line1=job.tle_line1 or None,
            tle_line2=job.tle_line2 or None,
            latitude_deg=job.latitude_deg,
            longitude_deg=job.longitude_deg,
            altitude_m=job.altitude_m,
            waterfall_path=job.waterfall_path,
        )
    except Exception as exc:  # a recording the libraries choke on is recorded as an error, not retried forever
        return PassReductionIn(state="error", error=f"the pass analysis failed: {type(exc).__name__}: {exc}"[:2000])
    if result.error:
        return PassReductionIn(state="error", error=result.error)
    return PassReductionIn(
        state="good" if result.good else "bad",
        captures=result.captures,
        detected=result.detected,
        values=_finite_values(result, PASS_FLOATS),
        flags=result.flags,
        waterfall_path=result.waterfall_path,
    )


class SkyMapRefused(ValueError):
    """The sky map could not be read (the message says why); raised in the server's process."""


@dataclass(frozen=True)
class _SkyMapJob:
    data: bytes
    fov_deg: float
    level: float
    max_tiles: int


def _tile_in_worker(job: _SkyMapJob) -> tuple[str, list[tuple[float, float, float]]]:
    """Runs in a worker process: (error, [(ra_deg, dec_deg, probability)] most probable first)."""
    from skymesh.products.skymap import SkyMapError, read_skymap, tile_pointings

    try:
        tiles = tile_pointings(read_skymap(job.data), job.fov_deg, level=job.level, max_tiles=job.max_tiles)
    except SkyMapError as exc:
        return str(exc), []
    except Exception as exc:  # a map the libraries choke on is refused, never retried
        return f"the sky map could not be tiled: {type(exc).__name__}: {exc}"[:2000], []
    return "", [(t.ra_deg, t.dec_deg, t.probability) for t in tiles]


@dataclass(frozen=True)
class _Job:
    path: str
    target_ra_deg: float | None
    target_dec_deg: float | None
    reference_zero_points_mag: dict[str, float]
    thresholds: dict[str, Any]
    catalogue_path: str


def _reduce_in_worker(job: _Job) -> FrameReductionIn:
    """Runs in a worker process: read, reduce, and flatten the result into plain values."""
    from skymesh.products import QualityThresholds, load_reference_catalogue, reduce_frame

    thresholds = QualityThresholds.from_mapping(dict(job.thresholds))
    catalogue = load_reference_catalogue(job.catalogue_path or None)
    try:
        result = reduce_frame(
            job.path,
            catalogue,
            target_ra_deg=job.target_ra_deg,
            target_dec_deg=job.target_dec_deg,
            reference_zero_point_mag=job.reference_zero_points_mag,
            thresholds=thresholds,
        )
    except Exception as exc:  # a frame the libraries choke on is recorded as an error, not retried forever
        return FrameReductionIn(state="error", error=f"the pipeline failed: {type(exc).__name__}: {exc}"[:2000])
    if result.error:
        return FrameReductionIn(state="error", error=result.error)
    return FrameReductionIn(
        state="good" if result.good else "bad",
        filter=result.filter,
        date_obs=result.date_obs,
        values=_finite_values(result, FRAME_FLOATS),
        counts={name: int(getattr(result, name)) for name in FRAME_COUNTS},
        comparison_ids=result.comparison_ids,
        flags=result.flags,
        wcs=dict(result.wcs_header),
    )


class Reducer:
    """Owns the process pool and the reduction tasks; `start` at server start, `stop` at shutdown."""

    def __init__(
        self,
        repo: Repository,
        config: ServerConfig,
        *,
        on_bad: Callable[[str], None] | None = None,
    ) -> None:
        self._repo = repo
        self._config = config
        self._on_bad = on_bad
        # Target -> when its last bad frame asked for a plan (monotonic s). A target whose frames keep coming back
        # bad (too bright, a field the catalogue does not cover) must not replan the network every few seconds: at
        # once the first time, then at most once per replan interval; the regular interval plans it meanwhile.
        self._bad_replanned: dict[str, float] = {}
        self._pool: ProcessPoolExecutor | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._queued: set[str] = set()
        self.reduced = 0
        self.failed = 0
        self.idle = asyncio.Event()
        self.idle.set()

    @property
    def enabled(self) -> bool:
        return self._pool is not None

    async def start(self) -> None:
        if self._config.reduction_workers <= 0:
            log.info("data products: disabled (reduction_workers = 0)")
            return
        try:
            from importlib.util import find_spec

            missing = [m for m in ("astropy", "sep", "photutils", "scipy") if find_spec(m) is None]
        except ValueError:
            missing = []
        if missing:
            log.warning("data products: disabled, the products extra is not installed (missing %s)", missing)
            return
        self._check_thresholds(self._config.quality_thresholds)
        self._pool = self._new_pool()
        for resource_name, _kind in await self._repo.unreduced_frames():
            self.submit(resource_name)

    @staticmethod
    def _check_thresholds(values: Mapping[str, Any]) -> None:
        from skymesh.core.errors import InvalidArgument
        from skymesh.products.quality import QualityThresholds  # standard library only: astropy stays out

        try:
            QualityThresholds.from_mapping(dict(values))
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(str(exc), field="quality_thresholds") from exc

    def submit(self, resource_name: str) -> None:
        """Reduce one complete upload in the background (no-op when disabled or already queued)."""
        if self._pool is None or resource_name in self._queued:
            return
        self._queued.add(resource_name)
        self.idle.clear()
        task = asyncio.get_running_loop().create_task(self._reduce(resource_name), name=f"reduce {resource_name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self.idle.set()

    async def _reduce(self, resource_name: str) -> None:
        try:
            item = await self._repo.reduction_input(resource_name)
            if item is None or self._pool is None:
                return
            # Found by its storage id under this server's artifacts_dir (another replica may have received it).
            path = str(artifact_file(self._config.uploads_dir, item.path))
            if item.kind == "sigmf":
                pass_job = _PassJob(
                    path=path,
                    tle_line1=item.tle_line1,
                    tle_line2=item.tle_line2,
                    latitude_deg=item.latitude_deg,
                    longitude_deg=item.longitude_deg,
                    altitude_m=item.altitude_m,
                    waterfall_path=path + ".waterfall.png",
                )
                analysis = await self._run(_analyze_in_worker, pass_job)
                if analysis.waterfall_path:
                    # Stored relative to the data directory: the API names it without the server's disk layout.
                    analysis = dataclasses.replace(analysis, waterfall_path=self._relative(analysis.waterfall_path))
                await self._record(item, analysis.state, analysis.flags, analysis.error, pass_result=analysis)
                return
            job = _Job(
                path=path,
                target_ra_deg=item.target_ra_deg,
                target_dec_deg=item.target_dec_deg,
                reference_zero_points_mag=item.reference_zero_points_mag,
                thresholds=dict(self._config.quality_thresholds),
                catalogue_path=self._config.reference_catalogue,
            )
            frame = await self._run(_reduce_in_worker, job)
            await self._record(item, frame.state, frame.flags, frame.error, frame_result=frame)
        except asyncio.CancelledError:
            raise
        except Exception:  # one bad frame must never stop the others; it is retried at the next start
            self.failed += 1
            log.exception("data products: reducing %s failed", resource_name)
        finally:
            self._queued.discard(resource_name)

    def _relative(self, path: str) -> str:
        root, full = Path(self._config.data_dir).resolve(), Path(path).resolve()
        return full.relative_to(root).as_posix() if full.is_relative_to(root) else path

    async def _run(self, fn: Callable[[_In], _Out], job: _In) -> _Out:
        """Run one job in the pool; a pool broken by a dead worker (killed, out of memory) is replaced once."""
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            pool = self._pool
            if pool is None:
                raise RuntimeError("the reducer was stopped")
            try:
                return await loop.run_in_executor(pool, fn, job)
            except BrokenProcessPool:
                if attempt == 2:
                    raise
                log.warning("data products: a worker process died; starting a new pool")
                if self._pool is pool:
                    self._pool = self._new_pool()
                    pool.shutdown(wait=False, cancel_futures=True)
        raise AssertionError("unreachable")

    def _new_pool(self) -> ProcessPoolExecutor:
        # Workers are spawned on the first frame, not here: a server that never sees a FITS file pays nothing.
        return ProcessPoolExecutor(
            max_workers=self._config.reduction_workers, mp_context=multiprocessing.get_context("spawn")
        )

    async def _record(
        self,
        item: ReductionInput,
        state: str,
        flags: tuple[str, ...],
        error: str,
        *,
        frame_result: FrameReductionIn | None = None,
        pass_result: PassReductionIn | None = None,
    ) -> None:
        if pass_result is not None:
            outcome = await self._repo.store_pass_reduction(item, pass_result)
        else:
            assert frame_result is not None
            outcome = await self._repo.store_frame_reduction(item, frame_result)
        self.reduced += 1
        log.info(
            "data products: %s -> %s %s (observation %s: %s)",
            item.resource_name,
            state,
            ",".join(flags) or error,
            item.observation_id,
            outcome.state or "unknown observation",
        )
        if outcome.job_marked_bad and self._on_bad is not None:
            now, target = time.monotonic(), outcome.target_id or ""
            last = self._bad_replanned.get(target)
            if last is None or now - last >= self._config.replan_interval_s:
                self._bad_replanned[target] = now
                self._on_bad(f"bad data for target {outcome.target_id} (job {outcome.job_id})")

    async def tile_skymap(
        self, data: bytes, *, fov_deg: float, level: float, max_tiles: int
    ) -> list[tuple[float, float, float]]:
        """The sky map's `level` credible region covered by square fields of `fov_deg`, as (ra_deg, dec_deg,
        probability) most probable first; `SkyMapRefused` when the map is unusable, RuntimeError when the pool is
        off (no products extra, or reduction_workers 0)."""
        if self._pool is None:
            raise RuntimeError("no reduction workers (reduction_workers 0 or the products extra missing)")
        error, tiles = await self._run(_tile_in_worker, _SkyMapJob(data, fov_deg, level, max_tiles))
        if error:
            raise SkyMapRefused(error)
        return tiles

    async def wait_idle(self, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            await self.idle.wait()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)
