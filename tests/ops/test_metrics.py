# -*- test-case-name: tests.ops.test_metrics -*-
"""
Tests for L{gateway.ops.metrics}: the readiness rules, the Kafka connection
count from the kernel's tables, and the Prometheus collector, on a gateway
built on a L{MemoryReactorClock} with the fake producer backend and fake
brokers answering the health probe.
"""

import dataclasses
import os
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from gateway import __version__
from gateway.kafka.records import Record
from gateway.ops.metrics import (
    FRAME_ERROR_REASONS,
    STORAGE,
    GatewayCollector,
    readiness,
    topicFigures,
)
from gateway.ops.web import statusSnapshot
from gateway.service import GatewayService
from tests.fakes import FakeKafkaError, fakeBackend
from tests.kafka.test_health import FakeNetwork
from tests.support.files import temporaryDirectory
from tests.support.procfs import fakeProc, temporaryProc

BROKER = 9092


class GatewayMixin:
    """
    A gateway on a memory reactor: fake Kafka clients, fake brokers for the
    health probe, and client connections made by hand.
    """

    def makeGateway(self, health=True, listeners=(("lines", "tcp:9000"),), **kwargs):
        """
        :param health: whether the gateway has a health service.
        :param listeners: C{(framing, endpoint)} or C{(framing, endpoint,
            keyword arguments of addListener)} of each listener.
        :return: the L{GatewayService}, not started.
        """
        self.reactor = MemoryReactorClock()
        self.network = FakeNetwork(self.reactor)
        self.backend = fakeBackend()
        kwargs.setdefault("spoolPath", None)
        kwargs.setdefault("deadLetterPath", None)
        self.gateway = GatewayService(
            topic="t",
            reactor=self.reactor,
            backend=self.backend,
            bootstrapServers=f"127.0.0.1:{BROKER}",
            healthInterval=5.0 if health else None,
            **kwargs,
        )
        for framing, endpoint, *extra in listeners:
            self.gateway.addListener(framing, endpoint, **(extra[0] if extra else {}))
        self.clients = 0
        return self.gateway

    def start(self):
        """
        Start the gateway; the fake brokers answer the first probes.
        """
        self.gateway.privilegedStartService()
        self.gateway.startService()
        self.network.settle()
        self.addCleanup(self.gateway.stopService)

    def connect(self, listener=0):
        """
        :return: a client connection's protocol on the C{listener}th listener.
        """
        self.clients += 1
        peer = IPv4Address("TCP", "10.0.0.1", 40000 + self.clients)
        factory = self.gateway.listeners[listener].factory
        protocol = factory.buildProtocol(peer)
        protocol.makeConnection(StringTransport(peerAddress=peer))
        return protocol

    def close(self, protocol):
        """
        The client's connection ends.
        """
        protocol.connectionLost(Failure(ConnectionDone()))

    def elapse(self, seconds, step=0.125):
        """
        Let C{seconds} pass in steps exact in binary (so times add up), with
        producer polls; the fake brokers answer.
        """
        for _ in range(round(seconds / step)):
            self.reactor.advance(step)
            self.network.settle()

    def confirm(self):
        """
        Kafka confirms every record the fake client holds.
        """
        for producer in self.backend.producers:
            producer.confirm()
        self.elapse(0.5)


def scrape(gateway, proc="/proc"):
    """
    :return: the collector's exposition, parsed by C{prometheus_client}'s own
        parser, as C{{(name, labels as a sorted tuple): value}}, and the
        families by name.
    """
    registry = CollectorRegistry()
    registry.register(GatewayCollector(gateway, proc=proc))
    text = generate_latest(registry).decode()
    samples, families = {}, {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples, families


class ReadinessTests(GatewayMixin, SynchronousTestCase):
    """
    L{readiness}: every listener listening, and the health service ready.
    """

    def test_readyWhenListeningAndHealthy(self):
        """
        Every listener bound and the health service C{ready}: ready, with
        the health service's state and reason.
        """
        gateway = self.makeGateway(listeners=[("lines", "tcp:9000"), ("netstring", "tcp:9001")])
        self.start()
        self.assertEqual(readiness(gateway), (True, "ready", gateway.health.reason))
        self.assertIn("1 of 1 brokers answer", gateway.health.reason)

    def test_notStarted(self):
        """
        Before the gateway starts, no listener is bound: not ready, naming
        them.
        """
        gateway = self.makeGateway(listeners=[("lines", "tcp:9000"), ("netstring", "tcp:9001")])
        self.assertEqual(readiness(gateway), (False, "down", "not listening: lines, netstring"))

    def test_oneListenerStopped(self):
        """
        One listener not listening is enough to be not ready.
        """
        gateway = self.makeGateway(listeners=[("lines", "tcp:9000"), ("netstring", "tcp:9001")])
        self.start()
        gateway.listeners[1].stopService()
        self.assertEqual(readiness(gateway), (False, "down", "not listening: netstring"))

    def test_storageUnwritable(self):
        """
        A spool whose directory was removed makes the gateway not ready at
        the producer's next storage check, with state C{storage} and the
        reason naming the path, and C{/metrics} says so too; ready again
        once the directory is back.
        """
        directory = os.path.join(temporaryDirectory(self), "spool")
        os.mkdir(directory)
        spool = os.path.join(directory, "spool.jsonl")
        gateway = self.makeGateway(spoolPath=spool)
        self.start()
        os.rmdir(directory)
        self.elapse(6.0)
        ready, state, reason = readiness(gateway)
        self.assertEqual((ready, state), (False, STORAGE))
        self.assertEqual(
            reason, f"cannot write the spool {spool}: directory {directory} does not exist"
        )
        samples, _ = scrape(gateway)
        self.assertEqual(samples[("gateway_storage_writable", ())], 0)
        self.assertEqual(samples[("gateway_dead_letters_held", ())], 0)
        os.mkdir(directory)
        self.elapse(6.0)
        self.assertEqual(readiness(gateway)[:2], (True, "ready"))

    def test_brokerDown(self):
        """
        The broker's probe connection lost and refused again: C{down},
        with the health service's reason.
        """
        gateway = self.makeGateway()
        self.start()
        self.network.refusing.add(BROKER)
        self.network.cut(BROKER)
        ready, state, reason = readiness(gateway)
        self.assertEqual((ready, state), (False, "down"))
        self.assertIn("no broker answers the probe", reason)

    def test_budgetDegraded(self):
        """
        Bytes held over half the budget make the health service, and so
        readiness, C{degraded} at its next round, before clients are paused.
        """
        gateway = self.makeGateway(budget=10_000)
        self.start()
        client = self.connect()
        # 12 records held: 512 bytes each as the budget counts them (the
        # fake client reports no payload bytes without statistics).
        client.dataReceived(b"x\n" * 12)
        self.elapse(5.0)
        ready, state, reason = readiness(gateway)
        self.assertEqual((ready, state), (False, "degraded"))
        self.assertIn("byte budget 61% used, over 50%", reason)
        self.assertFalse(gateway.router.paused)

    def test_stopping(self):
        """
        A stopping gateway is not ready, whatever the rest says.
        """
        gateway = self.makeGateway()
        self.start()
        gateway.stopService()
        self.assertEqual(
            readiness(gateway),
            (False, "stopping", "the gateway is stopping and draining to Kafka"),
        )

    def test_healthNotRunning(self):
        """
        A health service that is not running cannot vouch for Kafka.
        """
        gateway = self.makeGateway()
        self.start()
        gateway.health.stopService()
        self.assertEqual(
            readiness(gateway),
            (False, "starting", "the Kafka health service is not running"),
        )

    def test_withoutHealthService(self):
        """
        Without a health service, ready once listening with a Kafka client;
        not before the producer started.
        """
        gateway = self.makeGateway(health=False)
        for listener in gateway.listeners:
            listener.privilegedStartService()
        self.assertEqual(readiness(gateway), (False, "down", "the producer has no Kafka client"))
        self.start()
        self.assertEqual(
            readiness(gateway),
            (True, "ready", "the producer has a Kafka client (no health service probes Kafka)"),
        )


class CollectorTests(GatewayMixin, SynchronousTestCase):
    """
    L{GatewayCollector}: the gateway's counters, read at scrape time, in a
    form C{prometheus_client}'s own parser reads back.
    """

    def test_refusedAndTimedOut(self):
        """
        Connections closed at once by a cap are counted per cap, connections
        closed for idleness per reason, and C{/status.json} says the same.
        """
        gateway = self.makeGateway(
            listeners=[
                ("lines", "tcp:9000", {"options": {"max-per-address": "1", "idle-timeout": "5"}}),
            ]
        )
        self.start()
        idle = self.connect()
        refused = self.connect()
        self.assertTrue(refused.transport.disconnecting)
        self.reactor.advance(5)
        self.assertTrue(idle.transport.disconnecting)
        self.close(idle)
        self.close(refused)
        samples, _ = scrape(gateway)
        self.assertEqual(
            samples[
                "gateway_connections_refused_total",
                (("listener", "lines"), ("reason", "max-per-address")),
            ],
            1,
        )
        self.assertEqual(
            samples[
                "gateway_connections_timed_out_total",
                (("listener", "lines"), ("reason", "idle-timeout")),
            ],
            1,
        )
        self.assertEqual(
            samples[
                "gateway_connections_timed_out_total",
                (("listener", "lines"), ("reason", "max-age")),
            ],
            0,
        )
        [listener] = statusSnapshot(GatewayCollector(gateway), 1.0, 2.0)["listeners"]
        self.assertEqual(listener["refused"], {"max-per-address": 1})
        self.assertEqual(listener["closedBy"], {"idle-timeout": 1})

    def test_listenerFigures(self):
        """
        Connections open, accepted, closed and refused, bytes received and
        frame errors per reason, per listener; every built-in reason is
        present at 0 until it happens.
        """
        gateway = self.makeGateway(
            listeners=[
                ("lines", "tcp:9000", {"maxMessageSize": 10}),
                ("length-prefixed", "tcp:9001"),
            ]
        )
        self.start()
        first, second, bad = self.connect(), self.connect(), self.connect()
        first.dataReceived(b"one\ntwo\n")
        second.dataReceived(b"three\n")
        self.close(first)
        bad.dataReceived(b"x" * 20)
        self.close(bad)
        other = self.connect(1)
        other.dataReceived(b"\x00\x00\x00\x02hi\x00")
        self.close(other)
        samples, _ = scrape(gateway)

        def value(name, **labels):
            return samples[name, tuple(sorted(labels.items()))]

        self.assertEqual(
            [
                value(name, listener="lines")
                for name in (
                    "gateway_connections_open",
                    "gateway_connections_accepted_total",
                    "gateway_connections_closed_total",
                    "gateway_received_bytes_total",
                    "gateway_listener_accepting",
                )
            ],
            [1, 3, 2, 8 + 6 + 20, 1],
        )
        for reason in ("max-connections", "max-per-address"):
            self.assertEqual(
                value("gateway_connections_refused_total", listener="lines", reason=reason), 0
            )
        self.assertEqual(value("gateway_received_bytes_total", listener="length-prefixed"), 7)
        self.assertEqual(
            value("gateway_frame_errors_total", listener="lines", reason="too-large"), 1
        )
        self.assertEqual(
            value("gateway_frame_errors_total", listener="length-prefixed", reason="incomplete"), 1
        )
        for reason in FRAME_ERROR_REASONS:
            self.assertIn(
                ("gateway_frame_errors_total", (("listener", "lines"), ("reason", reason))),
                samples,
            )

    def test_producerFigures(self):
        """
        Messages received, produced, delivered, failed, dead-lettered,
        spooled, requeued; recreations; queue depth; the budget; the age of
        the last delivery: the producer's and the router's own figures.
        """
        gateway = self.makeGateway(budget=100_000)
        self.start()
        client = self.connect()
        client.dataReceived(b"a\nbb\nccc\n")
        self.elapse(0.5)
        samples, families = scrape(gateway)
        producer, router = gateway.producer, gateway.router
        self.assertEqual(samples["gateway_messages_received_total", ()], 3)
        self.assertEqual(samples["gateway_producer_queue_depth", ()], 3)
        self.assertEqual(samples["gateway_messages_delivered_total", ()], 0)
        self.assertNotIn("gateway_last_delivery_age_seconds", families)
        self.assertEqual(samples["gateway_budget_held_bytes", ()], router.lastHeldBytes)
        self.assertGreaterEqual(router.lastHeldBytes, 3 * 512)

        self.confirm()
        self.reactor.advance(2.5)
        samples, _ = scrape(gateway)
        expected = {
            "gateway_messages_received_total": producer.accepted,
            "gateway_messages_produced_total": producer.produced,
            "gateway_messages_delivered_total": producer.delivered(),
            "gateway_messages_failed_total": producer.failureReports,
            "gateway_messages_dead_lettered_total": producer.deadLettered,
            "gateway_messages_spooled_total": producer.spooled,
            "gateway_messages_requeued_total": producer.requeued,
            "gateway_producer_recreations_total": producer.recreations,
            "gateway_producer_queue_depth": 0,
            "gateway_budget_bytes": 100_000,
            "gateway_budget_paused": 0,
            "gateway_last_delivery_age_seconds": self.reactor.seconds()
            - producer.lastDeliveryTime,
        }
        self.assertEqual({name: samples[name, ()] for name in expected}, expected)
        self.assertEqual((producer.accepted, producer.delivered()), (3, 3))

    def test_topicFigures(self):
        """
        Messages and bytes per topic add up every connection's stream, open
        or closed; records refused for good count against their topic.
        """
        gateway = self.makeGateway(
            listeners=(
                ("lines", "tcp:9000"),
                ("lines", "tcp:9001", {"name": "other", "options": {"topic": "other"}}),
            )
        )
        self.start()
        self.connect().dataReceived(b"a\nbb\n")
        closed = self.connect()
        closed.dataReceived(b"ccc\n")
        closed.connectionLost(Failure(ConnectionDone()))
        gateway.producer.deadLetters.refuse(Record("missing", None, None, b"x"), "gone")
        samples, _ = scrape(gateway)
        figures = {
            (name, labels[0][1]): value
            for (name, labels), value in samples.items()
            if name.startswith("gateway_topic_")
        }
        self.assertEqual(
            figures,
            {
                ("gateway_topic_messages_total", "t"): 3,
                ("gateway_topic_bytes_total", "t"): 6,
                ("gateway_topic_dead_lettered_total", "t"): 0,
                ("gateway_topic_messages_total", "missing"): 0,
                ("gateway_topic_bytes_total", "missing"): 0,
                ("gateway_topic_dead_lettered_total", "missing"): 1,
            },
        )

    def test_spooledAndRequeuedCountedApart(self):
        """
        A record whose delivery timed out is produced again (requeued); at a
        stop that cannot wait, every unconfirmed record is spooled: the two
        counters report their own figures (1 and 3 here), not each other's.
        """
        spool = Path(temporaryDirectory(self)) / "spool.jsonl"
        gateway = self.makeGateway(spoolPath=str(spool), drainTimeout=0.0)
        self.start()
        self.connect().dataReceived(b"a\nb\nc\n")
        self.elapse(0.5)
        producer = self.backend.producers[0]
        producer.fail(FakeKafkaError("REQUEST_TIMED_OUT", retriable=True))
        self.elapse(0.5)
        self.assertEqual(len(producer.queue), 3)
        stopped = gateway.stopService()
        self.elapse(0.5)
        self.successResultOf(stopped)
        samples, _ = scrape(gateway)
        self.assertEqual(
            (
                samples["gateway_messages_requeued_total", ()],
                samples["gateway_messages_spooled_total", ()],
            ),
            (1, 3),
        )
        self.assertEqual(len(spool.read_text().splitlines()), 3)

    def test_deliveryLatencyAndBytesSent(self):
        """
        The client's latency quantiles are exported per stage and quantile,
        and its bytes sent as a counter.
        """
        gateway = self.makeGateway()
        self.start()
        gateway.producer.latency = lambda: {"queue": {"0.5": 0.002, "0.99": 0.05}}
        gateway.producer.bytesSent = lambda: 4096
        samples, _ = scrape(gateway)
        self.assertEqual(
            samples[
                "gateway_delivery_latency_seconds", (("quantile", "0.99"), ("stage", "queue"))
            ],
            0.05,
        )
        self.assertEqual(
            samples["gateway_delivery_latency_seconds", (("quantile", "0.5"), ("stage", "queue"))],
            0.002,
        )
        self.assertEqual(samples["gateway_kafka_sent_bytes_total", ()], 4096)

    def test_deliveredNeverDecreases(self):
        """
        The delivered counter is the highest figure seen: the producer's own
        dips while librdkafka's queue count holds a protocol request.
        """
        from tests.fakes import FakeMessage

        gateway = self.makeGateway()
        self.start()
        self.connect().dataReceived(b"a\nb\nc\n")
        self.confirm()
        collector = GatewayCollector(gateway)
        self.assertEqual(collector.delivered(), 3)
        self.backend.producers[0].queue.append(FakeMessage("t", None, None, None))
        self.assertEqual(gateway.producer.delivered(), 2)
        self.assertEqual(collector.delivered(), 3)
        self.backend.producers[0].confirm()
        self.connect().dataReceived(b"d\n")
        self.confirm()
        self.assertEqual(collector.delivered(), 4)

    def test_pausedAndFailed(self):
        """
        Clients paused by the budget show as C{gateway_budget_paused 1}; a
        record Kafka refused counts as failed and dead-lettered.
        """
        gateway = self.makeGateway(budget=2_000)
        self.start()
        client = self.connect()
        client.dataReceived(b"z\n" * 4)  # 4 x 512 bytes held: over 80%
        self.elapse(0.5)
        self.assertTrue(gateway.router.paused)
        self.backend.producers[0].fail(FakeKafkaError("MSG_SIZE_TOO_LARGE", "too large"))
        self.elapse(0.5)
        samples, _ = scrape(gateway)
        self.assertEqual(samples["gateway_budget_paused", ()], 1)
        self.assertEqual(samples["gateway_messages_failed_total", ()], 1)
        self.assertEqual(samples["gateway_messages_dead_lettered_total", ()], 1)

    def test_healthFigures(self):
        """
        The health state as one gauge per state (1 for the current), and per
        broker its probe latency, whether it answers, and probes answered
        and failed; C{gateway_ready} follows L{readiness}.
        """
        gateway = self.makeGateway()
        self.start()
        self.elapse(10.0)
        samples, _ = scrape(gateway)
        broker = (("broker", f"127.0.0.1:{BROKER}"),)
        states = {
            state: samples["gateway_kafka_health_state", (("state", state),)]
            for state in ("starting", "ready", "degraded", "down")
        }
        self.assertEqual(states, {"starting": 0, "ready": 1, "degraded": 0, "down": 0})
        self.assertEqual(samples["gateway_kafka_probe_latency_seconds", broker], 0.0)
        self.assertEqual(samples["gateway_kafka_broker_up", broker], 1)
        self.assertEqual(samples["gateway_kafka_probes_ok_total", broker], gateway.health.probesOk)
        self.assertGreaterEqual(gateway.health.probesOk, 3)
        self.assertEqual(samples["gateway_kafka_probes_failed_total", broker], 0)
        self.assertEqual(samples["gateway_ready", ()], 1)

        self.network.refusing.add(BROKER)
        self.network.cut(BROKER)
        self.elapse(5.0)
        samples, _ = scrape(gateway)
        self.assertEqual(samples["gateway_kafka_health_state", (("state", "down"),)], 1)
        self.assertEqual(samples["gateway_kafka_health_state", (("state", "ready"),)], 0)
        self.assertNotIn(("gateway_kafka_probe_latency_seconds", broker), samples)
        self.assertEqual(samples["gateway_kafka_broker_up", broker], 0)
        self.assertEqual(
            samples["gateway_kafka_probes_failed_total", broker], gateway.health.probesFailed
        )
        self.assertGreaterEqual(gateway.health.probesFailed, 1)
        self.assertEqual(samples["gateway_ready", ()], 0)

    def test_withoutHealthService(self):
        """
        Without a health service there are no health-probe metrics, and
        readiness is still exported.
        """
        gateway = self.makeGateway(health=False)
        self.start()
        samples, families = scrape(gateway)
        self.assertFalse([name for name in families if name.startswith("gateway_kafka_probe")])
        self.assertNotIn("gateway_kafka_health_state", families)
        self.assertEqual(samples["gateway_ready", ()], 1)

    def test_buildInfoAndKafkaConnections(self):
        """
        The version is in C{gateway_build_info}; the connections to the
        bootstrap ports come from the kernel's tables, the listeners' own
        ports excluded.
        """
        gateway = self.makeGateway()
        self.start()
        proc = fakeProc(
            temporaryProc(self),
            [
                (50001, BROKER, "01", 1),
                (50002, BROKER, "01", 2),
                (9000, BROKER, "01", 3),
            ],
            ownInodes=[1, 2, 3],
        )
        samples, families = scrape(gateway, proc=proc)
        self.assertEqual(samples["gateway_build_info", (("version", __version__),)], 1)
        self.assertEqual(samples["gateway_kafka_connections", ()], 2)
        _, families = scrape(gateway, proc=temporaryProc(self))
        self.assertNotIn("gateway_kafka_connections", families)


class DocumentationTests(GatewayMixin, SynchronousTestCase):
    """
    C{docs/reference/metrics.md} lists every metric the gateway exports.
    """

    def test_everyMetricDocumented(self):
        """
        Every sample name of a scrape where every metric is present (a
        delivery made, the client's statistics in, Kafka connections
        counted, the process metrics on) is in C{docs/reference/metrics.md}.
        """
        from gateway.ops.web import metricsRegistry

        gateway = self.makeGateway()
        self.start()
        self.connect().dataReceived(b"a\n")
        self.backend.producers[0].reportStatistics()
        self.confirm()
        proc = fakeProc(temporaryProc(self), [(50001, BROKER, "01", 1)], ownInodes=[1])
        registry = metricsRegistry(GatewayCollector(gateway, proc=proc))
        text = generate_latest(registry).decode()
        names = {
            sample.name
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        self.assertIn("gateway_producer_brokers_up", names)
        self.assertIn("gateway_last_delivery_age_seconds", names)
        self.assertIn("gateway_kafka_connections", names)
        docs = (Path(__file__).parents[2] / "docs" / "reference" / "metrics.md").read_text()
        self.assertEqual(sorted(name for name in names if f"`{name}" not in docs), [])


class CollectorValueTests(GatewayMixin, SynchronousTestCase):
    """
    L{GatewayCollector}: figures read from hand-set values, so that each is
    checked against a number, not the attribute it is read from.
    """

    def test_descriptorFigures(self):
        """
        The descriptor guard's capacity and accept errors are exported; not
        at all without a limit or without a guard.
        """
        gateway = self.makeGateway()
        self.start()
        gateway.descriptors.capacity, gateway.descriptors.acceptErrors = 123, 4
        samples, _ = scrape(gateway)
        self.assertEqual(
            (
                samples["gateway_client_connection_capacity", ()],
                samples["gateway_accept_errors_total", ()],
            ),
            (123, 4),
        )
        gateway.descriptors.capacity = None
        _, families = scrape(gateway)
        self.assertNotIn("gateway_client_connection_capacity", families)
        self.assertNotIn("gateway_accept_errors", families)
        gateway.descriptors = None
        _, families = scrape(gateway)
        self.assertNotIn("gateway_accept_errors", families)

    def test_refusedReasonsAndAccepting(self):
        """
        Every cap's refusal count is present (C{descriptors} too), without
        C{tls-handshake} on a listener without TLS; a paused listener is
        not accepting.
        """
        gateway = self.makeGateway()
        self.start()
        stats = gateway.listeners[0].config.stats
        stats.refused["descriptors"] += 2
        gateway.listeners[0].pauseAccepting("descriptors")
        samples, _ = scrape(gateway)
        refused = {
            dict(labels)["reason"]: value
            for (name, labels), value in samples.items()
            if name == "gateway_connections_refused_total"
        }
        self.assertEqual(
            {
                reason: refused[reason]
                for reason in ("max-connections", "max-per-address", "descriptors")
            },
            {"max-connections": 0, "max-per-address": 0, "descriptors": 2},
        )
        self.assertNotIn("tls-handshake", refused)
        self.assertEqual(samples["gateway_listener_accepting", (("listener", "lines"),)], 0)

    def test_producerValues(self):
        """
        Each producer figure is exported under its own name.
        """
        gateway = self.makeGateway()
        self.start()
        producer = gateway.producer
        producer.accepted, producer.produced, producer.failureReports = 11, 12, 13
        producer.deadLetters.count, producer.storage.spooled, producer.requeued = 14, 15, 16
        producer._keeper.recreations = 17
        producer.deadLetters.held.extend([("a", "r"), ("b", "r")])
        self.addCleanup(producer.deadLetters.held.clear)
        producer.brokersUp = lambda: 3
        producer.pending = lambda: 7
        producer.latency = lambda: {"rtt": {"0.5": 0.25}, "queue": {"0.99": 0.5, "0.5": 0.125}}
        samples, families = scrape(gateway)
        self.assertEqual(
            [
                samples[name, ()]
                for name in (
                    "gateway_messages_received_total",
                    "gateway_messages_produced_total",
                    "gateway_messages_failed_total",
                    "gateway_messages_dead_lettered_total",
                    "gateway_messages_spooled_total",
                    "gateway_messages_requeued_total",
                    "gateway_producer_recreations_total",
                    "gateway_dead_letters_held",
                    "gateway_storage_writable",
                    "gateway_producer_brokers_up",
                    "gateway_producer_queue_depth",
                )
            ],
            [11, 12, 13, 14, 15, 16, 17, 2, 1, 3, 7],
        )
        self.assertEqual(
            [s.labels for s in families["gateway_delivery_latency_seconds"].samples],
            [
                {"stage": "queue", "quantile": "0.5"},
                {"stage": "queue", "quantile": "0.99"},
                {"stage": "rtt", "quantile": "0.5"},
            ],
        )
        producer.brokersUp = producer.bytesSent = lambda: None
        _, families = scrape(gateway)
        self.assertNotIn("gateway_producer_brokers_up", families)
        self.assertNotIn("gateway_kafka_sent_bytes", families)

    def test_lastDeliveryAgeNeverNegative(self):
        """
        The age of the last delivery is never below 0, and is 0 at once.
        """
        gateway = self.makeGateway()
        self.start()
        gateway.producer.lastDeliveryTime = self.reactor.seconds() + 1
        samples, _ = scrape(gateway)
        self.assertEqual(samples["gateway_last_delivery_age_seconds", ()], 0.0)
        gateway.producer.lastDeliveryTime = self.reactor.seconds() - 0.5
        samples, _ = scrape(gateway)
        self.assertEqual(samples["gateway_last_delivery_age_seconds", ()], 0.5)

    def test_budgetValues(self):
        """
        The bytes held at the last check, the budget and whether clients
        are paused are the router's.
        """
        gateway = self.makeGateway(budget=5000)
        self.start()
        gateway.router.lastHeldBytes = 1234
        gateway.router.paused = True
        samples, _ = scrape(gateway)
        self.assertEqual(
            [
                samples[name, ()]
                for name in (
                    "gateway_budget_held_bytes",
                    "gateway_budget_bytes",
                    "gateway_budget_paused",
                )
            ],
            [1234, 5000, 1],
        )

    def test_brokerFigures(self):
        """
        Per broker: the probe latency when known, up as 0 or 1 from any
        truth value, and the probe counts.
        """
        gateway = self.makeGateway()
        self.start()
        brokers = {
            "a:1": {"latency": 0.5, "up": "yes", "probesOk": 3, "probesFailed": 1},
            "b:2": {"latency": None, "up": None, "probesOk": 0, "probesFailed": 4},
        }
        gateway.health.status = lambda: {"brokers": brokers}
        samples, _ = scrape(gateway)
        self.assertEqual(
            {
                (name, dict(labels)["broker"]): value
                for (name, labels), value in samples.items()
                if name.startswith(("gateway_kafka_probe", "gateway_kafka_broker"))
            },
            {
                ("gateway_kafka_probe_latency_seconds", "a:1"): 0.5,
                ("gateway_kafka_broker_up", "a:1"): 1,
                ("gateway_kafka_broker_up", "b:2"): 0,
                ("gateway_kafka_probes_ok_total", "a:1"): 3,
                ("gateway_kafka_probes_ok_total", "b:2"): 0,
                ("gateway_kafka_probes_failed_total", "a:1"): 1,
                ("gateway_kafka_probes_failed_total", "b:2"): 4,
            },
        )

    def test_storageProblemsJoined(self):
        """
        Several storage problems are given together, separated by
        semicolons, and C{gateway_storage_writable} is 0.
        """
        gateway = self.makeGateway()
        self.start()
        gateway.producer.storage.problems = ["spool", "dead letters"]
        self.assertEqual(readiness(gateway), (False, STORAGE, "spool; dead letters"))
        samples, _ = scrape(gateway)
        self.assertEqual(samples["gateway_storage_writable", ()], 0)

    def test_tlsHandshakeRefusals(self):
        """
        A TLS listener also reports connections refused for a failed
        handshake.
        """
        gateway = self.makeGateway()
        self.start()
        listener = gateway.listeners[0]
        listener.config = dataclasses.replace(listener.config, tls=object())
        listener.config.stats.refused["tls-handshake"] += 3
        samples, _ = scrape(gateway)
        self.assertEqual(
            samples[
                "gateway_connections_refused_total",
                (("listener", "lines"), ("reason", "tls-handshake")),
            ],
            3,
        )

    def test_frameErrorsAtZero(self):
        """
        A frame error reason that never happened is reported at 0.
        """
        gateway = self.makeGateway()
        self.start()
        samples, _ = scrape(gateway)
        self.assertEqual(
            {
                dict(labels)["reason"]: value
                for (name, labels), value in samples.items()
                if name == "gateway_frame_errors_total"
            },
            dict.fromkeys(FRAME_ERROR_REASONS, 0),
        )

    def test_readsTheRealProc(self):
        """
        By default the Kafka connections are counted from the real C{/proc}
        (this test runs on Linux): a number, not unknown.
        """
        gateway = self.makeGateway()
        self.start()
        self.assertIsInstance(GatewayCollector(gateway).kafkaConnections(), int)


class FigureValuesTests(GatewayMixin, SynchronousTestCase):
    """
    Figures checked value by value and label by label.
    """

    def test_deadLetteredTopicOnly(self):
        """
        A topic with records refused and none sent has exactly its three
        figures.
        """
        gateway = self.makeGateway()
        gateway.producer.deadLetters.refuse(Record("gone", None, None, b"x"), "unknown-topic")
        gateway.producer.deadLetters.refuse(Record("gone", None, None, b"y"), "unknown-topic")
        self.assertEqual(
            topicFigures(gateway), {"gone": {"messages": 0, "bytes": 0, "deadLettered": 2}}
        )

    def test_topicLabel(self):
        """
        The per-topic families are labelled C{topic}.
        """
        gateway = self.makeGateway()
        gateway.producer.deadLetters.refuse(Record("gone", None, None, b"x"), "unknown-topic")
        samples, _ = scrape(gateway)
        self.assertEqual(
            sorted(name for name, labels in samples if labels == (("topic", "gone"),)),
            [
                "gateway_topic_bytes_total",
                "gateway_topic_dead_lettered_total",
                "gateway_topic_messages_total",
            ],
        )

    def test_incompleteCap(self):
        """
        The cap on incomplete frames is exported as set.
        """
        gateway = self.makeGateway(incompleteCap=12345)
        samples, _ = scrape(gateway)
        self.assertEqual(samples["gateway_incomplete_cap_bytes", ()], 12345)
