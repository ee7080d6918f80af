# -*- test-case-name: tests.server.test_hygiene -*-
"""
Tests for L{gateway.server.hygiene}: a listener's connections with its
caps, idle timeout, maximum age and PROXY header, through real framing
plugins built as L{gateway.service.GatewayService.addListener} builds them.
"""

import random
import socket
import struct

from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.testing import (
    StringTransport,
)
from twisted.trial.unittest import SynchronousTestCase

from gateway.server.hygiene import AGE_GRACE, MALFORMED_PROXY_HEADER
from gateway.server.policy import (
    IDLE_TIMEOUT,
    MAX_AGE,
    MAX_CONNECTIONS,
    MAX_PER_ADDRESS,
)
from tests.server.helpers import (
    PROXY_V1,
    Listener,
    captureLogs,
    eventsFrom,
    lose,
    proxyV2,
)


class ListenerProtocolTests(SynchronousTestCase):
    """
    A listener's connections with its caps, through a real framing.
    """

    def test_overMaxConnectionsClosedAtOnce(self):
        """
        A connection over C{max-connections} is closed as soon as it is
        made, opens no message stream and is counted as refused; the
        admitted ones carry on.
        """
        listener = Listener({"max-connections": "1"})
        first, firstTransport = listener.connect(port=1)
        second, secondTransport = listener.connect(port=2)
        self.assertTrue(secondTransport.disconnecting)
        self.assertFalse(firstTransport.disconnecting)
        self.assertEqual([s.peer for s in listener.sink.streams], ["10.0.0.1:1"])
        self.assertEqual(listener.stats.refused, {MAX_CONNECTIONS: 1})
        first.dataReceived(b"hello\n")
        self.assertEqual(listener.sink.messages, [("10.0.0.1:1", b"hello")])

    def test_perAddressCountsHostNotPort(self):
        """
        C{max-per-address} counts connections per client host, whatever
        their ports.
        """
        listener = Listener({"max-per-address": "1"})
        _, a = listener.connect("10.0.0.1", 1000)
        _, b = listener.connect("10.0.0.1", 1001)
        _, c = listener.connect("10.0.0.2", 1000)
        self.assertEqual([t.disconnecting for t in (a, b, c)], [False, True, False])
        self.assertEqual(listener.stats.refused, {MAX_PER_ADDRESS: 1})

    def test_closingLetsTheNextIn(self):
        """
        When an admitted connection closes, its stream is closed and the
        next connection is admitted.
        """
        listener = Listener({"max-connections": "1", "max-per-address": "1"})
        first, _ = listener.connect()
        lose(first)
        _, transport = listener.connect(port=40001)
        self.assertFalse(transport.disconnecting)
        self.assertEqual([s.closed for s in listener.sink.streams], [True, False])

    def test_refusedConnectionReleasesNothing(self):
        """
        A refused connection closing frees no admitted connection's slot.
        """
        listener = Listener({"max-connections": "1", "max-per-address": "1"})
        listener.connect()
        refused, _ = listener.connect(port=40001)
        lose(refused)
        _, third = listener.connect("10.0.0.2", 40002)
        self.assertTrue(third.disconnecting)
        self.assertEqual(listener.gate.admitted, 1)

    def test_stats(self):
        """
        Admitted and refused connections are both accepted and closed;
        only admitted ones read bytes; C{open} is the difference.
        """
        listener = Listener({"max-connections": "1"})
        admitted, _ = listener.connect()
        refused, _ = listener.connect(port=40001)
        admitted.dataReceived(b"abc\nde")
        stats = listener.stats
        self.assertEqual(
            (stats.accepted, stats.closed, stats.open, stats.bytesReceived), (2, 0, 2, 6)
        )
        lose(refused)
        self.assertEqual((stats.closed, stats.open), (1, 1))
        lose(admitted)
        self.assertEqual((stats.accepted, stats.closed, stats.open), (2, 2, 0))


class TimerTests(SynchronousTestCase):
    """
    C{idle-timeout} and C{max-age} on a listener's connections.
    """

    def test_idleTimeout(self):
        """
        A connection that sends nothing for C{idle-timeout} seconds is
        closed and counted.
        """
        listener = Listener({"idle-timeout": "5"})
        _, transport = listener.connect()
        listener.clock.advance(4.9)
        self.assertFalse(transport.disconnecting)
        listener.clock.advance(0.1)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(listener.stats.closedBy, {IDLE_TIMEOUT: 1})

    def test_dataResetsIdleTimeout(self):
        """
        Each read, even an incomplete message, restarts the idle count.
        """
        listener = Listener({"idle-timeout": "5"})
        protocol, transport = listener.connect()
        listener.clock.advance(4)
        protocol.dataReceived(b"par")
        listener.clock.advance(4)
        protocol.dataReceived(b"tial\n")
        listener.clock.advance(4.9)
        self.assertFalse(transport.disconnecting)
        listener.clock.advance(0.1)
        self.assertTrue(transport.disconnecting)

    def test_pausedConnectionNotClosed(self):
        """
        A connection the gateway paused is silent because of the gateway:
        it is not closed for idleness while paused.
        """
        listener = Listener({"idle-timeout": "5"})
        protocol, transport = listener.connect()
        protocol.pauseProducing()
        self.assertEqual(transport.producerState, "paused")
        listener.clock.advance(3)
        listener.clock.advance(3)
        listener.clock.advance(60)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(listener.stats.closedBy, {})

    def test_idleAfterShortPause(self):
        """
        A connection paused for less than the idle timeout and then resumed
        gets the whole timeout again from the resume: still open just before
        it, closed at it.
        """
        listener = Listener({"idle-timeout": "5"})
        protocol, transport = listener.connect()
        listener.clock.advance(2)
        protocol.pauseProducing()
        listener.clock.advance(2)
        protocol.resumeProducing()
        listener.clock.advance(4.9)
        self.assertFalse(transport.disconnecting)
        listener.clock.advance(0.1)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(listener.stats.closedBy, {IDLE_TIMEOUT: 1})

    def test_idleAfterLongPause(self):
        """
        A connection paused for longer than the idle timeout is not closed
        while paused, and once resumed gets the whole timeout from the
        resume: still open just before it, closed at it.
        """
        listener = Listener({"idle-timeout": "5"})
        protocol, transport = listener.connect()
        listener.clock.advance(2)
        protocol.pauseProducing()
        listener.clock.advance(9)
        self.assertFalse(transport.disconnecting)
        protocol.resumeProducing()
        listener.clock.advance(4.9)
        self.assertFalse(transport.disconnecting)
        listener.clock.advance(0.1)
        self.assertTrue(transport.disconnecting)

    def test_maxAgeDespiteTraffic(self):
        """
        C{max-age} closes a connection that long after it opened, however
        busy, and counts it.
        """
        listener = Listener({"max-age": "10", "idle-timeout": "3"})
        protocol, transport = listener.connect()
        for _ in range(4):
            listener.clock.advance(2.4)
            protocol.dataReceived(b"busy\n")
        self.assertFalse(transport.disconnecting)
        listener.clock.advance(0.4)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(listener.stats.closedBy, {MAX_AGE: 1})
        self.assertEqual(len(listener.sink.messages), 4)

    def test_maxAgeWhilePaused(self):
        """
        C{max-age} applies to paused connections too.
        """
        listener = Listener({"max-age": "10"})
        protocol, transport = listener.connect()
        protocol.pauseProducing()
        listener.clock.advance(10)
        self.assertTrue(transport.disconnecting)

    def test_maxAgeClosesGracefully(self):
        """
        At C{max-age}, a transport that can half-close has only its write
        side shut down: the client sees the end of the stream while what it
        still sends is read and published; the connection is closed for good
        after C{AGE_GRACE} seconds if the client has not closed it.
        """

        class HalfCloseable(StringTransport):
            writeLost = False

            def loseWriteConnection(self):
                self.writeLost = True

        listener = Listener({"max-age": "10"})
        protocol = listener.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 9000))
        transport = HalfCloseable(peerAddress=IPv4Address("TCP", "10.0.0.1", 40000))
        protocol.makeConnection(transport)
        listener.clock.advance(10)
        self.assertEqual((transport.writeLost, transport.disconnecting), (True, False))
        self.assertEqual(listener.stats.closedBy, {MAX_AGE: 1})
        protocol.dataReceived(b"late\n")
        self.assertEqual(listener.sink.messages, [("10.0.0.1:40000", b"late")])
        listener.clock.advance(AGE_GRACE - 0.01)
        self.assertFalse(transport.disconnecting)
        listener.clock.advance(0.01)
        self.assertTrue(transport.disconnecting)
        lose(protocol)
        self.assertEqual(listener.clock.getDelayedCalls(), [])

    def test_keepaliveSpread(self):
        """
        Each accepted connection's first keepalive probe waits
        C{keepalive-idle} plus a random spread of up to as much again, so
        connections accepted together do not probe together; with
        C{keepalive=false} the socket is left alone.
        """

        class WithSocket(StringTransport):
            def __init__(self, *args, **kwargs):
                StringTransport.__init__(self, *args, **kwargs)
                self.socket = socket.socket()

            def getHandle(self):
                return self.socket

        def idles(options, count=40):
            listener = Listener(options)
            values = []
            for port in range(40000, 40000 + count):
                protocol = listener.factory.buildProtocol(None)
                transport = WithSocket(peerAddress=IPv4Address("TCP", "10.0.0.1", port))
                self.addCleanup(transport.socket.close)
                protocol.makeConnection(transport)
                values.append(transport.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE))
            return values

        spread = idles({"keepalive-idle": "20"})
        self.assertTrue(all(20 <= idle <= 40 for idle in spread), spread)
        self.assertGreater(len(set(spread)), 3)
        untouched = idles({"keepalive": "false"}, count=1)
        self.assertEqual(
            untouched, [socket.socket().getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)]
        )

    def test_peerReadOnce(self):
        """
        A connection through the gate and into its stream asks its transport
        for the peer once: each C{getPeer()} builds a new address object,
        a cost paid per connection by clients that connect per message.
        """

        class CountingTransport(StringTransport):
            calls = 0

            def getPeer(self):
                CountingTransport.calls += 1
                return StringTransport.getPeer(self)

        listener = Listener({"max-per-address": "2"})
        protocol = listener.factory.buildProtocol(None)
        protocol.makeConnection(
            CountingTransport(peerAddress=IPv4Address("TCP", "10.0.0.7", 4321))
        )
        self.assertEqual(CountingTransport.calls, 1)
        self.assertEqual([s.peer for s in listener.sink.streams], ["10.0.0.7:4321"])
        protocol.dataReceived(b"one\n")
        self.assertEqual(listener.sink.messages, [("10.0.0.7:4321", b"one")])
        _, third = listener.connect("10.0.0.7", 1)
        _, refused = listener.connect("10.0.0.7", 2)
        self.assertFalse(third.disconnecting)
        self.assertTrue(refused.disconnecting)

    def test_timersCancelledOnLoss(self):
        """
        No timer outlives its connection: admitted, refused, timed out or
        closed by the client.
        """
        listener = Listener({"idle-timeout": "5", "max-age": "50", "max-connections": "1"})
        admitted, _ = listener.connect()
        refused, _ = listener.connect(port=40001)
        self.assertNotEqual(listener.clock.getDelayedCalls(), [])
        lose(refused)
        lose(admitted)
        self.assertEqual(listener.clock.getDelayedCalls(), [])
        idle, _ = listener.connect(port=40002)
        listener.clock.advance(5)
        lose(idle)
        self.assertEqual(listener.clock.getDelayedCalls(), [])
        old, _ = listener.connect(port=40003)
        for _ in range(11):
            listener.clock.advance(4.99)
            old.dataReceived(b"x\n")
        self.assertEqual(listener.stats.closedBy, {IDLE_TIMEOUT: 1, MAX_AGE: 1})
        lose(old)
        self.assertEqual(listener.clock.getDelayedCalls(), [])

    def test_noTimersWithoutTimeouts(self):
        """
        A listener without timeouts schedules nothing per connection.
        """
        listener = Listener()
        protocol, _ = listener.connect()
        protocol.dataReceived(b"x\n")
        self.assertEqual(listener.clock.getDelayedCalls(), [])
        self.assertEqual(listener.stats.bytesReceived, 2)


class ProxyTests(SynchronousTestCase):
    """
    A C{haproxy:} listener: the client's address comes from the PROXY
    header.
    """

    def test_streamOpensAfterV1Header(self):
        """
        No stream is opened before the PROXY header; once it has been read,
        the stream's peer is the client the header names, and the data after
        it (in the same read or not) is framed.
        """
        listener = Listener(endpoint="haproxy:tcp:0")
        wrapper, transport = listener.connectProxied()
        self.assertEqual(listener.sink.streams, [])
        wrapper.dataReceived(PROXY_V1[:12])
        self.assertEqual(listener.sink.streams, [])
        wrapper.dataReceived(PROXY_V1[12:] + b"hel")
        wrapper.dataReceived(b"lo\n")
        self.assertEqual([s.peer for s in listener.sink.streams], ["203.0.113.7:5555"])
        self.assertEqual(listener.sink.messages, [("203.0.113.7:5555", b"hello")])
        self.assertEqual(wrapper.wrappedProtocol.peer, "203.0.113.7:5555")
        self.assertFalse(transport.disconnecting)
        self.assertEqual(listener.stats.bytesReceived, 6)

    def test_perAddressCapUsesProxiedClient(self):
        """
        C{max-per-address} counts the clients the PROXY headers name, not the
        proxy they all come from.
        """
        listener = Listener({"max-per-address": "1"}, endpoint="haproxy:tcp:0")
        headers = [
            b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 9000\r\n",
            b"PROXY TCP4 198.51.100.2 127.0.0.1 5555 9000\r\n",
            b"PROXY TCP4 203.0.113.7 127.0.0.1 5556 9000\r\n",
        ]
        transports = []
        for port, header in enumerate(headers, 40000):
            wrapper, transport = listener.connectProxied(port)
            wrapper.dataReceived(header + b"x\n")
            transports.append(transport)
        self.assertEqual([t.disconnecting for t in transports], [False, False, True])
        self.assertEqual(
            [s.peer for s in listener.sink.streams], ["203.0.113.7:5555", "198.51.100.2:5555"]
        )
        self.assertEqual(listener.stats.refused, {MAX_PER_ADDRESS: 1})

    def test_proxiedCloseReleases(self):
        """
        A proxied connection's slot is its client's, freed when it closes.
        """
        listener = Listener({"max-per-address": "1"}, endpoint="haproxy:tcp:0")
        first, _ = listener.connectProxied(40000)
        first.dataReceived(PROXY_V1 + b"x\n")
        lose(first)
        second, transport = listener.connectProxied(40001)
        second.dataReceived(PROXY_V1 + b"y\n")
        self.assertFalse(transport.disconnecting)
        self.assertEqual(listener.gate.admitted, 1)
        self.assertEqual(listener.stats.refused, {})

    def test_headerNamingNoAddress(self):
        """
        A PROXY v1 header whose source is not an IP address (Twisted's
        parser takes any word) is bad input: the connection is closed,
        counted as C{malformed-proxy-header}, and nothing is published.
        """
        listener = Listener(endpoint="haproxy:tcp:0")
        wrapper, transport = listener.connectProxied()
        wrapper.dataReceived(b"PROXY TCP4 not-an-address 127.0.0.1 1 2\r\nline\n")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(listener.sink.streams, [])
        self.assertEqual(listener.stats.frameErrors, {MALFORMED_PROXY_HEADER: 1})

    def test_headerWithBadPort(self):
        """
        A PROXY v1 header with a port that is not a number (on which
        Twisted's parser raises) is closed and counted the same way, not
        left to an unhandled error per connection.
        """
        listener = Listener(endpoint="haproxy:tcp:0")
        wrapper, transport = listener.connectProxied()
        wrapper.dataReceived(b"PROXY TCP4 203.0.113.7 127.0.0.1 http 9000\r\nx\n")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(listener.sink.streams, [])
        self.assertEqual(listener.stats.frameErrors, {MALFORMED_PROXY_HEADER: 1})

    def test_noHeader(self):
        """
        A connection that does not start with a PROXY header is closed by
        Twisted's wrapper and counted as C{malformed-proxy-header}.
        """
        listener = Listener(endpoint="haproxy:tcp:0")
        wrapper, transport = listener.connectProxied()
        wrapper.dataReceived(b"hello there\n")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(listener.sink.streams, [])
        self.assertEqual(listener.stats.frameErrors, {MALFORMED_PROXY_HEADER: 1})

    def test_v2Header(self):
        """
        A binary PROXY v2 header names the client just as well.
        """
        listener = Listener({"max-per-address": "1"}, endpoint="haproxy:tcp:0")
        wrapper, _ = listener.connectProxied(40000)
        wrapper.dataReceived(proxyV2("192.0.2.44", 6000) + b"v2\n")
        other, transport = listener.connectProxied(40001)
        other.dataReceived(proxyV2("192.0.2.44", 6001) + b"again\n")
        self.assertEqual(listener.sink.messages, [("192.0.2.44:6000", b"v2")])
        self.assertTrue(transport.disconnecting)

    def test_idleBeforeHeader(self):
        """
        A connection that never sends its PROXY header is closed by the
        idle timeout.
        """
        listener = Listener({"idle-timeout": "5"}, endpoint="haproxy:tcp:0")
        _, transport = listener.connectProxied()
        listener.clock.advance(5)
        self.assertTrue(transport.disconnecting)

    def test_capAppliedOnHeaderAlone(self):
        """
        A proxied connection over C{max-connections} is closed once its PROXY
        header is read, even if the client sends nothing after it.
        """
        listener = Listener({"max-connections": "1"}, endpoint="haproxy:tcp:0")
        first, _ = listener.connectProxied(40000)
        first.dataReceived(PROXY_V1)
        second, transport = listener.connectProxied(40001)
        second.dataReceived(b"PROXY TCP4 198.51.100.2 127.0.0.1 5555 9000\r\n")
        self.assertTrue(transport.disconnecting)


class TimerValuesTests(SynchronousTestCase):
    """
    What the timers log and set, value by value.
    """

    def test_closingsLogged(self):
        """
        An idle timeout and a C{max-age} are logged with the peer and the
        limit in seconds.
        """
        logs = captureLogs(self)
        listener = Listener({"idle-timeout": "5", "max-age": "7"}, interval=0.5)
        idle, _ = listener.connect(port=1)
        listener.clock.advance(1)
        old, _ = listener.connect(port=2)
        listener.clock.advance(4)
        lose(idle)
        old.dataReceived(b"x\n")
        listener.clock.advance(3)
        self.assertEqual(
            [
                (e["reason"], e["peer"], e["after"])
                for e in eventsFrom(logs, "gateway.server.gate")
            ],
            [(IDLE_TIMEOUT, "10.0.0.1:1", 5.0), (MAX_AGE, "10.0.0.1:2", 7.0)],
        )

    def spreadIdle(self, idle):
        """
        The keepalive idle set on one connection's socket with
        C{keepalive-idle} C{idle}, the random draw at its highest.
        """
        self.patch(random, "random", lambda: 0.9999)
        listener = Listener({"keepalive-idle": str(idle)})
        handle = socket.socket()
        self.addCleanup(handle.close)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.1", 1))
        transport.getHandle = lambda: handle
        listener.factory.buildProtocol(None).makeConnection(transport)
        return handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)

    def test_keepaliveSpreadBounds(self):
        """
        The spread reaches C{2 x keepalive-idle} exactly, from a
        C{keepalive-idle} of 2 up; a C{keepalive-idle} of 1 is left as set
        on the listening socket.
        """
        default = socket.socket()
        self.addCleanup(default.close)
        self.assertEqual(
            [self.spreadIdle(idle) for idle in (60, 2, 1)],
            [120, 4, default.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)],
        )


class AddressTests(SynchronousTestCase):
    """
    Clients without an IP address: UNIX sockets, directly or named by a
    PROXY v2 header.
    """

    def test_unixClientsCountedByPath(self):
        """
        On a UNIX listener, C{max-per-address} counts the clients by their
        socket's name.
        """
        listener = Listener({"max-per-address": "1"})
        transports = []
        for name in (b"/run/a", b"/run/b", b"/run/a"):
            protocol = listener.factory.buildProtocol(None)
            transports.append(StringTransport(peerAddress=UNIXAddress(name)))
            protocol.makeConnection(transports[-1])
        self.assertEqual([t.disconnecting for t in transports], [False, False, True])
        self.assertEqual(listener.stats.refused, {MAX_PER_ADDRESS: 1})

    def test_proxiedUnixClient(self):
        """
        A PROXY v2 header naming UNIX sockets gives no client address: bad
        input, closed and counted, and the bytes after it are neither
        framed nor counted as read.
        """
        header = (
            b"\r\n\r\n\x00\r\nQUIT\n\x21\x31"
            + struct.pack("!H", 216)
            + b"/run/client".ljust(108, b"\0")
            + b"/run/gw".ljust(108, b"\0")
        )
        listener = Listener(endpoint="haproxy:tcp:0")
        wrapper, transport = listener.connectProxied()
        wrapper.dataReceived(header + b"x\n")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(listener.sink.streams, [])
        self.assertEqual(listener.stats.frameErrors, {MALFORMED_PROXY_HEADER: 1})
        self.assertEqual(listener.stats.bytesReceived, 0)
