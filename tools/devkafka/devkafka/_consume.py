# -*- test-case-name: tests.integration.test_devkafka -*-
"""
Read a topic back, exactly: what tests and the README use to see what the
gateway produced.

Partitions are assigned directly (no consumer group), so reading starts at
once, commits nothing and never depends on a group rebalance.
"""

import time
from collections import namedtuple

__all__ = ["Record", "consume"]

#: One record read back from Kafka.
Record = namedtuple("Record", "topic partition offset key value headers timestamp")
Record.__doc__ = """
One Kafka record.

:ivar topic: the topic name.
:ivar partition: the partition number.
:ivar offset: the offset in that partition.
:ivar key: ``bytes`` or ``None``.
:ivar value: ``bytes`` or ``None``.
:ivar headers: a list of ``(name, bytes-or-None)`` pairs, possibly empty.
:ivar timestamp: milliseconds since the epoch (``None`` if unavailable).
"""


def _partitions(consumer, topic, deadline):
    # The topic may not exist yet (the producer has not written): wait for it.
    while True:
        remaining = deadline - time.monotonic()
        try:
            meta = consumer.list_topics(topic, timeout=max(0.1, min(remaining, 2.0)))
            found = meta.topics.get(topic)
            if found is not None and found.error is None and found.partitions:
                return sorted(found.partitions)
        except Exception:  # KafkaException while the broker is unreachable.
            pass
        if time.monotonic() >= deadline:
            return []
        time.sleep(0.1)


def consume(bootstrap, topic, count=None, timeout=10.0, fromBeginning=True, config=None):
    """
    Read records from every partition of a topic.

    :param bootstrap: ``host:port[,host:port...]``.
    :param topic: the topic to read.
    :param count: stop after this many records; ``None`` reads until
        ``timeout``.
    :param timeout: overall seconds to wait (``None``: forever, only
        sensible with ``count`` or for an interactive reader).
    :param fromBeginning: start at the earliest offsets, else at the end.
    :param config: extra confluent-kafka consumer settings.
    :return: a list of :class:`Record`, in the order received (per-partition
        order is preserved).
    """
    return list(iterRecords(bootstrap, topic, count, timeout, fromBeginning, config))


def iterRecords(bootstrap, topic, count=None, timeout=10.0, fromBeginning=True, config=None):
    """
    Like :func:`consume`, yielding each :class:`Record` as it arrives.

    :param bootstrap: ``host:port[,host:port...]``.
    :param topic: the topic to read.
    :param count: stop after this many records; ``None``: until ``timeout``.
    :param timeout: overall seconds to wait, or ``None`` for no limit.
    :param fromBeginning: start at the earliest offsets, else at the end.
    :param config: extra confluent-kafka consumer settings.
    """
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

    settings = {
        "bootstrap.servers": bootstrap,
        "group.id": "devkafka-reader",  # Required by the client, never joined.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "allow.auto.create.topics": False,
    }
    settings.update(config or {})
    deadline = float("inf") if timeout is None else time.monotonic() + timeout
    consumer = Consumer(settings)
    try:
        partitions = _partitions(consumer, topic, deadline)
        if not partitions:
            return
        start = OFFSET_BEGINNING if fromBeginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in partitions])
        seen = 0
        while count is None or seen < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            batch = 500 if count is None else min(500, count - seen)
            for message in consumer.consume(batch, min(remaining, 1.0)):
                if message.error() is not None:
                    continue
                kind, stamp = message.timestamp()
                yield Record(
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    message.key(),
                    message.value(),
                    list(message.headers() or []),
                    stamp if kind else None,
                )
                seen += 1
    finally:
        consumer.close()
