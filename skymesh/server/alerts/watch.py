"""The watch directory: every regular file dropped into `alerts.watch_dir` is ingested and moved to `done/` (stored,
including duplicates) or `rejected/` (did not parse). A file whose ingest fails for another reason (database down)
stays where it is and is tried again on the next scan, so nothing is lost.

Writers should create the file under a hidden name or with a `.tmp`/`.part` suffix and rename it when complete:
such names are ignored. Polls every `watch_interval_s` (portable; no inotify dependency). Imports no grpc.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from pathlib import Path

from skymesh.server.alerts.ingest import AlertIngest

__all__ = ["AlertWatcher"]

log = logging.getLogger(__name__)

_PARTIAL_SUFFIXES = (".tmp", ".part", ".partial")


class AlertWatcher:
    def __init__(self, ingest: AlertIngest, directory: Path, interval_s: float) -> None:
        self._ingest = ingest
        self.directory = directory
        self.done = directory / "done"
        self.rejected = directory / "rejected"
        self._interval_s = interval_s

    def _pending(self) -> list[Path]:
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return []
        files = [
            e
            for e in entries
            if e.is_file(follow_symlinks=False)
            and not e.name.startswith(".")
            and not e.name.endswith(_PARTIAL_SUFFIXES)
        ]
        files.sort(key=lambda e: (e.stat().st_mtime_ns, e.name))
        return [Path(e.path) for e in files]

    @staticmethod
    def _move(path: Path, folder: Path) -> Path:
        target = folder / path.name
        if target.exists():
            target = folder / f"{path.stem}.{uuid.uuid4().hex[:8]}{path.suffix}"
        path.replace(target)
        return target

    async def scan_once(self) -> int:
        """Ingest every complete file now in the directory; returns how many were handled."""
        handled = 0
        for path in await asyncio.to_thread(self._pending):
            try:
                packet = await asyncio.to_thread(path.read_bytes)
            except OSError as exc:
                log.warning("cannot read %s: %s", path, exc)
                continue
            try:
                result = await self._ingest.ingest(packet, origin=f"watch:{path.name}")
            except Exception as exc:  # kept in place: tried again on the next scan
                log.warning("ingesting %s failed (%s); it stays for the next scan", path.name, exc)
                continue
            folder = self.rejected if result.error is not None else self.done
            try:
                await asyncio.to_thread(self._move, path, folder)
            except OSError as exc:  # stored already: the next scan finds a DUPLICATE and tries the move again
                log.warning("cannot move %s to %s: %s", path.name, folder, exc)
                continue
            handled += 1
        return handled

    async def run(self) -> None:
        """The loop: owned and cancelled by the server."""
        for folder in (self.directory, self.done, self.rejected):
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        log.info("watching %s for alert packets every %.2f s", self.directory, self._interval_s)
        while True:
            try:
                await self.scan_once()
            except Exception:  # never take the server's other loops down with it
                log.exception("scanning %s failed; trying again", self.directory)
            await asyncio.sleep(self._interval_s)
