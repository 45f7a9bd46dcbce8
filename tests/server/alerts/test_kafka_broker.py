"""The server's Kafka consumer (`ConfluentAlertConsumer` in `consume`) against a broker that speaks the Kafka protocol
over TCP: librdkafka's mock cluster (`test.mock.num.brokers`, inside the confluent-kafka wheel the server already
depends on). No Kafka or Redpanda broker can be installed here from PyPI, npm or Debian without Docker or a download
(docs/alerts.md says what was searched), so this is the closest real thing: topics, partitions, a consumer group,
offsets committed on the broker. A producer writes GCN and ZTF packets (one broken); the consumer stores each with
its kafka:<topic>/<partition>/<offset> origin and commits it; the group's committed offsets on the broker then cover
every message, and a second group re-reading the topics only finds duplicates (nothing applied twice)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from skymesh.server.alerts.kafka import ConfluentAlertConsumer, KafkaMessage, consume
from skymesh.server.alerts.model import AlertStatus
from tests.server.alerts.packets import fixture, ztf_packet, ztf_record
from tests.server.conftest import StartServer

TOPIC_GCN, TOPIC_ZTF = "gcn.notices.swift.bat.guano", "ztf_20261130_programid1"


@pytest.fixture
def broker() -> Iterator[tuple[str, Producer]]:
    """(bootstrap address, a producer): the producer owns the mock cluster, which lives as long as it does."""
    found: list[str] = []

    class _Bootstrap(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            match = re.search(r"replaced with (\S+)", record.getMessage())
            if match:
                found.append(match.group(1).rstrip(","))

    logger = logging.getLogger("tests.kafka.mock")
    handler = _Bootstrap()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    producer = Producer({"bootstrap.servers": "mock:9092", "test.mock.num.brokers": 1, "logger": logger})
    deadline = time.monotonic() + 10.0
    while not found and time.monotonic() < deadline:
        producer.poll(0.1)
    assert found, "librdkafka did not say where its mock cluster listens"
    yield found[0], producer
    producer.flush(5.0)
    logger.removeHandler(handler)


class _UntilHandled:
    """The real consumer, whose first polls (before the group has its partitions) wait instead of reading as idle, so
    `consume(stop_when_idle=True)` ends once `expected` messages went through and the next poll finds nothing."""

    def __init__(self, inner: ConfluentAlertConsumer, expected: int, timeout_s: float = 30.0) -> None:
        self._inner = inner
        self._expected = expected
        self._deadline = time.monotonic() + timeout_s
        self.seen = 0

    def poll(self, timeout_s: float) -> KafkaMessage | None:
        while True:
            message = self._inner.poll(timeout_s)
            if message is not None:
                self.seen += 1
                return message
            if self.seen >= self._expected or time.monotonic() > self._deadline:
                return None

    def commit(self, message: KafkaMessage) -> None:
        self._inner.commit(message)

    def close(self) -> None:
        self._inner.close()


def _committed(bootstrap: str, group_id: str, topic: str) -> int:
    """How many messages of `topic` the group has committed on the broker (sum over partitions)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id})
    try:
        partitions = consumer.list_topics(topic, timeout=10.0).topics[topic].partitions
        offsets = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10.0)
        return sum(tp.offset for tp in offsets if tp.offset >= 0)
    finally:
        consumer.close()


async def test_confluent_consumer_on_a_kafka_protocol_broker(
    start_server: StartServer, broker: tuple[str, Producer]
) -> None:
    bootstrap, producer = broker
    server = await start_server()
    packets = [
        (TOPIC_GCN, fixture("gcn_swift_bat_guano.json")),
        (TOPIC_ZTF, ztf_packet([ztf_record(candid=1)])),
        (TOPIC_ZTF, ztf_packet([ztf_record(candid=2)])),
        (TOPIC_GCN, b'{"$schema": "https://gcn.nasa.gov/schema/gcn/notices/x.json", "id": '),  # truncated
        (TOPIC_GCN, fixture("gcn_swift_bat_guano_update.json")),
    ]
    for topic, value in packets:
        producer.produce(topic, value)
    assert producer.flush(10.0) == 0

    consumer = _UntilHandled(ConfluentAlertConsumer(bootstrap, [TOPIC_GCN, TOPIC_ZTF], "skymesh-alerts"), 5)
    handled = await asyncio.wait_for(consume(consumer, server.alerts, poll_s=0.2, stop_when_idle=True), 60.0)
    assert handled == 5
    records = await server.repo.list_alerts()
    assert sorted(r.status.name for r in records) == ["ACCEPTED", "ACCEPTED", "REJECTED", "STORED", "STORED"]
    assert all(re.fullmatch(rf"kafka:({TOPIC_GCN}|{TOPIC_ZTF})/\d+/\d+", r.origin) for r in records)
    assert _committed(bootstrap, "skymesh-alerts", TOPIC_GCN) == 3
    assert _committed(bootstrap, "skymesh-alerts", TOPIC_ZTF) == 2

    # Another group reads everything again: the four alerts are duplicates, the broken packet is kept again.
    replay = _UntilHandled(ConfluentAlertConsumer(bootstrap, [TOPIC_GCN, TOPIC_ZTF], "replay"), 5)
    assert await asyncio.wait_for(consume(replay, server.alerts, poll_s=0.2, stop_when_idle=True), 60.0) == 5
    again = await server.repo.list_alerts()
    assert sorted(r.status for r in again) == sorted([r.status for r in records] + [AlertStatus.REJECTED])
