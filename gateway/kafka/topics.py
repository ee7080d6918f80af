# -*- test-case-name: tests.kafka.test_topics -*-
"""
Which topics a cluster has, and whether it creates missing ones: for the
start-up check that reports listeners whose fixed topic does not exist
(at run time such records are dead-lettered, see docs/routing.md).

It asks the cluster once, with confluent-kafka's admin client and the
producer's connection and security settings; nothing here runs per message.
"""

__all__ = ["clusterTopics", "missingTopics"]

#: Producer properties that say how to reach and authenticate to the
#: cluster, the only ones the admin client is given.
_CONNECTION_PREFIXES = ("bootstrap.", "security.", "sasl.", "ssl.", "socket.", "client.")


def clusterTopics(config, timeout=10.0):
    """
    Ask the cluster for its topics and whether it creates missing ones.

    :param config: the producer configuration (librdkafka's names).
    :return: C{(topics, autoCreate)}: the set of topic names, and the
        brokers' C{auto.create.topics.enable} (L{None} when it cannot be
        read, e.g. without the right to describe the broker's settings).
    :raises Exception: confluent-kafka's, when the cluster does not answer.
    """
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({k: v for k, v in config.items() if k.startswith(_CONNECTION_PREFIXES)})
    metadata = admin.list_topics(timeout=timeout)
    topics = {name for name, topic in metadata.topics.items() if topic.error is None}
    autoCreate = None
    try:
        broker = str(next(iter(metadata.brokers)))
        resource = ConfigResource(ConfigResource.Type.BROKER, broker)
        found = admin.describe_configs([resource], request_timeout=timeout)[resource].result(
            timeout
        )
        entry = found.get("auto.create.topics.enable")
        if entry is not None:
            autoCreate = entry.value == "true"
    except Exception:
        autoCreate = None
    return topics, autoCreate


def missingTopics(config, wanted, timeout=10.0):
    """
    The topics of C{wanted} the cluster does not have, unless it creates
    them (a producer whose C{allow.auto.create.topics} is C{false} never
    has them created).

    :param wanted: topic names.
    :return: the missing names, sorted (empty when the cluster creates
        them, or may: its setting could not be read).
    """
    topics, autoCreate = clusterTopics(config, timeout)
    producerCreates = str(config.get("allow.auto.create.topics", "true")).lower() == "true"
    if autoCreate is not False and producerCreates:
        return []
    return sorted(set(wanted) - topics)
