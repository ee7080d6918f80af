# -*- test-case-name: tests.kafka.test_probe -*-
"""
The Kafka probe protocol: ApiVersions v0 requests on the wire, replies
matched by correlation id, latency on the injected clock, timeouts, lost
connections and replies it cannot trust.  The bytes themselves are tested
in L{tests.kafka.test_wire}.
"""

import struct

from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from gateway.kafka._probe import (
    KafkaProbeFactory,
    KafkaProbeProtocol,
    ProbeConnectionLost,
    ProbeError,
    ProbeTimeout,
)
from tests.kafka.test_wire import APIS, apiVersionsReply, parseRequests


class FakeBroker(Int32StringReceiver):
    """
    The broker's side of a probe connection: answers ApiVersions v0 the way
    Kafka does, unless told to stay silent.

    :ivar requests: every request received, parsed.
    :ivar answering: whether requests are answered as they arrive.
    :ivar errorCode: the error_code put in replies.
    """

    def __init__(self):
        self.requests = []
        self.answering = True
        self.errorCode = 0
        self.held = []

    def stringReceived(self, request):
        (parsed,) = parseRequests(struct.pack(">i", len(request)) + request)
        self.requests.append(parsed)
        reply = apiVersionsReply(parsed[2], self.errorCode)
        if self.answering:
            self.transport.write(reply)
        else:
            self.held.append(reply)

    def release(self):
        """
        Send the replies held while silent.
        """
        held, self.held = self.held, []
        for reply in held:
            self.transport.write(reply)


class ProtocolTestsMixin:
    def connect(self, timeout=3.0):
        self.clock = Clock()
        self.events = []
        self.protocol = KafkaProbeProtocol(self.clock, timeout=timeout)
        self.protocol.log = Logger(observer=self.events.append)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        return self.protocol

    def sent(self):
        data = self.transport.value()
        self.transport.clear()
        return parseRequests(data)


class ProbeTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    Probes over a L{StringTransport}, replies fed by hand.
    """

    def test_probeSendsRequest(self):
        """
        C{probe} writes one size-prefixed ApiVersions v0 request with a new
        correlation id and the probe's client id.
        """
        protocol = self.connect()
        protocol.probe()
        self.assertEqual(
            self.transport.value(),
            b"\x00\x00\x00\x1d\x00\x12\x00\x00\x00\x00\x00\x01\x00\x13kafka-gateway-probe",
        )

    def test_latencyOnClock(self):
        """
        The result carries the time from sending to the reply on the
        protocol's clock, the error code and the API ranges.
        """
        protocol = self.connect()
        self.clock.advance(100)
        d = protocol.probe()
        self.clock.advance(0.25)
        protocol.dataReceived(apiVersionsReply(1))
        result = self.successResultOf(d)
        self.assertEqual(result.latency, 0.25)
        self.assertEqual((result.correlationId, result.errorCode), (1, 0))
        self.assertEqual(result.apiKeys, APIS)
        self.assertEqual(result.apiCount, 3)

    def test_correlation(self):
        """
        Replies arriving out of order, split anyhow, fire the probes they
        answer.
        """
        protocol = self.connect()
        first, second = protocol.probe(), protocol.probe()
        ids = [r[2] for r in self.sent()]
        self.assertEqual(ids, [1, 2])
        data = apiVersionsReply(2, errorCode=35) + apiVersionsReply(1)
        for i in range(len(data)):
            protocol.dataReceived(data[i : i + 1])
        self.assertEqual(self.successResultOf(first).errorCode, 0)
        self.assertEqual(self.successResultOf(second).errorCode, 35)
        self.assertEqual(protocol.pending, 0)

    def test_replyCancelsTimer(self):
        """
        A reply leaves no timer behind.
        """
        protocol = self.connect()
        protocol.probe()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        protocol.dataReceived(apiVersionsReply(1))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_timeout(self):
        """
        A probe unanswered for its timeout fails with L{ProbeTimeout} and the
        connection is aborted; the other probes fail once it is lost.
        """
        protocol = self.connect(timeout=2.0)
        first = protocol.probe()
        self.clock.advance(1)
        second = protocol.probe()
        self.clock.advance(1)
        self.assertIn("no reply from", str(self.failureResultOf(first, ProbeTimeout).value))
        self.assertTrue(self.transport.disconnecting)
        self.assertNoResult(second)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(second, ProbeConnectionLost)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_timeoutPerProbe(self):
        """
        C{probe(timeout)} overrides the protocol's timeout.
        """
        protocol = self.connect(timeout=10.0)
        d = protocol.probe(timeout=0.5)
        self.clock.advance(0.5)
        self.failureResultOf(d, ProbeTimeout)

    def test_connectionLostFailsPending(self):
        """
        Losing the connection fails every pending probe with
        L{ProbeConnectionLost} naming the reason, and cancels their timers.
        """
        protocol = self.connect()
        probes = [protocol.probe() for _ in range(3)]
        protocol.connectionLost(Failure(ConnectionDone("bye")))
        for d in probes:
            error = self.failureResultOf(d, ProbeConnectionLost).value
            self.assertIn("lost with a probe pending", str(error))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(protocol.connected)

    def test_probeWhenDisconnected(self):
        """
        A probe on a closed connection fails at once, sending nothing.
        """
        protocol = self.connect()
        protocol.connectionLost(Failure(ConnectionDone()))
        self.transport.clear()
        self.failureResultOf(protocol.probe(), ProbeConnectionLost)
        self.assertEqual(self.transport.value(), b"")

    def test_lengthLimitExceeded(self):
        """
        A reply announcing more than C{MAX_LENGTH} bytes is logged with its
        size and the limit, and aborts the connection; pending probes fail
        with that reason.
        """
        protocol = self.connect()
        d = protocol.probe()
        protocol.dataReceived(struct.pack(">i", protocol.MAX_LENGTH + 1))
        self.assertTrue(self.transport.disconnecting)
        (event,) = self.events
        self.assertEqual(event["length"], protocol.MAX_LENGTH + 1)
        self.assertEqual(event["limit"], protocol.MAX_LENGTH)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertIn("over the", str(self.failureResultOf(d, ProbeError).value))

    def test_unknownCorrelationId(self):
        """
        A reply nobody asked for means the stream cannot be trusted: it is
        logged and the connection aborted.
        """
        protocol = self.connect()
        d = protocol.probe()
        protocol.dataReceived(apiVersionsReply(42))
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.events[0]["correlationId"], 42)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertIn("unknown correlation id 42", str(self.failureResultOf(d, ProbeError).value))

    def test_malformedReply(self):
        """
        A reply too short for its fields fails its probe and aborts.
        """
        protocol = self.connect()
        d = protocol.probe()
        protocol.dataReceived(struct.pack(">ii", 6, 1) + b"\x00\x00")
        self.failureResultOf(d, ProbeError)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancel(self):
        """
        Cancelling a probe forgets it: its timer is gone and its late reply
        is dropped without closing the connection.
        """
        protocol = self.connect()
        d = protocol.probe()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        protocol.dataReceived(apiVersionsReply(1))
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(self.events, [])

    def test_correlationIdWraps(self):
        """
        Correlation ids stay positive INT32 values.
        """
        protocol = self.connect()
        protocol._nextId = 2**31 - 1
        protocol.probe()
        self.assertEqual(self.sent()[0][2], 1)

    def test_probeWhileClosing(self):
        """
        Once the protocol has given up on its connection, a probe fails at
        once instead of waiting for the connection to be lost.
        """
        protocol = self.connect(timeout=1.0)
        first = protocol.probe()
        self.clock.advance(1.0)
        self.failureResultOf(first, ProbeTimeout)
        self.transport.clear()
        self.failureResultOf(protocol.probe(), ProbeConnectionLost)
        self.assertEqual(self.transport.value(), b"")

    def test_peerNames(self):
        """
        The peer is named C{host:port}, IPv6 hosts in brackets.
        """
        from twisted.internet.address import IPv4Address, IPv6Address

        for address, name in [
            (IPv4Address("TCP", "10.0.0.1", 9092), "10.0.0.1:9092"),
            (IPv6Address("TCP", "::1", 9092), "[::1]:9092"),
        ]:
            protocol = KafkaProbeProtocol(Clock())
            protocol.makeConnection(StringTransport(peerAddress=address))
            self.assertEqual(protocol.peer, name)

    def test_abortOnce(self):
        """
        C{abort} closes the connection once, even when asked again.
        """
        protocol = self.connect()
        calls = []
        self.transport.abortConnection = lambda: calls.append(1)
        protocol.abort()
        protocol.abort()
        self.assertEqual(calls, [1])


class FactoryTests(SynchronousTestCase):
    """
    L{KafkaProbeFactory}.
    """

    def test_buildProtocol(self):
        """
        Protocols share the factory's clock and timeout and are numbered.
        """
        clock = Clock()
        factory = KafkaProbeFactory(clock, timeout=1.5)
        first, second = factory.buildProtocol(None), factory.buildProtocol(None)
        self.assertIs(first.clock, clock)
        self.assertEqual(first.timeout, 1.5)
        self.assertIs(first.factory, factory)
        self.assertEqual((first.connectionId, second.connectionId), (1, 2))

    def test_onConnectionLost(self):
        """
        The factory's hook hears of every lost connection, after the pending
        probes failed.
        """
        lost = []
        factory = KafkaProbeFactory(
            Clock(), onConnectionLost=lambda p, why: lost.append((p, p.pending))
        )
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(StringTransport())
        d = protocol.probe()
        protocol.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(d, ProbeConnectionLost)
        self.assertEqual(lost, [(protocol, 0)])


class LoopbackTests(SynchronousTestCase):
    """
    The probe against L{FakeBroker} through L{twisted.test.iosim}.
    """

    def setUp(self):
        self.clock = Clock()
        self.client, self.broker, self.pump = iosim.connectedServerAndClient(
            FakeBroker, lambda: KafkaProbeProtocol(self.clock, timeout=1.0), clock=self.clock
        )

    def test_roundTrip(self):
        """
        Each probe reaches the broker as an ApiVersions v0 request and comes
        back answered, one connection for all of them.
        """
        results = []
        for _ in range(5):
            self.client.probe().addCallback(results.append)
            self.pump.flush()
        self.assertEqual([r.correlationId for r in results], [1, 2, 3, 4, 5])
        self.assertEqual(
            self.broker.requests,
            [(18, 0, i, b"kafka-gateway-probe") for i in range(1, 6)],
        )

    def test_silentBroker(self):
        """
        A broker that does not answer makes the probe time out and the
        connection close on both sides.
        """
        self.broker.answering = False
        d = self.client.probe()
        self.pump.flush()
        self.clock.advance(1.0)
        self.failureResultOf(d, ProbeTimeout)
        self.pump.flush()
        self.assertFalse(self.client.connected)
