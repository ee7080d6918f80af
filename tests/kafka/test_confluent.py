# -*- test-case-name: tests.kafka.test_confluent -*-
"""
Tests for the confluent-kafka backend's client: its C{produce} is
librdkafka's own, and its errors are translated for the producer service.
"""

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import Logger, LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from gateway.interfaces import IProducerClient
from gateway.kafka.client import NO_CLIENT
from gateway.kafka.confluent import ConfluentClient, deliveryError
from tests.fakes import FakeKafkaError, FakeProducer


class Events:
    def __init__(self):
        self.failed, self.errors = [], []

    def deliveryFailed(self, record, error):
        self.failed.append((record, error))

    def clientError(self, error):
        self.errors.append(error)


class ConfluentClientTests(SynchronousTestCase):
    """
    L{ConfluentClient} on a L{FakeProducer}.
    """

    def setUp(self):
        self.events = Events()
        self.client = ConfluentClient(
            {"bootstrap.servers": "h:1"},
            self.events,
            Logger(),
            producerFactory=lambda config: FakeProducer(config),
        )
        self.producer = self.client._producer

    def test_interface(self):
        """
        The client is an L{IProducerClient}.
        """
        verifyObject(IProducerClient, self.client)

    def test_produceIsTheProducers(self):
        """
        The client's C{produce} is the producer's own, bound once, taking
        the arguments in L{IProducerClient.produce}'s order.
        """
        self.assertEqual(self.client.produce, self.producer.produce)
        self.client.produce("t", b"value", b"key", headers=[("h", b"v")])
        [message] = self.producer.produced
        self.assertEqual(
            (message.topic(), message.value(), message.key(), message.headers()),
            ("t", b"value", b"key", [("h", b"v")]),
        )

    def test_closedTakesNothing(self):
        """
        Once closed, the client's C{produce} is L{NO_CLIENT}'s: it takes
        nothing and raises L{BufferError}, and the producer is released.
        """
        self.client.close()
        self.assertEqual(self.client.produce, NO_CLIENT.produce)
        self.assertRaises(BufferError, self.client.produce, "t", b"v")

    def test_failedDeliveryReported(self):
        """
        A failed delivery is reported with the record and the translated
        error.
        """
        self.client.produce("t", b"v", b"k")
        self.producer.fail(FakeKafkaError("TOPIC_AUTHORIZATION_FAILED", "denied"))
        self.client.poll()
        [(record, error)] = self.events.failed
        self.assertEqual((record.topic, record.key, record.value), ("t", b"k", b"v"))
        self.assertEqual((error.code, error.text), ("TOPIC_AUTHORIZATION_FAILED", "denied"))

    def test_deliveryErrorTranslation(self):
        """
        Purges, timeouts, fatal errors and lost brokers are told apart.
        """
        purged = deliveryError(FakeKafkaError("_PURGE_INFLIGHT"))
        timedOut = deliveryError(FakeKafkaError("_MSG_TIMED_OUT"))
        fatal = deliveryError(FakeKafkaError("_FENCED", fatal=True))
        down = deliveryError(FakeKafkaError("_ALL_BROKERS_DOWN"))
        self.assertEqual(
            [
                (e.purged, e.retriable, e.fatal, e.allBrokersDown)
                for e in (purged, timedOut, fatal, down)
            ],
            [
                (True, False, False, False),
                (False, True, False, False),
                (False, False, True, False),
                (False, False, False, True),
            ],
        )


class RealProducerTests(SynchronousTestCase):
    """
    L{ConfluentClient} on a real C{confluent_kafka.Producer} pointed where
    nothing listens: no broker is needed to check the hot path's shape.
    """

    def client(self, events=None, **config):
        client = ConfluentClient(
            {"bootstrap.servers": "127.0.0.1:1", "log_level": 0, **config},
            events or Events(),
            Logger(),
        )
        self.addCleanup(client.close)
        return client

    def test_produceIsLibrdkafkasCall(self):
        """
        The client's C{produce} is a C method, confluent-kafka's own or the
        C extension's, so the hot path costs no Python call between the
        gateway and librdkafka.
        """
        from confluent_kafka import Producer

        from gateway.compat import _confluent

        client = self.client()
        self.assertEqual(type(client.produce).__name__, "builtin_function_or_method")
        expected = Producer if client._fast is None else _confluent.FastProducer
        self.assertIsInstance(client.produce.__self__, expected)
        client.produce("t", b"v", b"k", headers=[("h", b"v")])
        # The queue's length also counts librdkafka's own requests.
        self.assertGreaterEqual(client.pendingCount(), 1)
        client.purge()

    def test_failuresInOrder(self):
        """
        Records taken one by one and a read at a time fail back to the
        gateway in the order they were taken, with their headers, however
        they were taken (so that a purge requeues them in order); each
        once.
        """
        events = Events()
        client = self.client(events)
        headers = [("h", b"v")]
        client.produce("t", b"1", b"k", headers=headers)
        self.assertEqual(client.produceMany("t", [b"2", b"3"], b"k", headers), 2)
        client.produce("t", b"4", None, headers=None)
        client.purge()
        client.poll()
        self.assertEqual(
            [(r.topic, r.key, r.value, list(r.headers)) for r, _ in events.failed],
            [
                ("t", b"k", b"1", headers),
                ("t", b"k", b"2", headers),
                ("t", b"k", b"3", headers),
                ("t", None, b"4", []),
            ],
        )
        self.assertEqual({(e.code, e.purged) for _, e in events.failed}, {("_PURGE_QUEUE", True)})

    def test_produceRaisesAsConfluentDoes(self):
        """
        A full queue raises L{BufferError}; a record over
        C{message.max.bytes} raises C{KafkaException} naming the error (the
        service dead-letters it); neither is reported again as failed.
        """
        from confluent_kafka import KafkaException

        events = Events()
        client = self.client(events, **{"queue.buffering.max.messages": 1})
        client.produce("t", b"1")
        self.assertRaises(BufferError, client.produce, "t", b"2")
        big = self.client(events, **{"message.max.bytes": 1000})
        with self.assertRaises(KafkaException) as raised:
            big.produce("t", b"x" * 2000)
        self.assertEqual(raised.exception.args[0].name(), "MSG_SIZE_TOO_LARGE")
        client.purge()
        big.purge()
        self.assertEqual([r.value for r, _ in events.failed], [b"1"])

    def test_oddArgumentsGoToConfluent(self):
        """
        What the C extension does not take (a text value) confluent-kafka's
        C{produce} takes or refuses, as without the extension.
        """
        events = Events()
        client = self.client(events)
        client.produce("t", "text", None)
        self.assertRaises(TypeError, client.produce, "t", 1)
        client.purge()
        self.assertEqual([r.value for r, _ in events.failed], [b"text"])

    def test_pluginRefused(self):
        """
        When librdkafka refuses the plugin, the producer is created without
        it and the pure-Python path runs, saying why.
        """
        from gateway.kafka import confluent

        self.patch(confluent, "plugin", lambda: ("/nonexistent/plugin.so", None))
        client = self.client()
        self.assertTrue(
            client.producePath.startswith("Python (librdkafka refused the plugin ("),
            client.producePath,
        )
        self.assertIn("/nonexistent/plugin.so", client.producePath)
        self.assertEqual(client.produceTrackedMany("t", [b"x"], None, None, "s", object(), 1), 0)


class Tracker:
    """
    An ack-mode stream as the client sees it: ranges of confirmed numbers.
    """

    def __init__(self):
        self.settled = []

    def settleRange(self, first, last):
        self.settled.append((first, last))


class TrackedTests(SynchronousTestCase):
    """
    The C extension's tracked records (ack mode), handed over by L{poll}.
    """

    def client(self, events, **config):
        client = ConfluentClient(
            {"bootstrap.servers": "127.0.0.1:1", "log_level": 0, **config}, events, Logger()
        )
        self.addCleanup(lambda: client._producer is None or client.close())
        if client._fast is None:
            from tests.compat.test_confluent_kafka import needExtension

            needExtension()
        return client

    def test_failedWithReceipt(self):
        """
        A tracked record that fails is reported as a record carrying a
        L{Receipt} of its tracker and number, with its headers (the number's
        included), in order; a closed client takes none.
        """
        events, tracker = Events(), Tracker()
        client = self.client(events)
        self.assertEqual(
            client.produceTrackedMany("t", [b"a", b"b"], b"k", [("h", b"v")], "seq", tracker, 5),
            2,
        )
        client.purge()
        self.assertEqual(
            [
                (r.topic, r.key, r.value, r.headers, r.receipt.tracker, r.receipt.seq, e.purged)
                for r, e in events.failed
            ],
            [
                ("t", b"k", b"a", [("h", b"v"), ("seq", b"5")], tracker, 5, True),
                ("t", b"k", b"b", [("h", b"v"), ("seq", b"6")], tracker, 6, True),
            ],
        )
        self.assertEqual(tracker.settled, [])
        client.close()
        self.assertEqual(client.produceTrackedMany("t", [b"c"], b"k", None, "seq", tracker, 7), 0)

    def test_confirmedRuns(self):
        """
        Confirmed runs go to the tracker's C{settleRange}, in the order
        reported; outcomes that could not be kept are logged, once per poll.
        """
        events = Events()
        client = self.client(events)
        a, b = Tracker(), Tracker()

        class Fast:
            def failures(self):
                return [], 0

            def tracked(self):
                return [(a, 1, 3, None), (b, 9, 9, None), (a, 4, 4, None)], 2

        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        real, client._fast = client._fast, Fast()
        self.addCleanup(setattr, client, "_fast", real)
        client.poll()
        self.assertEqual((a.settled, b.settled, events.failed), ([(1, 3), (4, 4)], [(9, 9)], []))
        self.assertEqual(
            [formatEvent(e) for e in logged if e.get("log_level") is LogLevel.critical],
            [
                "2 acknowledged-mode outcomes could not be kept (out of memory): "
                "those records are never acknowledged"
            ],
        )
