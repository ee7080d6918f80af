"""
Tests for L{gateway.server.policy} (connection options, the listening
socket's settings, the gate applying the caps) and for how a listener's
protocols apply them: caps, idle timeout, maximum age and the PROXY
header's address, through real framing plugins built as
L{gateway.service.GatewayService.addListener} builds them; plus
L{gateway.server.listener.ListenerService.pauseAccepting} and the command line's
connection options.
"""

import shutil
import socket
import struct
import subprocess
from types import SimpleNamespace
from unittest import SkipTest

from twisted.internet import defer, tcp
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import (
    EventLoggingObserver,
    MemoryReactorClock,
    StringTransport,
)
from twisted.logger import LogPublisher, globalLogPublisher
from twisted.protocols.haproxy._wrapper import HAProxyWrappingFactory
from twisted.python.failure import Failure
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from gateway.framing.lengthprefix import LengthPrefixedProtocol
from gateway.framing.lines import LinesProtocol
from gateway.framing.options import MAX_SIZE, OptionError, resolveOptions
from gateway.logs import OncePerInterval
from gateway.registry import loadFramings
from gateway.server.descriptors import DESCRIPTORS, DescriptorGuard
from gateway.server.factory import listenerFactory
from gateway.server.gate import ListenerGate
from gateway.server.hygiene import AGE_GRACE, MALFORMED_PROXY_HEADER
from gateway.server.listener import ListenerConfig, ListenerService, ListenerStats
from gateway.server.policy import (
    CONNECTION_OPTIONS,
    DEFAULT_BACKLOG,
    IDLE_TIMEOUT,
    MAX_AGE,
    MAX_CONNECTIONS,
    MAX_PER_ADDRESS,
    ConnectionPolicy,
    configurePort,
    seconds,
    splitOptions,
)
from gateway.tap import Options
from gateway.testing import RecordingSink

FRAMINGS = loadFramings()

#: The PROXY v1 header of a client 203.0.113.7:5555 behind a proxy.
PROXY_V1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 9000\r\n"


def proxyV2(source, sourcePort, destination="127.0.0.1", destinationPort=9000):
    """
    A binary PROXY v2 header for a TCP over IPv4 connection.

    :return: the header's bytes.
    """
    addresses = (
        socket.inet_aton(source)
        + socket.inet_aton(destination)
        + struct.pack("!HH", sourcePort, destinationPort)
    )
    # Signature, version 2 + PROXY command, AF_INET + STREAM, length.
    return (
        b"\r\n\r\n\x00\r\nQUIT\n"
        + bytes([0x21, 0x11])
        + struct.pack("!H", len(addresses))
        + addresses
    )


def lose(protocol):
    """
    Tell a protocol (or a PROXY wrapper) that its connection closed.
    """
    protocol.connectionLost(Failure(ConnectionDone()))


def captureLogs(testCase):
    """
    :return: the events logged to the global publisher during the test.
    """
    return EventLoggingObserver.createWithCleanup(testCase, globalLogPublisher)


def eventsFrom(events, namespace, level=None):
    """
    :return: the events whose namespace starts with C{namespace} (and of
        that level, when given).
    """
    return [
        e
        for e in events
        if e.get("log_namespace", "").startswith(namespace)
        and (level is None or e["log_level"].name == level)
    ]


class Listener:
    """
    One listener's protocol factory, built as
    L{gateway.service.GatewayService.addListener} builds it, on a L{Clock}
    and a L{RecordingSink}, with fake transports for its connections.
    """

    def __init__(
        self, options=None, framing="lines", endpoint="tcp:0", descriptors=None, interval=10.0
    ):
        """
        :param options: framing and connection options, as written.
        :param endpoint: the endpoint description; C{haproxy:} makes the
            listener expect a PROXY header.
        :param descriptors: a L{DescriptorGuard}, or L{None}.
        """
        plugin = FRAMINGS[framing]
        framingOptions, connectionOptions = splitOptions(dict(options or {}))
        resolved = resolveOptions(plugin, framingOptions, 1024)
        self.clock = Clock()
        self.stats = ListenerStats()
        self.sink = RecordingSink()
        policy = ConnectionPolicy.fromOptions(connectionOptions, endpoint)
        self.gate = ListenerGate("test", policy, self.stats, self.clock, interval)
        self.config = ListenerConfig(
            name="test",
            framing=plugin.name,
            endpoint=endpoint,
            sink=self.sink,
            maxMessageSize=resolved[MAX_SIZE],
            options=resolved,
            clock=self.clock,
            stats=self.stats,
            gate=self.gate,
            descriptors=descriptors,
            proxied=endpoint.startswith("haproxy:"),
        )
        self.factory = listenerFactory(plugin, self.config)
        self.proxyFactory = HAProxyWrappingFactory(self.factory)

    def connect(self, host="10.0.0.1", port=40000):
        """
        Connect one client directly.

        :return: C{(protocol, transport)}.
        """
        protocol = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 9000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
        protocol.makeConnection(transport)
        return protocol, transport

    def connectProxied(self, proxyPort=40000):
        """
        Connect one client through a PROXY-protocol wrapper, as a
        C{haproxy:} endpoint does; the proxy is 127.0.0.1.

        :return: C{(wrapper, transport)}; the framing protocol is
            C{wrapper.wrappedProtocol}.
        """
        wrapper = self.proxyFactory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 9000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", proxyPort))
        wrapper.makeConnection(transport)
        return wrapper, transport


class OptionsTests(SynchronousTestCase):
    """
    L{splitOptions} and L{ConnectionPolicy.fromOptions}.
    """

    def test_splitOptions(self):
        """
        The declared connection options are separated from everything else,
        which is left for the framing (including names nobody declares).
        """
        framing, connection = splitOptions(
            {
                "delimiter": "\\0",
                "max-size": "10",
                "max-connections": "5",
                "backlog": "7",
                "strip-cr": "true",
                "colour": "red",
                "keepalive-count": "3",
            }
        )
        self.assertEqual(
            framing, {"delimiter": "\\0", "max-size": "10", "strip-cr": "true", "colour": "red"}
        )
        self.assertEqual(
            connection, {"max-connections": "5", "backlog": "7", "keepalive-count": "3"}
        )

    def test_defaults(self):
        """
        Without options: no caps or timeouts, keepalive on (60 s idle, 15 s
        between probes, 4 probes) and a backlog of 1024.
        """
        policy = ConnectionPolicy.fromOptions({}, "tcp:9000")
        self.assertEqual(
            (policy.maxConnections, policy.maxPerAddress, policy.idleTimeout, policy.maxAge),
            (None, None, None, None),
        )
        self.assertEqual(
            (
                policy.keepalive,
                policy.keepaliveIdle,
                policy.keepaliveInterval,
                policy.keepaliveCount,
                policy.backlog,
            ),
            (True, 60, 15, 4, 1024),
        )
        self.assertEqual(ConnectionPolicy.fromOptions({}), policy)

    def test_noneIsDefault(self):
        """
        An option given as L{None} (from a C{.tac} file) takes its default.
        """
        policy = ConnectionPolicy.fromOptions({"keepalive-idle": None, "max-connections": None})
        self.assertEqual((policy.keepaliveIdle, policy.maxConnections), (60, None))

    def test_writtenValuesCoerced(self):
        """
        Values written on the command line become numbers and booleans;
        Python values are taken as they are.
        """
        policy = ConnectionPolicy.fromOptions(
            {
                "max-connections": "5",
                "max-per-address": "2",
                "idle-timeout": "2.5",
                "max-age": "3600",
                "keepalive": "false",
                "keepalive-idle": "30",
                "keepalive-interval": "7",
                "keepalive-count": "9",
                "backlog": "77",
            }
        )
        self.assertEqual(
            policy,
            ConnectionPolicy(
                maxConnections=5,
                maxPerAddress=2,
                idleTimeout=2.5,
                maxAge=3600.0,
                keepalive=False,
                keepaliveIdle=30,
                keepaliveInterval=7,
                keepaliveCount=9,
                backlog=77,
            ),
        )
        python = ConnectionPolicy.fromOptions({"idle-timeout": 4, "keepalive": False})
        self.assertEqual((python.idleTimeout, python.keepalive), (4.0, False))

    def test_endpointBacklogKept(self):
        """
        An endpoint with its own C{backlog=} keeps it: the policy sets none.
        """
        policy = ConnectionPolicy.fromOptions({}, "tcp:9000:backlog=9")
        self.assertIsNone(policy.backlog)
        self.assertEqual(ConnectionPolicy.fromOptions({"backlog": "9"}).backlog, 9)

    def test_backlogGivenTwice(self):
        """
        A backlog given both as a listener option and in the endpoint is an
        error naming both.
        """
        error = self.assertRaises(
            OptionError,
            ConnectionPolicy.fromOptions,
            {"backlog": "5"},
            "tcp:9000:backlog=9",
        )
        self.assertIn("backlog", str(error))
        self.assertIn("tcp:9000:backlog=9", str(error))

    def test_badValuesNameTheOption(self):
        """
        A value an option's coercer refuses is an L{OptionError} naming the
        option and the value.
        """
        for name, value in [
            ("max-connections", "0"),
            ("max-connections", "many"),
            ("max-per-address", "-1"),
            ("idle-timeout", "soon"),
            ("max-age", "0"),
            ("keepalive", "maybe"),
            ("keepalive-idle", "0"),
            ("keepalive-idle", "32768"),
            ("keepalive-interval", "2.5"),
            ("keepalive-count", "128"),
            ("backlog", "0"),
            ("max-connections", True),
        ]:
            error = self.assertRaises(OptionError, ConnectionPolicy.fromOptions, {name: value})
            self.assertIn(f"{name}={value!r}", str(error))

    def test_secondsRejected(self):
        """
        Durations must be positive and finite numbers: 0, negative numbers,
        infinity, NaN, booleans and words are refused for both timeouts.
        """
        for name in (IDLE_TIMEOUT, MAX_AGE):
            for value in (
                "0",
                "-1",
                "-0.5",
                "inf",
                "Infinity",
                "nan",
                True,
                False,
                "never",
                0,
                float("inf"),
            ):
                self.assertRaises(OptionError, ConnectionPolicy.fromOptions, {name: value})

    def test_secondsAccepted(self):
        """
        Fractions and whole numbers of seconds, written or as Python values,
        are durations.
        """
        self.assertEqual([seconds(v) for v in ("0.25", "1e3", 3, 2.5)], [0.25, 1000.0, 3.0, 2.5])

    def test_unknownConnectionOption(self):
        """
        A name that is no connection option is refused, named.
        """
        error = self.assertRaises(
            OptionError, ConnectionPolicy.fromOptions, {"max-conections": "5"}
        )
        self.assertIn("max-conections", str(error))


class ConfigurePortTests(SynchronousTestCase):
    """
    L{configurePort} on real listening sockets.
    """

    policy = ConnectionPolicy(keepaliveIdle=71, keepaliveInterval=13, keepaliveCount=5, backlog=37)

    def listeningSocket(self, backlog=5):
        """
        :return: a plain TCP socket listening on 127.0.0.1, as a port with
            a C{socket} attribute.
        """
        skt = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(skt.close)
        skt.bind(("127.0.0.1", 0))
        skt.listen(backlog)
        return SimpleNamespace(socket=skt)

    def accept(self, port):
        """
        Connect a client to C{port} and accept it.

        :return: the accepted socket.
        """
        client = socket.create_connection(port.socket.getsockname(), timeout=5)
        self.addCleanup(client.close)
        accepted, _ = port.socket.accept()
        self.addCleanup(accepted.close)
        return accepted

    def keepaliveSettings(self, skt):
        return (
            skt.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0,
            skt.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            skt.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            skt.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
        )

    def listenBacklog(self, skt):
        """
        :return: the backlog of a listening socket, as C{ss} reports it (its
            Send-Q column).
        """
        ss = shutil.which("ss")
        if ss is None:
            raise SkipTest("ss (iproute2) is not installed")
        host, port = skt.getsockname()
        output = subprocess.run(
            [ss, "-ltnH", "sport", "=", f":{port}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for line in output.splitlines():
            fields = line.split()
            if fields[3] == f"{host}:{port}":
                return int(fields[2])
        raise AssertionError(f"{host}:{port} is not in ss -ltn:\n{output}")

    def test_keepaliveOnListeningSocket(self):
        """
        Keepalive and its three timings are set on the listening socket, and
        returned by name for the log.
        """
        port = self.listeningSocket()
        applied = configurePort(port, self.policy)
        self.assertEqual(self.keepaliveSettings(port.socket), (True, 71, 13, 5))
        self.assertEqual(
            applied,
            {
                "backlog": 37,
                "keepalive": True,
                "TCP_KEEPIDLE": 71,
                "TCP_KEEPINTVL": 13,
                "TCP_KEEPCNT": 5,
            },
        )

    def test_keepaliveInheritedByAcceptedSockets(self):
        """
        A socket accepted from a configured listening socket has its
        keepalive settings (Linux copies them), so nothing is set per
        connection.
        """
        port = self.listeningSocket()
        before = self.keepaliveSettings(self.accept(port))
        configurePort(port, self.policy)
        self.assertEqual(self.keepaliveSettings(self.accept(port)), (True, 71, 13, 5))
        self.assertNotEqual(before, (True, 71, 13, 5))

    def test_keepaliveOff(self):
        """
        C{keepalive=false} turns C{SO_KEEPALIVE} off, on the listening
        socket and the sockets it accepts, and sets no timings.
        """
        port = self.listeningSocket()
        port.socket.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        applied = configurePort(port, ConnectionPolicy(keepalive=False, backlog=None))
        self.assertEqual(applied, {"keepalive": False})
        self.assertEqual(port.socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), 0)
        self.assertEqual(self.accept(port).getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), 0)

    def test_unixAndSocketlessPortsLeftAlone(self):
        """
        A UNIX socket, or a port without a socket, is left as it is.
        """
        skt = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(skt.close)
        skt.bind("\0gateway-test-configure-port-%d" % id(self))
        skt.listen(3)
        self.assertEqual(configurePort(SimpleNamespace(socket=skt), self.policy), {})
        self.assertEqual(skt.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), 0)
        self.assertEqual(configurePort(object(), self.policy), {})

    def test_backlogApplied(self):
        """
        The policy's backlog replaces the one the socket was listening with;
        without one (the endpoint set its own), the socket's is kept.
        """
        port = self.listeningSocket(backlog=5)
        self.assertEqual(self.listenBacklog(port.socket), 5)
        configurePort(port, self.policy)
        self.assertEqual(self.listenBacklog(port.socket), 37)
        kept = self.listeningSocket(backlog=6)
        applied = configurePort(kept, ConnectionPolicy(backlog=None))
        self.assertEqual(self.listenBacklog(kept.socket), 6)
        self.assertNotIn("backlog", applied)

    def test_twistedPort(self):
        """
        A Twisted TCP port (listening with Twisted's backlog of 50) gets the
        default backlog and keepalive.
        """
        reactor = MemoryReactorClock()
        port = tcp.Port(0, Factory(), backlog=50, interface="127.0.0.1", reactor=reactor)
        port.startListening()
        self.addCleanup(lambda: (port.stopListening(), reactor.advance(0)))
        with open("/proc/sys/net/core/somaxconn") as f:
            somaxconn = int(f.read())
        self.assertEqual(self.listenBacklog(port.socket), 50)
        configurePort(port, ConnectionPolicy.fromOptions({}))
        self.assertEqual(self.listenBacklog(port.socket), min(DEFAULT_BACKLOG, somaxconn))
        self.assertEqual(self.keepaliveSettings(port.socket), (True, 60, 15, 4))


class OncePerIntervalTests(SynchronousTestCase):
    """
    L{OncePerInterval}.
    """

    def test_firstEventReported(self):
        """
        The first event is reported at once, counted.
        """
        limiter = OncePerInterval(Clock(), 10)
        self.assertEqual(limiter.event("a"), {"a": 1})

    def test_withinIntervalSuppressed(self):
        """
        Events less than an interval after a report are not reported.
        """
        clock = Clock()
        limiter = OncePerInterval(clock, 10)
        limiter.event("a")
        clock.advance(9.9)
        self.assertIsNone(limiter.event("a"))
        self.assertIsNone(limiter.event("b"))

    def test_summaryCountsEverythingSince(self):
        """
        The first event an interval or more after the last report is
        reported with every event since that report, of every kind; the
        counts then start again.
        """
        clock = Clock()
        limiter = OncePerInterval(clock, 10)
        limiter.event("a")
        clock.advance(3)
        limiter.event("a")
        limiter.event("b")
        clock.advance(7)
        self.assertEqual(limiter.event("a"), {"a": 2, "b": 1})
        clock.advance(5)
        self.assertIsNone(limiter.event("b"))
        clock.advance(5)
        self.assertEqual(limiter.event("c"), {"b": 1, "c": 1})


class ListenerGateTests(SynchronousTestCase):
    """
    L{ListenerGate} on its own.
    """

    def setUp(self):
        self.clock = Clock()
        self.stats = ListenerStats()
        self.logs = captureLogs(self)

    def gate(self, **policy):
        return ListenerGate("gated", ConnectionPolicy(**policy), self.stats, self.clock)

    def test_maxConnections(self):
        """
        Connections over C{max-connections} are refused and counted by
        reason; releasing one lets the next in.
        """
        gate = self.gate(maxConnections=2)
        self.assertEqual(
            [gate.admit(f"10.0.0.{i}", f"10.0.0.{i}:1") for i in range(3)],
            [True, True, False],
        )
        self.assertEqual(gate.admitted, 2)
        self.assertEqual(self.stats.refused, {MAX_CONNECTIONS: 1})
        gate.release("10.0.0.0")
        self.assertTrue(gate.admit("10.0.0.9", "10.0.0.9:1"))
        self.assertFalse(gate.admit("10.0.0.8", "10.0.0.8:1"))
        self.assertEqual(self.stats.refused, {MAX_CONNECTIONS: 2})

    def test_maxPerAddressPerHost(self):
        """
        C{max-per-address} counts the connections of each host; other hosts
        are not affected, and releasing one frees that host's slot.
        """
        gate = self.gate(maxPerAddress=2)
        self.assertTrue(gate.admit("10.0.0.1", "10.0.0.1:1"))
        self.assertTrue(gate.admit("10.0.0.1", "10.0.0.1:2"))
        self.assertFalse(gate.admit("10.0.0.1", "10.0.0.1:3"))
        self.assertTrue(gate.admit("10.0.0.2", "10.0.0.2:1"))
        self.assertEqual(self.stats.refused, {MAX_PER_ADDRESS: 1})
        gate.release("10.0.0.1")
        self.assertTrue(gate.admit("10.0.0.1", "10.0.0.1:4"))
        self.assertFalse(gate.admit("10.0.0.1", "10.0.0.1:5"))
        self.assertEqual(gate.admitted, 3)

    def test_lastReleaseForgetsHost(self):
        """
        A host whose last connection is released is admitted again up to the
        full per-address cap.
        """
        gate = self.gate(maxPerAddress=2)
        gate.admit("10.0.0.1", "10.0.0.1:1")
        gate.release("10.0.0.1")
        self.assertEqual(
            [gate.admit("10.0.0.1", f"10.0.0.1:{i}") for i in range(3)],
            [True, True, False],
        )
        self.assertEqual(gate.admitted, 2)

    def test_refusalsLoggedOncePerInterval(self):
        """
        The first refusal is logged as a warning naming the listener, the
        peer, the reason, the limit and the connections open; later ones
        within the interval are only counted, and summed up in the next
        line.
        """
        gate = self.gate(maxConnections=2, maxPerAddress=1)
        gate.admit("10.0.0.1", "10.0.0.1:1")
        gate.admit("10.0.0.1", "10.0.0.1:2")
        gate.admit("10.0.0.2", "10.0.0.2:1")
        gate.admit("10.0.0.3", "10.0.0.3:1")
        self.clock.advance(9)
        gate.admit("10.0.0.4", "10.0.0.4:1")
        [first] = eventsFrom(self.logs, "gateway.server.gate", "warn")
        self.assertEqual(
            {k: first[k] for k in ("listener", "peer", "reason", "limit", "open")},
            {
                "listener": "gated",
                "peer": "10.0.0.1:2",
                "reason": MAX_PER_ADDRESS,
                "limit": 1,
                "open": 1,
            },
        )
        self.clock.advance(1)
        gate.release("10.0.0.2")
        gate.admit("10.0.0.1", "10.0.0.1:3")
        first, second = eventsFrom(self.logs, "gateway.server.gate", "warn")
        self.assertEqual((second["peer"], second["open"]), ("10.0.0.1:3", 1))
        self.assertEqual(second["summary"], "2 max-connections, 1 max-per-address")
        self.assertEqual(self.stats.refused, {MAX_CONNECTIONS: 2, MAX_PER_ADDRESS: 2})

    def test_closingCountedAndLogged(self):
        """
        L{ListenerGate.closing} counts the gateway's closings by reason and
        logs them once per interval, apart from refusals: a refusal's line
        does not hold back a closing's.
        """
        gate = self.gate(maxConnections=1)
        gate.admit("10.0.0.1", "10.0.0.1:1")
        gate.admit("10.0.0.2", "10.0.0.2:1")
        gate.closing(IDLE_TIMEOUT, "10.0.0.1:1", 5)
        gate.closing(MAX_AGE, "10.0.0.3:1", 60)
        self.assertEqual(self.stats.closedBy, {IDLE_TIMEOUT: 1, MAX_AGE: 1})
        [line] = eventsFrom(self.logs, "gateway.server.gate", "info")
        self.assertEqual(
            (line["reason"], line["after"], line["peer"]), (IDLE_TIMEOUT, 5, "10.0.0.1:1")
        )
        self.clock.advance(10)
        gate.closing(IDLE_TIMEOUT, "10.0.0.4:1", 5)
        lines = eventsFrom(self.logs, "gateway.server.gate", "info")
        self.assertEqual(lines[-1]["summary"], "1 idle-timeout, 1 max-age")
        self.assertEqual(len(lines), 2)


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

    def test_listenerProtocolClass(self):
        """
        Every connection of a listener is an instance of one subclass of the
        framing's protocol, with C{factory} and C{MAX_LENGTH} on the class,
        not on each connection; the factory's C{protocol} stays the
        plugin's class.
        """
        for framing, plugin in [
            ("lines", LinesProtocol),
            ("length-prefixed", LengthPrefixedProtocol),
        ]:
            listener = Listener({"max-size": "777"}, framing=framing)
            first, _ = listener.connect(port=1)
            second, _ = listener.connect(port=2)
            self.assertIs(listener.factory.protocol, plugin)
            self.assertIs(type(first), type(second))
            self.assertIsNot(type(first), plugin)
            self.assertTrue(issubclass(type(first), plugin))
            self.assertEqual(type(first).__name__, plugin.__name__)
            self.assertIs(type(first).__dict__["factory"], listener.factory)
            self.assertEqual(type(first).__dict__["MAX_LENGTH"], 777)
            self.assertNotIn("factory", vars(first))
            self.assertNotIn("MAX_LENGTH", vars(first))
            self.assertEqual((first.connectionId, second.connectionId), (1, 2))
            self.assertNotIn("factory", plugin.__dict__)

    def test_twoListenersKeepTheirOwnClass(self):
        """
        Two listeners of one framing each have their own class, limit and
        counters.
        """
        small, large = Listener({"max-size": "10"}), Listener({"max-size": "20"})
        a, _ = small.connect()
        b, _ = large.connect()
        self.assertEqual((a.MAX_LENGTH, b.MAX_LENGTH), (10, 20))
        a.dataReceived(b"x\n")
        self.assertEqual((small.stats.bytesReceived, large.stats.bytesReceived), (2, 0))


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
        is closed once it has been silent for the timeout after resuming.
        """
        listener = Listener({"idle-timeout": "5"})
        protocol, transport = listener.connect()
        listener.clock.advance(2)
        protocol.pauseProducing()
        listener.clock.advance(2)
        protocol.resumeProducing()
        listener.clock.advance(5)
        self.assertTrue(transport.disconnecting)

    def test_idleAfterLongPause(self):
        """
        A connection paused for longer than the idle timeout is still closed
        for idleness once resumed and silent for the timeout.
        """
        listener = Listener({"idle-timeout": "5"})
        protocol, transport = listener.connect()
        protocol.pauseProducing()
        listener.clock.advance(6)
        protocol.resumeProducing()
        listener.clock.advance(60)
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


class DescriptorAccountingTests(SynchronousTestCase):
    """
    A listener's connections tell the L{DescriptorGuard}, admitted or not.
    """

    def test_everyConnectionHoldsADescriptor(self):
        """
        Refused connections count against the descriptor capacity until
        they close, like admitted ones.
        """
        paused = []
        port = SimpleNamespace(
            pauseAccepting=paused.append,
            resumeAccepting=lambda r: paused.remove(r),
            limitAcceptBatch=lambda count: None,
        )
        guard = DescriptorGuard([port], Clock(), reserve=0, publisher=LogPublisher())
        guard.start(limit=2, inUse=0)
        self.addCleanup(guard.stop)
        listener = Listener({"max-connections": "1"}, descriptors=guard)
        admitted, _ = listener.connect()
        refused, transport = listener.connect(port=40001)
        self.assertTrue(transport.disconnecting)
        self.assertEqual((guard.open, paused), (2, [DESCRIPTORS]))
        lose(refused)
        self.assertEqual((guard.open, paused), (1, []))
        lose(admitted)
        self.assertEqual(guard.open, 0)


class DescriptorOvershootTests(SynchronousTestCase):
    """
    Connections accepted in the batch that filled the descriptor room.
    """

    def test_overRoomRefused(self):
        """
        A connection accepted after the room is full (Twisted accepts
        several per read) is closed at once and counted as refused for
        C{descriptors}; the one that filled the room is kept.
        """
        guard = DescriptorGuard([], Clock(), reserve=0, publisher=LogPublisher())
        guard.start(limit=2, inUse=0)
        self.addCleanup(guard.stop)
        listener = Listener(descriptors=guard)
        first, one = listener.connect()
        second, two = listener.connect(port=40001)
        third, three = listener.connect(port=40002)
        self.assertEqual([t.disconnecting for t in (one, two, three)], [False, False, True])
        self.assertEqual(listener.stats.refused, {DESCRIPTORS: 1})
        self.assertEqual(len(listener.sink.streams), 2)
        lose(third)
        self.assertEqual(guard.open, 2)


class FakePort:
    """
    A listening port counting C{stopReading} and C{startReading} calls.
    """

    def __init__(self):
        self.stops = 0
        self.starts = 0

    def stopReading(self):
        self.stops += 1

    def startReading(self):
        self.starts += 1

    def getHost(self):
        return IPv4Address("TCP", "127.0.0.1", 9000)


class FakeEndpoint:
    def __init__(self, port):
        self.port = port

    def listen(self, factory):
        return defer.succeed(self.port)


class PauseAcceptingTests(SynchronousTestCase):
    """
    L{ListenerService.pauseAccepting} and C{resumeAccepting} with reasons.
    """

    def setUp(self):
        self.port = FakePort()
        config = ListenerConfig(
            name="l", framing="lines", endpoint="tcp:0", sink=None, maxMessageSize=10
        )
        self.service = ListenerService(config, FakeEndpoint(self.port), Factory())

    def test_resumesWhenEveryReasonWithdrawn(self):
        """
        The port stops reading at the first reason, and reads again only
        once every reason is withdrawn.
        """
        self.service.startService()
        self.service.pauseAccepting("budget")
        self.service.pauseAccepting("descriptors")
        self.assertEqual((self.port.stops, self.service.accepting), (1, False))
        self.service.resumeAccepting("budget")
        self.assertEqual((self.port.starts, self.service.accepting), (0, False))
        self.service.resumeAccepting("descriptors")
        self.assertEqual((self.port.starts, self.service.accepting), (1, True))

    def test_sameReasonTwice(self):
        """
        A reason given twice is one reason: one withdrawal resumes.
        """
        self.service.startService()
        self.service.pauseAccepting("accept-error")
        self.service.pauseAccepting("accept-error")
        self.service.resumeAccepting("accept-error")
        self.assertEqual((self.port.stops, self.port.starts), (1, 1))
        self.assertTrue(self.service.accepting)

    def test_unknownReasonWithdrawn(self):
        """
        Withdrawing a reason that was not given changes nothing.
        """
        self.service.startService()
        self.service.resumeAccepting("budget")
        self.service.pauseAccepting("descriptors")
        self.service.resumeAccepting("budget")
        self.assertEqual((self.port.stops, self.port.starts), (1, 0))
        self.assertFalse(self.service.accepting)

    def test_pausedBeforeBinding(self):
        """
        A listener paused before it binds stops reading as soon as it is
        bound.
        """
        self.service.pauseAccepting("descriptors")
        self.assertEqual(self.port.stops, 0)
        self.service.startService()
        self.assertEqual((self.port.stops, self.service.accepting), (1, False))
        self.service.resumeAccepting("descriptors")
        self.assertEqual((self.port.starts, self.service.accepting), (1, True))


class CommandLineTests(SynchronousTestCase):
    """
    Connection options and C{--reserve-descriptors} on C{twistd gateway}'s
    command line.
    """

    def parse(self, *args):
        options = Options()
        options.parseOptions(["--topic", "t", *args])
        return options

    def assertUsageError(self, args, *fragments):
        error = self.assertRaises(UsageError, self.parse, *args)
        for fragment in fragments:
            self.assertIn(fragment, str(error))

    def test_connectionOptionsAccepted(self):
        """
        Connection options are given with the framing's, and make the policy
        they say.
        """
        options = self.parse(
            "--listen",
            "lines(max-connections=5,idle-timeout=2.5,keepalive=false)=tcp:0",
        )
        [spec] = options["listen"]
        framing, connection = splitOptions(spec.options)
        self.assertEqual(framing, {})
        policy = ConnectionPolicy.fromOptions(connection, spec.endpoint)
        self.assertEqual(
            (policy.maxConnections, policy.idleTimeout, policy.keepalive),
            (5, 2.5, False),
        )

    def test_badConnectionOptions(self):
        """
        A value a connection option refuses, a backlog given twice and an
        unknown option name are usage errors saying which.
        """
        self.assertUsageError(["--listen", "lines(max-connections=0)=tcp:0"], "max-connections")
        self.assertUsageError(["--listen", "lines(backlog=5)=tcp:0:backlog=9"], "backlog", "once")
        self.assertUsageError(
            ["--listen", "lines(max-conections=5)=tcp:0"], "max-conections", "connection options"
        )

    def test_reserveDescriptors(self):
        """
        C{--reserve-descriptors} takes a whole number, 0 or more.
        """
        self.assertEqual(self.parse("--listen", "lines=tcp:0")["reserve-descriptors"], 64)
        self.assertEqual(
            self.parse("--listen", "lines=tcp:0", "--reserve-descriptors", "0")[
                "reserve-descriptors"
            ],
            0,
        )
        # twisted.python.usage words coercion errors without the option.
        self.assertUsageError(
            ["--listen", "lines=tcp:0", "--reserve-descriptors", "-1"], "must not be negative"
        )
        self.assertUsageError(
            ["--listen", "lines=tcp:0", "--reserve-descriptors", "x"], "invalid literal"
        )

    def test_helpListsConnectionOptions(self):
        """
        C{--help} lists every connection option with its kind, and
        C{--reserve-descriptors}.
        """
        text = Options().getUsage()
        for option in CONNECTION_OPTIONS:
            self.assertIn(f"  {option.name}={option.kind}  ", text)
        self.assertIn("keepalive-idle=seconds", text)
        self.assertIn("--reserve-descriptors", text)
