# -*- test-case-name: tests.client.test_blocking -*-
"""
L{BlockingClient} on a L{MemoryReactorClock}, its calls into the reactor
made synchronous: each step the test scripts runs while a call would block.
(The real reactor thread is exercised by C{tests/client/test_send.py},
which runs C{gateway-send} in a process of its own.)
"""

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, UNIXClientEndpoint
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from gateway.client import BlockingClient, ConnectFailed, clientEndpoint
from gateway.framing import OptionError

ADDRESS = "tcp:host=127.0.0.1:port=9000"


class BlockingTests(SynchronousTestCase):
    """
    Connect, send, flush, close.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()
        #: What happens, in order, while a call waits.
        self.whileBlocked = []

    def call(self, f, *args):
        """
        Run C{f} "in the reactor thread", and the scripted steps until its
        L{Deferred} has a result.
        """
        result = f(*args)
        if not isinstance(result, Deferred):
            return result
        outcome = []
        result.addBoth(outcome.append)
        while not outcome and self.whileBlocked:
            self.whileBlocked.pop(0)()
        self.assertTrue(outcome, "the call would block for ever")
        if isinstance(outcome[0], Failure):
            outcome[0].raiseException()
        return outcome[0]

    def accept(self):
        _, _, factory, _, _ = self.reactor.tcpClients[-1]
        self.protocol = factory.buildProtocol(None)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def refuse(self):
        _, _, factory, _, _ = self.reactor.tcpClients[-1]
        factory.clientConnectionFailed(
            self.reactor.connectors[-1], Failure(ConnectionRefusedError("111"))
        )

    def lose(self):
        from twisted.internet.error import ConnectionDone

        self.protocol.connectionLost(Failure(ConnectionDone()))

    def reply(self, data):
        return lambda: self.protocol.dataReceived(data)

    def connect(self, **kwargs):
        self.whileBlocked.append(self.accept)
        client = BlockingClient(ADDRESS, reactor=self.reactor, call=self.call, **kwargs)
        self.addCleanup(self.reactor.advance, 0)
        return client

    def test_sendAndFlush(self):
        """
        L{BlockingClient.send} returns each message's number;
        L{BlockingClient.flush} waits for the acknowledgements and says what
        became of every message.
        """
        client = self.connect(session="b1")
        self.assertEqual([client.send(b"a"), client.send(b"b"), client.send(b"c")], [1, 2, 3])
        self.assertEqual(self.transport.value(), b"SESSION b1 1\na\nb\nc\n")
        self.whileBlocked.append(self.reply(b"ACK 1\nNACK 2 too-large\nACK 3\n"))
        outcome = client.flush()
        self.assertEqual(
            (outcome.sent, outcome.confirmed, outcome.refused, outcome.unacknowledged),
            (3, 2, [(2, "too-large")], 0),
        )

    def test_sendWaitsForRoom(self):
        """
        With the window full, L{BlockingClient.send} waits for an
        acknowledgement.
        """
        client = self.connect(maxUnacked=1)
        client.send(b"a")
        self.whileBlocked.append(self.reply(b"ACK 1\n"))
        self.assertEqual(client.send(b"b"), 2)
        self.assertEqual(self.whileBlocked, [])

    def test_sendTimesOut(self):
        """
        With no room within the timeout, L{BlockingClient.send} raises
        L{TimeoutError} and the message is not sent.
        """
        client = self.connect(maxUnacked=1)
        client.send(b"a")
        self.whileBlocked.append(lambda: self.reactor.advance(5))
        e = self.assertRaises(TimeoutError, client.send, b"b", timeout=5)
        self.assertIn("5 s", str(e))
        self.assertEqual(client.client.nextSeq, 2)

    def test_flushTimesOut(self):
        """
        L{BlockingClient.flush} gives up after its timeout, counting what is
        still unacknowledged.
        """
        client = self.connect()
        client.send(b"a")
        client.send(b"b")
        self.protocol.dataReceived(b"ACK 1\n")
        self.whileBlocked.append(lambda: self.reactor.advance(2))
        outcome = client.flush(timeout=2)
        self.assertEqual((outcome.confirmed, outcome.unacknowledged), (1, 1))

    def test_connectRefused(self):
        """
        A first connection that fails raises L{ConnectFailed} naming the
        address and the reason, and the client stops trying.
        """
        self.whileBlocked.extend([self.refuse, lambda: self.reactor.advance(0)])
        e = self.assertRaises(
            ConnectFailed, BlockingClient, ADDRESS, reactor=self.reactor, call=self.call
        )
        self.assertTrue(str(e).startswith(f"cannot connect to {ADDRESS}: "), str(e))
        self.assertIn("refused", str(e))
        attempts = len(self.reactor.tcpClients)
        self.reactor.advance(600)
        self.assertEqual(len(self.reactor.tcpClients), attempts)

    def test_connectTimeout(self):
        """
        No connection within C{connectTimeout}: L{ConnectFailed} says so.
        """
        self.whileBlocked.extend(
            [lambda: self.reactor.advance(3), lambda: self.reactor.advance(0)]
        )
        e = self.assertRaises(
            ConnectFailed,
            BlockingClient,
            ADDRESS,
            reactor=self.reactor,
            call=self.call,
            connectTimeout=3,
        )
        self.assertEqual(str(e), f"cannot connect to {ADDRESS}: no connection within 3 s")

    def test_framingSpec(self):
        """
        The framing may be given as C{NAME(OPTIONS)}; a bad one is an
        L{OptionError} before any connection.
        """
        client = self.connect(framing="netstring", session="n")
        client.send(b"hi")
        self.assertEqual(self.transport.value(), b"11:SESSION n 1,2:hi,")
        self.assertRaises(
            OptionError, BlockingClient, ADDRESS, framing="chunks", reactor=self.reactor
        )

    def test_contextManager(self):
        """
        Leaving the C{with} block closes the connection.
        """
        with self.connect() as client:
            self.assertEqual(client.session, client.client.session)
            self.whileBlocked.append(self.lose)
        self.assertTrue(self.transport.disconnecting)


class EndpointTests(SynchronousTestCase):
    """
    L{clientEndpoint}: C{HOST:PORT} or an endpoint description.
    """

    def test_hostPort(self):
        """
        C{HOST:PORT}, with an IPv6 host in brackets, is a
        L{HostnameEndpoint}.
        """
        reactor = MemoryReactorClock()
        for address, host in [("gw.example:9000", b"gw.example"), ("[::1]:9000", b"::1")]:
            endpoint = clientEndpoint(reactor, address)
            self.assertIsInstance(endpoint, HostnameEndpoint)
            self.assertEqual((endpoint._hostBytes, endpoint._port), (host, 9000))

    def test_description(self):
        """
        Anything else is a client endpoint description.
        """
        reactor = MemoryReactorClock()
        self.assertIsInstance(clientEndpoint(reactor, "tcp:127.0.0.1:9000"), TCP4ClientEndpoint)
        self.assertIsInstance(clientEndpoint(reactor, "unix:/run/gw.sock"), UNIXClientEndpoint)
