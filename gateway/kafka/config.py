# -*- test-case-name: tests.kafka.test_producer -*-
"""
The producer's configuration: the defaults the gateway's guarantees rest on,
merged with what the user gives (librdkafka's property names; other backends
map what they can).
"""

__all__ = ["DEFAULT_PRODUCER_CONFIG", "producerConfig"]

#: What the gateway's guarantees rest on; C{--kafka-option} may override.
DEFAULT_PRODUCER_CONFIG = {
    # Every in-sync replica has the record before it counts as delivered, and
    # retries never duplicate or reorder (per partition).
    "acks": "all",
    "enable.idempotence": True,
    # Never expire a queued record because a timer ran out: while Kafka is
    # down records wait, bounded by the byte budget and back-pressure.
    "message.timeout.ms": 0,
    "linger.ms": 5,
    "delivery.report.only.error": True,
    "socket.keepalive.enable": True,
    # The byte budget, not a message count, bounds the queue.
    "queue.buffering.max.messages": 1000000,
}


def producerConfig(bootstrapServers, options=None, maxMessageSize=None, budget=None):
    """
    Build the producer configuration.

    :param bootstrapServers: C{host:port[,host:port...]}.
    :param options: properties given by the user; they win.
    :param maxMessageSize: the largest payload the listeners accept; the
        producer's own C{message.max.bytes} leaves room for it plus key and
        headers.
    :param budget: the gateway's byte budget; the client's queue is capped
        to it (C{queue.buffering.max.kbytes}).
    :rtype: L{dict}
    """
    config = dict(DEFAULT_PRODUCER_CONFIG)
    config["bootstrap.servers"] = bootstrapServers
    if maxMessageSize is not None:
        config["message.max.bytes"] = max(1000000, maxMessageSize + 65536)
    if budget is not None:
        config["queue.buffering.max.kbytes"] = max(1, budget // 1024)
    config.update(options or {})
    return config
