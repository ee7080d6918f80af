# -*- test-case-name: tests.ops.test_metrics -*-
"""
What a gateway says about itself: whether it is ready, and its figures in
Prometheus form.

Nothing here runs per message.  The listeners, the router, the producer and
the health service already keep their counters; L{GatewayCollector} reads
them when Prometheus scrapes, and L{readiness} decides from them when asked.
Every metric is described in C{docs/reference/metrics.md} (generated from this collector).
"""

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.registry import Collector

from gateway import __version__
from gateway.framing import INCOMPLETE, MALFORMED_FRAME, MALFORMED_LENGTH, TOO_LARGE
from gateway.kafka.health import DEGRADED, DOWN, READY, STARTING
from gateway.ops.kafkaconnections import KafkaConnectionCounter, gatewayKafkaConnections
from gateway.server.descriptors import DESCRIPTORS
from gateway.server.handshake import TLS_HANDSHAKE
from gateway.server.incomplete import INCOMPLETE_CAP
from gateway.server.policy import (
    FRAME_TIMEOUT,
    IDLE_TIMEOUT,
    MAX_AGE,
    MAX_CONNECTIONS,
    MAX_PER_ADDRESS,
    NOT_ALLOWED,
)

__all__ = [
    "FRAME_ERROR_REASONS",
    "GatewayCollector",
    "HEALTH_STATES",
    "STOPPING",
    "STORAGE",
    "readiness",
    "topicFigures",
]

#: The health service's states, in the order the state gauge lists them.
HEALTH_STATES = (STARTING, READY, DEGRADED, DOWN)

#: The gateway's state once it has begun to stop (it drains to Kafka).
STOPPING = "stopping"

#: The gateway's state while the spool or the dead-letter file cannot be
#: written: records it should keep would be lost.
STORAGE = "storage"

#: Frame error reasons every listener reports, at 0 until they happen.
FRAME_ERROR_REASONS = (TOO_LARGE, MALFORMED_LENGTH, MALFORMED_FRAME, INCOMPLETE)


def readiness(gateway):
    """
    Decide whether the gateway should receive traffic, and say why.

    The rules, in order: a gateway that is stopping is not ready, nor one
    that cannot write its spool or dead-letter file; every listener must
    be listening; then the health service decides (its state
    and reason are reported as they are).  Without a health service the
    gateway is ready when the producer has a Kafka client.

    :param gateway: a L{gateway.service.GatewayService}.
    :return: C{(ready, state, reason)}: a L{bool} and two L{str}s.
    """
    if gateway.router.stopped:
        return False, STOPPING, "the gateway is stopping and draining to Kafka"
    problems = gateway.producer.storageProblems
    if problems:
        return False, STORAGE, "; ".join(problems)
    idle = [listener.name for listener in gateway.listeners if listener.port is None]
    if idle:
        return False, DOWN, "not listening: " + ", ".join(idle)
    health = gateway.health
    if health is not None:
        if not health.running:
            return False, STARTING, "the Kafka health service is not running"
        return health.isReady(), health.state, health.reason
    if not gateway.producer.hasClient():
        return False, DOWN, "the producer has no Kafka client"
    return True, READY, "the producer has a Kafka client (no health service probes Kafka)"


def topicFigures(gateway):
    """
    Messages and payload bytes sent to each topic, and records dead-lettered
    for it, added up now from the connections' streams and the dead letters.

    :return: topic to C{{"messages", "bytes", "deadLettered"}}, by name.
    """
    figures = {}
    for topic, (messages, size) in gateway.router.topicCounts().items():
        figures[topic] = {"messages": messages, "bytes": size, "deadLettered": 0}
    for topic, count in gateway.producer.deadLetters.byTopic.items():
        figures.setdefault(topic, {"messages": 0, "bytes": 0})["deadLettered"] = count
    return dict(sorted(figures.items()))


class GatewayCollector(Collector):
    """
    A Prometheus collector that reads a gateway's counters at scrape time.

    :ivar gateway: the L{gateway.service.GatewayService}.
    """

    def __init__(self, gateway, proc="/proc"):
        """
        :param gateway: the gateway whose figures are exported.
        :param proc: where procfs is mounted (for the Kafka connection count).
        """
        self.gateway = gateway
        self._connections = KafkaConnectionCounter(proc)
        self._delivered = 0

    def delivered(self):
        """
        Records Kafka confirmed, as a counter: the highest of the producer's
        figures read so far.  The producer computes it as produced minus
        failed minus the client's queue, and librdkafka's queue count also
        holds protocol requests for a moment, so a raw reading can dip by
        one or two; a counter must not go down.
        """
        self._delivered = max(self._delivered, self.gateway.producer.delivered())
        return self._delivered

    def kafkaConnections(self):
        """
        :return: L{gatewayKafkaConnections} of the gateway.
        """
        return gatewayKafkaConnections(self.gateway, self._connections)

    def collect(self):
        """
        Yield every metric family, read now.
        """
        gateway = self.gateway
        yield InfoMetricFamily(
            "gateway_build", "The gateway's version.", value={"version": __version__}
        )
        yield from self._listeners(gateway.listeners)
        yield from self._descriptors(gateway.descriptors)
        yield from self._producer(gateway.producer, gateway.router)
        yield from self._topics(gateway)
        yield from self._health(gateway)

    def _listeners(self, listeners):
        def family(kind, name, doc, labels=("listener",)):
            return kind(name, doc, labels=list(labels))

        open_ = family(
            GaugeMetricFamily, "gateway_connections_open", "Client connections open now."
        )
        accepted = family(
            CounterMetricFamily, "gateway_connections_accepted", "Client connections accepted."
        )
        closed = family(
            CounterMetricFamily,
            "gateway_connections_closed",
            "Client connections closed, for any reason.",
        )
        refused = family(
            CounterMetricFamily,
            "gateway_connections_refused",
            "Client connections closed at once by a connection cap or the allow-list, by reason.",
            ("listener", "reason"),
        )
        closedBy = family(
            CounterMetricFamily,
            "gateway_connections_timed_out",
            "Client connections the gateway closed for idleness, age, a frame "
            "not completed in time, or the cap on incomplete frames, by reason.",
            ("listener", "reason"),
        )
        accepting = family(
            GaugeMetricFamily,
            "gateway_listener_accepting",
            "1 while the listener accepts connections, 0 while "
            "it is paused (budget, descriptors, accept errors).",
        )
        received = family(
            CounterMetricFamily, "gateway_received_bytes", "Bytes read from clients."
        )
        errors = family(
            CounterMetricFamily,
            "gateway_frame_errors",
            "Connections closed for bad input, by reason.",
            ("listener", "reason"),
        )
        for listener in listeners:
            name = listener.name
            stats = listener.config.stats
            open_.add_metric([name], stats.open)
            accepted.add_metric([name], stats.accepted)
            closed.add_metric([name], stats.closed)
            for reason in (MAX_CONNECTIONS, MAX_PER_ADDRESS, DESCRIPTORS, NOT_ALLOWED):
                refused.add_metric([name, reason], stats.refused[reason])
            if getattr(listener.config, "tls", None) is not None:
                refused.add_metric([name, TLS_HANDSHAKE], stats.refused[TLS_HANDSHAKE])
            for reason in (IDLE_TIMEOUT, MAX_AGE, FRAME_TIMEOUT, INCOMPLETE_CAP):
                closedBy.add_metric([name, reason], stats.closedBy[reason])
            accepting.add_metric([name], int(listener.accepting))
            received.add_metric([name], stats.bytesReceived)
            counts = dict.fromkeys(FRAME_ERROR_REASONS, 0)
            counts.update(stats.frameErrors)
            for reason, count in sorted(counts.items()):
                errors.add_metric([name, reason], count)
        return open_, accepted, closed, refused, closedBy, accepting, received, errors

    def _descriptors(self, guard):
        if guard is None or guard.capacity is None:
            return
        yield GaugeMetricFamily(
            "gateway_client_connection_capacity",
            "Client connections that fit in the descriptor limit, less the "
            "reserve; listeners stop accepting there.",
            value=guard.capacity,
        )
        yield CounterMetricFamily(
            "gateway_accept_errors",
            "Accepts that failed for lack of descriptors or memory "
            "(EMFILE, ENFILE, ENOBUFS, ENOMEM).",
            value=guard.acceptErrors,
        )

    def _topics(self, gateway):
        families = {
            "messages": CounterMetricFamily(
                "gateway_topic_messages", "Messages sent to each topic.", labels=["topic"]
            ),
            "bytes": CounterMetricFamily(
                "gateway_topic_bytes", "Payload bytes sent to each topic.", labels=["topic"]
            ),
            "deadLettered": CounterMetricFamily(
                "gateway_topic_dead_lettered",
                "Records of each topic refused for good (e.g. the topic does not exist).",
                labels=["topic"],
            ),
        }
        for topic, figures in topicFigures(gateway).items():
            for name, family in families.items():
                family.add_metric([topic], figures[name])
        yield from families.values()

    def _producer(self, producer, router):
        def counter(name, doc, value):
            return CounterMetricFamily(name, doc, value=value)

        def gauge(name, doc, value):
            return GaugeMetricFamily(name, doc, value=value)

        yield counter(
            "gateway_messages_received",
            "Messages handed to the producer (and records loaded from the spool).",
            producer.accepted,
        )
        yield counter(
            "gateway_messages_produced",
            "Records the Kafka client took (again after a requeue).",
            producer.produced,
        )
        yield counter("gateway_messages_delivered", "Records Kafka confirmed.", self.delivered())
        yield counter(
            "gateway_messages_failed",
            "Failed delivery reports (requeued or dead-lettered after).",
            producer.failureReports,
        )
        yield counter(
            "gateway_messages_dead_lettered",
            "Records Kafka refused for good.",
            producer.deadLettered,
        )
        yield counter(
            "gateway_messages_spooled", "Records written to the spool at stop.", producer.spooled
        )
        yield gauge(
            "gateway_dead_letters_held",
            "Refused records kept in memory: the dead-letter file could not be written.",
            len(producer.deadLetters.held),
        )
        yield gauge(
            "gateway_storage_writable",
            "1 when the spool and the dead-letter file could be written at the last check.",
            int(not producer.storageProblems),
        )
        yield counter(
            "gateway_messages_requeued",
            "Records produced again after a failure or a recreation.",
            producer.requeued,
        )
        yield counter(
            "gateway_producer_recreations",
            "Kafka clients recreated after every broker stayed down.",
            producer.recreations,
        )
        yield gauge(
            "gateway_producer_queue_depth",
            "Records accepted and not yet confirmed.",
            producer.pending(),
        )
        bytesSent = producer.bytesSent()
        if bytesSent is not None:
            yield counter(
                "gateway_kafka_sent_bytes",
                "Bytes sent to the Kafka brokers (requests included).",
                bytesSent,
            )
        brokersUp = producer.brokersUp()
        if brokersUp is not None:
            yield gauge(
                "gateway_producer_brokers_up",
                "Brokers the Kafka client is connected to.",
                brokersUp,
            )
        latency = GaugeMetricFamily(
            "gateway_delivery_latency_seconds",
            "Latency quantiles over the client's last statistics window, by stage: "
            "queue (produce() until sent) and rtt (broker round trip).",
            labels=["stage", "quantile"],
        )
        for stage, quantiles in sorted(producer.latency().items()):
            for quantile, seconds in sorted(quantiles.items()):
                latency.add_metric([stage, quantile], seconds)
        yield latency
        if producer.lastDeliveryTime is not None:
            yield gauge(
                "gateway_last_delivery_age_seconds",
                "Seconds since a delivery was last seen confirmed.",
                max(0.0, producer.clock.seconds() - producer.lastDeliveryTime),
            )
        yield gauge(
            "gateway_budget_held_bytes",
            "Bytes accepted and not confirmed, at the last budget check.",
            router.lastHeldBytes,
        )
        yield gauge("gateway_budget_bytes", "The byte budget.", router.budget)
        yield gauge(
            "gateway_incomplete_bytes",
            "Bytes of incomplete frames held by client connections, at the "
            "last budget check (not in the budget; capped on their own).",
            router.incomplete.lastBytes,
        )
        yield gauge(
            "gateway_incomplete_cap_bytes",
            "The cap on bytes of incomplete frames (--incomplete-cap).",
            router.incomplete.cap,
        )
        yield gauge(
            "gateway_budget_paused",
            "1 while clients are paused (back-pressure), else 0.",
            int(router.paused),
        )

    def _health(self, gateway):
        ready, _, _ = readiness(gateway)
        yield GaugeMetricFamily(
            "gateway_ready", "1 when /readyz answers 200, else 0.", value=int(ready)
        )
        connections = self.kafkaConnections()
        if connections is not None:
            yield GaugeMetricFamily(
                "gateway_kafka_connections",
                "Established TCP connections from this process to the Kafka "
                "bootstrap ports (producer and health probes).",
                value=connections,
            )
        health = gateway.health
        if health is None:
            return
        state = GaugeMetricFamily(
            "gateway_kafka_health_state",
            "The Kafka health service's state: 1 for the current one, 0 for the others.",
            labels=["state"],
        )
        for name in HEALTH_STATES:
            state.add_metric([name], int(health.state == name))
        yield state
        latency = GaugeMetricFamily(
            "gateway_kafka_probe_latency_seconds",
            "Round-trip time of the broker's last answered probe (absent while down).",
            labels=["broker"],
        )
        up = GaugeMetricFamily(
            "gateway_kafka_broker_up",
            "1 when the broker's last probe was answered.",
            labels=["broker"],
        )
        ok = CounterMetricFamily(
            "gateway_kafka_probes_ok", "Health probes answered.", labels=["broker"]
        )
        failed = CounterMetricFamily(
            "gateway_kafka_probes_failed",
            "Failed health checks: timeouts, errors, lost or missing connections.",
            labels=["broker"],
        )
        for name, broker in health.status()["brokers"].items():
            if broker["latency"] is not None:
                latency.add_metric([name], broker["latency"])
            up.add_metric([name], int(bool(broker["up"])))
            ok.add_metric([name], broker["probesOk"])
            failed.add_metric([name], broker["probesFailed"])
        yield from (latency, up, ok, failed)
