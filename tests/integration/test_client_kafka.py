# -*- test-case-name: tests.integration.test_client_kafka -*-
"""
The consumer's half of exactly-once against a real broker: records written
as the gateway writes them in ack mode with a session (key = session id,
headers C{gateway-session} and C{gateway-seq}), with the copies a client's
resends create after reconnections, in a topic of several partitions, read
back by a plain confluent-kafka consumer through one L{Deduplicator}.

The gateway's own ack mode is not needed here: the records are produced
directly, so this checks what the recipe in C{docs/client.md} promises a
consumer, whatever wrote the records.
"""

import time
import uuid

from confluent_kafka import Consumer, Producer

from gateway.client import Deduplicator
from tests.integration.support.topics import newTopic

SESSIONS = 4
MESSAGES = 200
#: After these numbers a client "reconnects" and resends the ten before.
RESENDS = (80, 150)


def sent(session):
    """
    The numbers one session's records carry, in the order written: each
    reconnection resends the ten messages it had not seen acknowledged.
    """
    order = []
    for seq in range(1, MESSAGES + 1):
        order.append(seq)
        if seq in RESENDS:
            order.extend(range(seq - 9, seq + 1))
    return order


def produce(bootstrap, topic):
    """
    Write every session's records, the sessions interleaved.

    :return: how many records were written.
    """
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    orders = {f"session-{n}": sent(n) for n in range(SESSIONS)}
    written = 0
    for index in range(max(map(len, orders.values()))):
        for session, order in orders.items():
            if index < len(order):
                seq = order[index]
                producer.produce(
                    topic,
                    value=b"%s/%d" % (session.encode(), seq),
                    key=session.encode(),
                    headers=[("gateway-session", session.encode()), ("gateway-seq", b"%d" % seq)],
                )
                written += 1
                producer.poll(0)
    assert producer.flush(60) == 0
    return written


def consumeAll(bootstrap, topic, count, timeout=120.0):
    """
    Read C{count} records with a confluent-kafka consumer, every partition
    interleaved as it delivers them.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"dedup-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    found = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < count and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and not message.error():
                found.append(message)
    finally:
        consumer.close()
    assert len(found) == count, f"read {len(found)} of {count} records back"
    return found


def test_deduplicatorOnRealTopic(kafka):
    """
    Over three partitions, each session's records come back in order, and
    the L{Deduplicator} keeps exactly messages 1 to 200 of each, once, in
    order, dropping the twenty resent copies per session and seeing no gap.
    """
    topic = newTopic(kafka, partitions=3)
    written = produce(kafka.bootstrap, topic)
    assert written == SESSIONS * (MESSAGES + 10 * len(RESENDS))
    dedup = Deduplicator()
    kept = {}
    for message in consumeAll(kafka.bootstrap, topic, written):
        if not dedup.isDuplicate(message):
            session, seq = message.value().decode().split("/")
            kept.setdefault(session, []).append(int(seq))
    assert kept == {f"session-{n}": list(range(1, MESSAGES + 1)) for n in range(SESSIONS)}
    assert dedup.duplicates == SESSIONS * 10 * len(RESENDS)
    assert dedup.gaps == 0
