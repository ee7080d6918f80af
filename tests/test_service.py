# -*- test-case-name: tests.test_service -*-
"""
Tests for L{GatewayService}, the public assembly API, on a memory reactor.
"""

import os

from twisted.internet.testing import MemoryReactorClock
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from gateway.kafka import KafkaProducerService
from gateway.registry import FramingError
from gateway.server.listener import ListenerService
from gateway.service import EXIT_UNKEPT, GatewayService, exitWithStatus
from tests.fakes import fakeBackend
from tests.support.files import temporaryDirectory


class GatewayServiceTests(SynchronousTestCase):
    """
    L{GatewayService}.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()

    def makeGateway(self, **kwargs):
        self.backend = fakeBackend()
        kwargs.setdefault("spoolPath", None)
        kwargs.setdefault("deadLetterPath", None)
        return GatewayService(topic="t", reactor=self.reactor, backend=self.backend, **kwargs)

    def test_producerFirstListenersAfter(self):
        """
        The producer is the first child and the health service the second,
        so both start before and stop after the listeners.
        """
        from gateway.kafka.health import BrokerHealthService

        gateway = self.makeGateway()
        gateway.addListener("lines", "tcp:9000")
        gateway.addListener("length-prefixed", "tcp:9001")
        children = list(gateway)
        self.assertIsInstance(children[0], KafkaProducerService)
        self.assertIsInstance(children[1], BrokerHealthService)
        self.assertEqual([type(c) for c in children[2:]], [ListenerService] * 2)

    def test_healthReadsProducerStatus(self):
        """
        The health service reads the producer's status and the budget.
        """
        gateway = self.makeGateway()
        status = gateway._producerStatus()
        self.assertEqual(
            set(status), {"brokersUp", "lastDeliveryAge", "pending", "budgetFraction"}
        )

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
        error = self.assertRaises(FramingError, self.makeGateway().addListener, "xml", "tcp:9000")
        self.assertIn("lines", str(error))
        self.assertIn("length-prefixed", str(error))

    def test_malformedEndpoint(self):
        """
        A malformed endpoint description is refused when the listener is
        added, not when it starts.
        """
        error = self.assertRaises(ValueError, self.makeGateway().addListener, "lines", "tcp:port")
        self.assertIn("tcp:port", str(error))

    def test_badLimitsAndTopic(self):
        """
        A missing topic or a non-positive size limit is refused.
        """
        self.assertRaises(ValueError, GatewayService, topic="", reactor=self.reactor)
        self.assertRaises(ValueError, self.makeGateway, maxMessageSize=0)
        self.assertRaises(ValueError, self.makeGateway, budget=0)
        error = self.assertRaises(
            ValueError, GatewayService, topic="t", reactor=self.reactor, backend="nope"
        )
        self.assertIn("confluent", str(error))

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
        self.backend.producers[0].confirm()
        self.reactor.advance(0.1)
        self.successResultOf(d)
        self.assertEqual(self.backend.producers[0].produced[0].value(), b"hello")

    def test_exitStatusAfterRecordsLost(self):
        """
        A stop that could not keep records (the spool's directory removed)
        sets L{GatewayService.exitStatus} to L{EXIT_UNKEPT}; a clean stop
        leaves it at 0.
        """
        directory = os.path.join(temporaryDirectory(self), "spool")
        os.mkdir(directory)
        gateway = self.makeGateway(spoolPath=os.path.join(directory, "s.jsonl"), drainTimeout=0.5)
        gateway.privilegedStartService()
        gateway.startService()
        gateway.producer.produce("t", b"x")
        os.rmdir(directory)
        d = gateway.stopService()
        self.reactor.pump([0.1] * 10)
        self.successResultOf(d)
        self.assertEqual((gateway.producer.unkept, gateway.exitStatus), (1, EXIT_UNKEPT))
        clean = self.makeGateway()
        clean.privilegedStartService()
        clean.startService()
        d = clean.stopService()
        self.reactor.advance(0.1)
        self.successResultOf(d)
        self.assertEqual(clean.exitStatus, 0)

    def test_exitWithStatus(self):
        """
        L{exitWithStatus} exits with the service's status after the
        reactor's shutdown, and does nothing when it is 0.
        """
        gateway = self.makeGateway()
        exits = []
        exitWithStatus(self.reactor, gateway, exit=exits.append)
        [(trigger, args, kwargs)] = self.reactor.triggers["after"]["shutdown"]
        trigger()
        self.assertEqual(exits, [])
        gateway.exitStatus = EXIT_UNKEPT
        trigger()
        self.assertEqual(exits, [EXIT_UNKEPT])

    def test_exitWithStatusRemovesThePidfile(self):
        """
        Exiting with a status skips twistd's own stop, so L{exitWithStatus}
        removes twistd's pidfile itself, and only then; a pidfile already
        gone is no error.
        """
        pidfile = self.mktemp()
        FilePath(pidfile).setContent(b"1234")
        gateway = self.makeGateway()
        exits = []
        exitWithStatus(self.reactor, gateway, pidfile=pidfile, exit=exits.append)
        [(trigger, args, kwargs)] = self.reactor.triggers["after"]["shutdown"]
        trigger()
        self.assertTrue(os.path.exists(pidfile))
        gateway.exitStatus = EXIT_UNKEPT
        trigger()
        self.assertFalse(os.path.exists(pidfile))
        trigger()
        self.assertEqual(exits, [EXIT_UNKEPT, EXIT_UNKEPT])

    def test_stopPublishesWholeMessagesOfPausedClients(self):
        """
        Whole messages a paused client had sent are published when the
        gateway stops, so the drain covers everything that was read.
        """
        gateway = self.makeGateway()
        gateway.addListener("lines", "tcp:9000")
        gateway.privilegedStartService()
        gateway.startService()
        from twisted.internet.testing import StringTransport

        protocol = self.reactor.tcpServers[0][1].buildProtocol(None)
        protocol.makeConnection(StringTransport())
        protocol.pauseProducing()
        protocol.dataReceived(b"one\ntwo\npart")
        gateway.stopService()
        values = [m.value() for m in self.backend.producers[0].produced]
        self.assertEqual(values, [b"one", b"two"])

    def test_overBudgetPausesClientsAndAccepting(self):
        """
        Above the high-water mark every client is paused and listeners stop
        accepting; below the low-water mark both resume.  An incomplete
        frame is not in the budget.
        """
        gateway = self.makeGateway(budget=1000)
        gateway.addListener("lines", "tcp:9000")
        gateway.privilegedStartService()
        gateway.startService()
        port = gateway.listeners[0].port
        calls = []
        port.stopReading = lambda: calls.append("stop")
        port.startReading = lambda: calls.append("start")
        from twisted.internet.testing import StringTransport

        factory = self.reactor.tcpServers[0][1]
        hog, other = factory.buildProtocol(None), factory.buildProtocol(None)
        hogTransport, otherTransport = StringTransport(), StringTransport()
        hog.makeConnection(hogTransport)
        other.makeConnection(otherTransport)
        hog.dataReceived(b"x" * 450)  # an incomplete line does not count
        self.reactor.pump([0.05] * 4)
        self.assertEqual(otherTransport.producerState, "producing")
        hog.dataReceived(b"\ny\n")  # two records: 512 bytes of overhead each
        self.reactor.pump([0.05] * 8)
        self.assertEqual(otherTransport.producerState, "paused")
        self.assertEqual(calls, ["stop"])
        self.assertGreater(gateway.router.budgetFraction(), 0.8)
        self.backend.producers[-1].confirm()
        self.reactor.pump([0.05] * 4)
        self.assertEqual(otherTransport.producerState, "producing")
        self.assertEqual(calls, ["stop", "start"])

    def test_listenerCounts(self):
        """
        A listener counts connections accepted and closed and the bytes read.
        """
        from twisted.internet.error import ConnectionDone
        from twisted.internet.testing import StringTransport
        from twisted.python.failure import Failure

        gateway = self.makeGateway()
        listener = gateway.addListener("lines", "tcp:9000")
        gateway.privilegedStartService()
        gateway.startService()
        factory = self.reactor.tcpServers[0][1]
        first, second = factory.buildProtocol(None), factory.buildProtocol(None)
        first.makeConnection(StringTransport())
        second.makeConnection(StringTransport())
        first.dataReceived(b"abc\n")
        second.dataReceived(b"de")
        first.connectionLost(Failure(ConnectionDone()))
        stats = listener.config.stats
        self.assertEqual(
            (stats.accepted, stats.closed, stats.open, stats.bytesReceived), (2, 1, 1, 6)
        )

    def test_httpEndpointBindsBeforeListeners(self):
        """
        With an HTTP endpoint the site is bound at start, before the
        listeners; a malformed HTTP endpoint is refused at once.
        """
        gateway = self.makeGateway(http="tcp:8081:interface=127.0.0.1")
        gateway.addListener("lines", "tcp:9000")
        gateway.privilegedStartService()
        ports = [port for port, _, _, _ in self.reactor.tcpServers]
        self.assertEqual(ports, [8081, 9000])
        self.assertIsNotNone(gateway.http.port)
        self.assertRaises(ValueError, self.makeGateway, http="tcp:nope")
