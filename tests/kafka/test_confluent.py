# -*- test-case-name: tests.kafka.test_confluent -*-
"""
Tests for the confluent-kafka backend's client: its C{produce} is
librdkafka's own, and its errors are translated for the producer service.
"""

from twisted.logger import Logger
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

    def test_produceIsLibrdkafkasCall(self):
        """
        The client's C{produce} is confluent-kafka's C method itself, so the
        hot path costs no Python call between the gateway and librdkafka.
        """
        from confluent_kafka import Producer

        client = ConfluentClient(
            {"bootstrap.servers": "127.0.0.1:1", "log_level": 0}, Events(), Logger()
        )
        self.addCleanup(client.close)
        self.assertEqual(type(client.produce).__name__, "builtin_function_or_method")
        self.assertIsInstance(client.produce.__self__, Producer)
        client.produce("t", b"v", b"k", headers=[("h", b"v")])
        # The queue's length also counts librdkafka's own requests.
        self.assertGreaterEqual(client.pendingCount(), 1)
        client.purge()
