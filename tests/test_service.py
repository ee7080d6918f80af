# -*- test-case-name: tests.test_service -*-
"""
Tests for L{GatewayService}, the public assembly API, on a memory reactor.
"""

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from gateway.kafka import KafkaProducerService
from gateway.listener import ListenerService
from gateway.registry import FramingError
from gateway.service import GatewayService
from tests.fakes import fakeProducerFactory


class GatewayServiceTests(SynchronousTestCase):
    """
    L{GatewayService}.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()

    def makeGateway(self, **kwargs):
        return GatewayService(
            topic="t", reactor=self.reactor,
            producerFactory=fakeProducerFactory(), **kwargs
        )

    def test_producerFirstListenersAfter(self):
        """
        The producer is the first child, so it starts before and stops after
        the listeners.
        """
        gateway = self.makeGateway()
        gateway.addListener("lines", "tcp:9000")
        gateway.addListener("length-prefixed", "tcp:9001")
        children = list(gateway)
        self.assertIsInstance(children[0], KafkaProducerService)
        self.assertEqual([type(c) for c in children[1:]], [ListenerService] * 2)

    def test_startBindsEveryListener(self):
        """
        Starting binds every listener on its endpoint, all sharing the one
        producer through one router.
        """
        gateway = self.makeGateway()
        gateway.addListener("lines", "tcp:9000:interface=127.0.0.1")
        gateway.addListener("length-prefixed", "tcp:9001")
        gateway.privilegedStartService()
        gateway.startService()
        ports = [(port, interface) for port, _, _, interface in self.reactor.tcpServers]
        self.assertEqual(ports, [(9000, "127.0.0.1"), (9001, "")])
        factories = [f for _, f, _, _ in self.reactor.tcpServers]
        self.assertEqual({f.config.sink for f in factories}, {gateway.router})
        self.assertIs(gateway.router.producer, gateway.producer)

    def test_listenerNames(self):
        """
        Listeners are named after their framing, numbered when repeated,
        unless named explicitly.
        """
        gateway = self.makeGateway()
        names = [
            gateway.addListener("lines", "tcp:9000").name,
            gateway.addListener("lines", "tcp:9001").name,
            gateway.addListener("lines", "tcp:9002", name="devices").name,
        ]
        self.assertEqual(names, ["lines", "lines-2", "devices"])

    def test_perListenerLimit(self):
        """
        A listener takes the gateway's size limit unless given its own.
        """
        gateway = self.makeGateway(maxMessageSize=100)
        self.assertEqual(gateway.addListener("lines", "tcp:1").config.maxMessageSize, 100)
        self.assertEqual(
            gateway.addListener("lines", "tcp:2", maxMessageSize=5).config.maxMessageSize, 5
        )

    def test_unknownFraming(self):
        """
        An unknown framing is refused with the names of the available ones.
        """
        error = self.assertRaises(
            FramingError, self.makeGateway().addListener, "xml", "tcp:9000"
        )
        self.assertIn("lines", str(error))
        self.assertIn("length-prefixed", str(error))

    def test_malformedEndpoint(self):
        """
        A malformed endpoint description is refused when the listener is
        added, not when it starts.
        """
        error = self.assertRaises(
            ValueError, self.makeGateway().addListener, "lines", "tcp:port"
        )
        self.assertIn("tcp:port", str(error))

    def test_badLimitsAndTopic(self):
        """
        A missing topic or a non-positive size limit is refused.
        """
        self.assertRaises(ValueError, GatewayService, topic="", reactor=self.reactor)
        self.assertRaises(ValueError, self.makeGateway, maxMessageSize=0)

    def test_stopPausesClientsThenDrains(self):
        """
        Stopping pauses every client connection and closes the listening
        ports before the producer drains.
        """
        gateway = self.makeGateway()
        gateway.addListener("lines", "tcp:9000")
        gateway.privilegedStartService()
        gateway.startService()
        factory = self.reactor.tcpServers[0][1]
        from twisted.internet.testing import StringTransport

        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(b"hello\n")
        d = gateway.stopService()
        self.assertEqual(transport.producerState, "paused")
        self.assertNoResult(d)
        gateway.producer._producer.confirm()
        self.reactor.advance(0.1)
        self.successResultOf(d)
        self.assertEqual(gateway.producer._producer.produced[0].value(), b"hello")
