# -*- test-case-name: tests.test_producer -*-
"""
Tests for L{KafkaProducerService}'s logic, on a fake confluent producer and
a L{Clock}.  The real client is exercised by the integration tests.
"""

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from gateway.kafka import KafkaProducerService, producerConfig
from tests.fakes import FakeKafkaError, fakeProducerFactory


class RecordingObserver:
    def __init__(self):
        self.events = []

    def producerBlocked(self):
        self.events.append("blocked")

    def producerUnblocked(self):
        self.events.append("unblocked")

    def deliveryFailed(self, error, message):
        self.events.append(("failed", error.name(), message.value()))


class ProducerConfigTests(SynchronousTestCase):
    """
    L{producerConfig}.
    """

    def test_safeDefaults(self):
        """
        The producer waits for all in-sync replicas, is idempotent, never
        expires records and reports only failed deliveries.
        """
        config = producerConfig("h:1")
        self.assertEqual(config["bootstrap.servers"], "h:1")
        self.assertEqual(config["acks"], "all")
        self.assertIs(config["enable.idempotence"], True)
        self.assertEqual(config["message.timeout.ms"], 0)
        self.assertIs(config["delivery.report.only.error"], True)

    def test_userOptionsWin(self):
        """
        Options given by the user override the defaults.
        """
        config = producerConfig("h:1", {"linger.ms": "50", "acks": "1"})
        self.assertEqual(config["linger.ms"], "50")
        self.assertEqual(config["acks"], "1")

    def test_roomForLargeMessages(self):
        """
        The producer's own size limit leaves room for the largest message the
        listeners accept plus key and headers.
        """
        self.assertEqual(producerConfig("h:1", maxMessageSize=10)["message.max.bytes"], 1000000)
        self.assertGreater(
            producerConfig("h:1", maxMessageSize=4_000_000)["message.max.bytes"],
            4_000_000,
        )


class KafkaProducerServiceTests(SynchronousTestCase):
    """
    L{KafkaProducerService} on a fake producer.
    """

    def setUp(self):
        self.clock = Clock()
        self.observer = RecordingObserver()

    def makeService(self, capacity=1000, drainTimeout=30.0):
        service = KafkaProducerService(
            producerConfig("h:1"),
            clock=self.clock,
            producerFactory=fakeProducerFactory(capacity),
            pollInterval=0.1,
            drainTimeout=drainTimeout,
        )
        service.observer = self.observer
        service.privilegedStartService()
        service.startService()
        return service

    def test_oneProducerWithCallbacks(self):
        """
        Starting creates one producer, whose configuration routes delivery
        reports and errors back to the service.
        """
        service = self.makeService()
        config = service._producer.config
        self.assertTrue(callable(config["on_delivery"]))
        self.assertTrue(callable(config["error_cb"]))
        service.startService()
        self.assertEqual(service._producer.config["bootstrap.servers"], "h:1")

    def test_produceHandsRecordToProducer(self):
        """
        C{produce} passes topic, value, key and headers to the producer and
        counts the record.
        """
        service = self.makeService()
        service.produce("t", b"k", [("h", b"v")], b"payload")
        [message] = service._producer.produced
        self.assertEqual(
            (message.topic(), message.value(), message.key(), message.headers()),
            ("t", b"payload", b"k", [("h", b"v")]),
        )
        self.assertEqual(service.produced, 1)

    def test_pollOnTimer(self):
        """
        The producer is polled on the reactor's clock, not per message.
        """
        service = self.makeService()
        for i in range(10):
            service.produce("t", None, None, b"m")
        self.assertEqual(service._producer.polls, 0)
        self.clock.advance(0.1)
        self.assertEqual(service._producer.polls, 1)

    def test_fullQueueBacklogsInOrder(self):
        """
        When the producer's queue is full, records wait in order in a backlog
        and the observer is told to block clients; once the queue has room
        the backlog goes first and the observer is told to unblock.
        """
        service = self.makeService(capacity=2)
        for i in range(5):
            service.produce("t", None, None, b"%d" % i)
        self.assertEqual(set(self.observer.events), {"blocked"})
        self.assertEqual(service.pending(), 5)
        service._producer.confirm()
        self.clock.advance(0.1)
        service._producer.confirm()
        self.clock.advance(0.1)
        self.assertEqual(self.observer.events[-1], "unblocked")
        self.assertEqual(set(self.observer.events[:-1]), {"blocked"})
        values = [m.value() for m in service._producer.produced]
        self.assertEqual(values, [b"0", b"1", b"2", b"3", b"4"])
        self.assertEqual(service.produced, 5)

    def test_everyRecordIntoBacklogBlocks(self):
        """
        Every record that joins the backlog tells the observer to block, so
        a client resumed too early is paused again rather than filling the
        backlog.
        """
        service = self.makeService(capacity=1)
        for i in range(4):
            service.produce("t", None, None, b"%d" % i)
        self.assertEqual(self.observer.events, ["blocked"] * 3)

    def test_rejectedRecordCountedAndLogged(self):
        """
        A record librdkafka refuses at once (too large) is counted and logged
        and does not stop the next one.
        """
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        service = self.makeService()
        service.produce("t", None, None, b"x" * 200_000)
        service.produce("t", None, None, b"ok")
        self.assertEqual(service.rejected, 1)
        self.assertEqual(service.produced, 1)
        self.assertTrue(any(e.get("size") == 200_000 for e in events))

    def test_deliveryFailureReachesObserver(self):
        """
        A failed delivery report, served by the timer's poll, reaches the
        observer and is counted.
        """
        service = self.makeService()
        service.produce("t", None, None, b"doomed")
        service._producer.fail(FakeKafkaError("TOPIC_AUTHORIZATION_FAILED", "no"))
        self.assertEqual(self.observer.events, [])
        self.clock.advance(0.1)
        self.assertEqual(
            self.observer.events,
            [("failed", "TOPIC_AUTHORIZATION_FAILED", b"doomed")],
        )
        self.assertEqual(service.failed, 1)

    def test_stopDrains(self):
        """
        Stopping waits, polling, until the producer confirmed everything,
        without blocking, then fires with nothing left.
        """
        service = self.makeService()
        service.produce("t", None, None, b"a")
        d = service.stopService()
        self.assertNoResult(d)
        service._producer.confirm()
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(d), 0)

    def test_stopGivesUpAfterDrainTimeout(self):
        """
        If Kafka does not confirm within the drain timeout, stopping ends
        anyway and logs how many records were left.
        """
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        service = self.makeService(drainTimeout=1.0)
        service.produce("t", None, None, b"a")
        service.produce("t", None, None, b"b")
        d = service.stopService()
        self.clock.pump([0.1] * 11)
        self.assertEqual(self.successResultOf(d), 2)
        self.assertTrue(any(e.get("remaining") == 2 for e in events))

    def test_repeatedKafkaErrorLoggedOnce(self):
        """
        The same librdkafka error repeated on every reconnect attempt is
        logged once per 30 seconds, a different one at once.
        """
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        service = self.makeService()
        down = FakeKafkaError("_TRANSPORT", "connection refused")
        for i in range(5):
            service._kafkaError(down)
        service._kafkaError(FakeKafkaError("_ALL_BROKERS_DOWN", "1/1 brokers are down"))
        self.clock.advance(31)
        service._kafkaError(down)
        codes = [e["code"] for e in events if "code" in e]
        self.assertEqual(codes, ["_TRANSPORT", "_ALL_BROKERS_DOWN", "_TRANSPORT"])

    def test_badConfigurationFailsStart(self):
        """
        A configuration the client refuses stops the start with an error that
        says so, before any listener could bind.
        """

        def refuse(config):
            raise RuntimeError('No such configuration property: "lingr.ms"')

        service = KafkaProducerService(
            producerConfig("h:1"), clock=self.clock, producerFactory=refuse
        )
        error = self.assertRaises(ValueError, service.privilegedStartService)
        self.assertIn("lingr.ms", str(error))
