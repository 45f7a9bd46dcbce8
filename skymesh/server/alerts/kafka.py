"""Alert streams over Kafka (GCN `gcn.notices.*`/`gcn.classic.voevent.*`, ZTF and Rubin brokers), at least once.

`consume(consumer, ingest)` is the one loop: poll a message, ingest it (a packet that does not parse is kept as
rejected: it counts as handled), and only then commit its offset. A crash between ingest and commit redelivers the
message, and the (source, external id, revision) dedup turns the second copy into DUPLICATE: nothing is applied twice.
Auto-commit is off, as gcn-kafka's README advises for restarts.

Two consumers implement `AlertConsumer`: `ConfluentAlertConsumer` (confluent-kafka, a real broker) and
`RecordedStream` (a recording of messages in a JSON-lines file, with its committed offsets in a sidecar file, so a
restart resumes after the last commit as a consumer group does): tests and replays go through the same loop.
Imports no grpc.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from skymesh.server.alerts.ingest import AlertIngest

__all__ = ["AlertConsumer", "ConfluentAlertConsumer", "KafkaMessage", "RecordedStream", "consume", "write_recording"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KafkaMessage:
    topic: str
    partition: int
    offset: int
    value: bytes
    error: str = ""


class AlertConsumer(Protocol):
    def poll(self, timeout_s: float) -> KafkaMessage | None: ...
    def commit(self, message: KafkaMessage) -> None: ...
    def close(self) -> None: ...


class ConfluentAlertConsumer:
    """A confluent-kafka consumer in a group, auto-commit off, committing each handled message synchronously."""

    def __init__(
        self, bootstrap: str, topics: Iterable[str], group_id: str, extra: Mapping[str, str] | None = None
    ) -> None:
        from confluent_kafka import Consumer

        settings: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **dict(extra or {}),
        }
        self._consumer = Consumer(settings)
        self._consumer.subscribe(list(topics))

    def poll(self, timeout_s: float) -> KafkaMessage | None:
        msg = self._consumer.poll(timeout_s)
        if msg is None:
            return None
        err = msg.error()
        return KafkaMessage(
            topic=msg.topic() or "",
            partition=msg.partition() or 0,
            offset=msg.offset() or 0,
            value=msg.value() or b"",
            error=str(err) if err is not None else "",
        )

    def commit(self, message: KafkaMessage) -> None:
        from confluent_kafka import TopicPartition

        self._consumer.commit(
            offsets=[TopicPartition(message.topic, message.partition, message.offset + 1)], asynchronous=False
        )

    def close(self) -> None:
        self._consumer.close()


def write_recording(path: Path, messages: Iterable[KafkaMessage]) -> None:
    """Write messages as a recording (one JSON object per line, value in base64)."""
    with path.open("w") as out:
        for m in messages:
            value = base64.b64encode(m.value).decode()
            out.write(json.dumps({"topic": m.topic, "partition": m.partition, "offset": m.offset, "value": value}))
            out.write("\n")


class RecordedStream:
    """Replays a recording as a consumer group would: from the committed offsets in `<recording>.offsets.json`."""

    def __init__(self, recording: Path) -> None:
        self._offsets_path = recording.with_name(recording.name + ".offsets.json")
        self._messages = []
        for n, line in enumerate(recording.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
                self._messages.append(
                    KafkaMessage(
                        str(doc["topic"]), int(doc["partition"]), int(doc["offset"]), base64.b64decode(doc["value"])
                    )
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{recording}:{n}: not a recorded message ({exc})") from None
        self.committed: dict[str, int] = (
            json.loads(self._offsets_path.read_text()) if self._offsets_path.exists() else {}
        )
        self._position = 0

    def _next_offset(self, m: KafkaMessage) -> int:
        return self.committed.get(f"{m.topic}/{m.partition}", 0)

    def poll(self, timeout_s: float) -> KafkaMessage | None:
        while self._position < len(self._messages):
            m = self._messages[self._position]
            self._position += 1
            if m.offset >= self._next_offset(m):
                return m
        return None

    def commit(self, message: KafkaMessage) -> None:
        self.committed[f"{message.topic}/{message.partition}"] = message.offset + 1
        tmp = self._offsets_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.committed))
        tmp.replace(self._offsets_path)

    @property
    def exhausted(self) -> bool:
        return self._position >= len(self._messages)

    def close(self) -> None:
        pass


async def consume(
    consumer: AlertConsumer, ingest: AlertIngest, *, poll_s: float = 0.5, stop_when_idle: bool = False
) -> int:
    """Poll, ingest, commit, until cancelled (or, with `stop_when_idle`, until a poll returns nothing).

    Returns the number of messages handled. An ingest that fails (database down) is retried with backoff, without
    committing, so the message is never skipped.
    """
    handled = 0
    backoff_s = 0.5
    try:
        while True:
            try:
                message = await asyncio.to_thread(consumer.poll, poll_s)
            except Exception as exc:  # a broker or client failure must not take the server's other loops down
                log.warning("kafka poll failed (%s); retrying in %.1f s", exc, backoff_s)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 30.0)
                continue
            if message is None:
                if stop_when_idle:
                    return handled
                continue
            if message.error:
                log.warning("kafka %s/%s: %s", message.topic, message.partition, message.error)
                continue
            origin = f"kafka:{message.topic}/{message.partition}/{message.offset}"
            while True:
                try:
                    await ingest.ingest(message.value, origin=origin)
                    break
                except Exception as exc:
                    log.warning("ingesting %s failed (%s); retrying in %.1f s", origin, exc, backoff_s)
                    await asyncio.sleep(backoff_s)
                    backoff_s = min(backoff_s * 2, 30.0)
            backoff_s = 0.5
            try:
                await asyncio.to_thread(consumer.commit, message)
            except Exception as exc:  # stored already: a redelivery is a DUPLICATE
                log.warning("kafka commit of %s failed (%s)", origin, exc)
            handled += 1
    finally:
        await asyncio.to_thread(consumer.close)
