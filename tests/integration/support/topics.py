# -*- test-case-name: tests.integration.test_gateway_kafka -*-
"""
Topics of a test's own and what Kafka holds in them: exact sizes from the
partitions' watermark offsets (no waiting for records that should not be
there), waits for a size, and the records read back.
"""

import time
import uuid
from collections import defaultdict

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from devkafka import consume
from tests.support.waiting import waitFor

__all__ = [
    "TopicSize",
    "byPeer",
    "checkRecords",
    "newTopic",
    "readAll",
    "records",
    "topicSize",
    "waitForSize",
    "waitForStableSize",
]


def newTopic(broker, partitions=3, config=None, prefix="gw"):
    """
    Create a fresh topic, by default with several partitions: per-connection
    order then holds only if each connection's records stay on one
    partition.

    :param broker: anything with a C{bootstrap} (a L{DevKafka}).
    :param config: topic settings (e.g. C{max.message.bytes}).
    :return: its name, C{PREFIX-} and a random suffix.
    """
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics(
        [NewTopic(name, partitions, 1, config=config or {})]
    ).values():
        future.result(30)
    return name


class TopicSize:
    """
    The exact number of records in a topic, from its partitions' watermark
    offsets (an idempotent, non-transactional producer writes no control
    records), without reading them.

    A failed query (the broker restarting, its partitions briefly without a
    leader) is raised and the next one starts from a new client, so no stale
    metadata outlives it.

    :ivar error: the last query's error, or L{None}.
    """

    def __init__(self, bootstrap, topic):
        self.bootstrap = bootstrap
        self.topic = topic
        self.error = None
        self._consumer = None
        self._partitions = None

    def __call__(self, timeout=5.0):
        try:
            if self._consumer is None:
                self._consumer = Consumer(
                    {
                        "bootstrap.servers": self.bootstrap,
                        "group.id": "faults-size",
                        "enable.auto.commit": False,
                    }
                )
            if self._partitions is None:
                meta = self._consumer.list_topics(self.topic, timeout=timeout)
                self._partitions = sorted(meta.topics[self.topic].partitions)
            total = 0
            for partition in self._partitions:
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=timeout
                )
                total += high - low
        except Exception as e:
            self.error = e
            self.close()
            raise
        self.error = None
        return total

    def close(self):
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            consumer.close()


def topicSize(bootstrap, topic):
    """
    :return: the number of records in C{topic} now.
    """
    size = TopicSize(bootstrap, topic)
    try:
        return size()
    finally:
        size.close()


def waitForSize(bootstrap, topic, expected, timeout, settle=1.0):
    """
    Wait until the topic holds C{expected} records, then C{settle} seconds
    more to see that no more arrive.

    :return: the final size (which may exceed C{expected}: the caller
        asserts).
    """
    size = TopicSize(bootstrap, topic)
    last = []

    def reached():
        try:
            last[:] = [size()]
        except Exception:  # The broker restarting: ask again.
            return False
        return last[0] >= expected

    try:
        waitFor(
            reached,
            timeout,
            lambda: (
                f"{expected} records in {topic} (last size: {last}, last error: {size.error!r})"
            ),
            interval=0.25,
        )
        time.sleep(settle)
        return size()
    finally:
        size.close()


def waitForStableSize(bootstrap, topic, quiet, timeout):
    """
    Wait until the topic's size has not changed for C{quiet} seconds (e.g.
    after a thaw, while the broker may still append what it had received).

    :return: that size.
    """
    size = TopicSize(bootstrap, topic)
    seen = [None, time.monotonic()]

    def stable():
        try:
            now = size()
        except Exception:
            return False
        if now != seen[0]:
            seen[:] = [now, time.monotonic()]
        return time.monotonic() - seen[1] >= quiet

    try:
        waitFor(
            stable,
            timeout,
            lambda: (
                f"{topic}'s size to stay put for {quiet:g} s (last size: "
                f"{seen[0]}, last error: {size.error!r})"
            ),
            interval=0.25,
        )
        return seen[0]
    finally:
        size.close()


def readAll(bootstrap, topic, count, timeout=120.0):
    """
    Read exactly C{count} records (the topic's size) back.
    """
    records = consume(bootstrap, topic, count=count, timeout=timeout)
    assert len(records) == count, f"read {len(records)} of {count} records back"
    return records


def records(kafka, topic, count, timeout=30.0):
    """
    Wait until C{topic} holds exactly C{count} records (and no more arrive
    for a second), then read them back.
    """
    size = waitForSize(kafka.bootstrap, topic, count, timeout)
    assert size == count, f"{size} records in {topic}, expected {count}"
    found = consume(kafka.bootstrap, topic, count=count, timeout=timeout)
    assert len(found) == count
    return found


def byPeer(found):
    """
    :return: C{{gateway-peer header: [values in order]}}.
    """
    peers = {}
    for record in found:
        peer = dict(record.headers)["gateway-peer"].decode()
        peers.setdefault(peer, []).append(record.value)
    return peers


def checkRecords(records, sent, listener="lines", headers=True):
    """
    Exactly what was sent, once each, in order per connection, keyed by
    listener and peer, and (where the backend carries them) with the
    gateway's two headers naming them.

    :param sent: C{"host:port"} of each client to the values it sent, in
        order.
    :param headers: whether records carry headers (pykafka's pre-0.11
        message format has none).
    """
    assert len(records) == sum(len(v) for v in sent.values())
    assert len({r.value for r in records}) == len(records), "duplicates"
    received = defaultdict(list)
    for record in records:
        keyListener, _, peer = record.key.decode().partition("/")
        assert keyListener == listener
        received[peer].append(record.value)
        found = dict(record.headers or ())
        if headers:
            assert found == {"gateway-listener": listener.encode(), "gateway-peer": peer.encode()}
        else:
            assert found == {}
    assert set(received) == set(sent)
    for peer, messages in sent.items():
        assert received[peer] == messages, f"order or content differs for {peer}"
