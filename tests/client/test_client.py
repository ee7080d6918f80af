# -*- test-case-name: tests.client.test_client -*-
"""
L{GatewayClient} against a scripted endpoint and a L{Clock}: the handshake,
acknowledgements, refusals, the window, and resending after a reconnection.
"""

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from gateway.client import GatewayClient, MessageRefused, WindowFull
from tests.client.helpers import ScriptedEndpoint, drop, framing


class ClientTestsMixin:
    """
    A started client on a scripted endpoint, in the C{lines} framing.
    """

    def setUp(self):
        self.clock = Clock()
        self.endpoint = ScriptedEndpoint()

    def makeClient(self, codec=None, **kwargs):
        kwargs.setdefault("session", "s1")
        client = GatewayClient(self.endpoint, codec or framing(), clock=self.clock, **kwargs)
        client.start()
        self.addCleanup(client.stop)
        return client

    def connect(self):
        """
        Accept the pending attempt; return the connection's transport.
        """
        self.protocol, transport = self.endpoint.accept()
        return transport

    def reply(self, data):
        self.protocol.dataReceived(data)


class HandshakeTests(ClientTestsMixin, SynchronousTestCase):
    """
    What a client writes on a new connection.
    """

    def test_handshakeFirst(self):
        """
        A connection starts with C{SESSION <id> <first-seq>} in the framing,
        then the messages sent so far, in order.
        """
        client = self.makeClient()
        client.send(b"one")
        client.send(b"two")
        transport = self.connect()
        self.assertEqual(transport.value(), b"SESSION s1 1\none\ntwo\n")

    def test_sendWhileConnected(self):
        """
        A message sent while connected is written at once.
        """
        client = self.makeClient()
        transport = self.connect()
        transport.clear()
        client.send(b"now")
        self.assertEqual(transport.value(), b"now\n")

    def test_firstSeq(self):
        """
        A session carried on from an earlier run starts at the number given.
        """
        client = self.makeClient(session="dev-9", firstSeq=42)
        acked = client.send(b"x")
        transport = self.connect()
        self.assertEqual(transport.value(), b"SESSION dev-9 42\nx\n")
        self.reply(b"ACK 42\n")
        self.assertEqual(self.successResultOf(acked), 42)

    def test_otherFraming(self):
        """
        The handshake and the messages are framed in the listener's framing.
        """
        client = self.makeClient(framing("length-prefixed", **{"prefix-size": 2}))
        client.send(b"abc")
        transport = self.connect()
        self.assertEqual(transport.value(), b"\x00\x0cSESSION s1 1\x00\x03abc")
        self.reply(b"\x00\x05ACK 1")
        self.assertEqual(client.confirmed, 1)

    def test_randomSession(self):
        """
        Without a session id, each client makes its own.
        """
        first = GatewayClient(self.endpoint, framing(), clock=self.clock)
        second = GatewayClient(self.endpoint, framing(), clock=self.clock)
        self.assertNotEqual(first.session, second.session)

    def test_badArguments(self):
        """
        A bad session id, first number or window is refused at once.
        """
        for kwargs in ({"session": "a b"}, {"firstSeq": 0}, {"maxUnacked": 0}):
            self.assertRaises(
                ValueError, GatewayClient, self.endpoint, framing(), clock=self.clock, **kwargs
            )


class AckTests(ClientTestsMixin, SynchronousTestCase):
    """
    C{ACK} and C{NACK}.
    """

    def test_cumulative(self):
        """
        C{ACK k} confirms every message up to k: their L{Deferred}s fire
        with their numbers, later ones wait.
        """
        client = self.makeClient()
        self.connect()
        sent = [client.send(b"m%d" % i) for i in range(3)]
        self.reply(b"ACK 2\n")
        self.assertEqual([self.successResultOf(d) for d in sent[:2]], [1, 2])
        self.assertNoResult(sent[2])
        self.assertEqual((client.confirmed, client.unacknowledged), (2, 1))
        self.assertEqual(client.firstUnacknowledged, 3)

    def test_splitReplies(self):
        """
        Replies split over reads, or several in one, are all applied.
        """
        client = self.makeClient()
        self.connect()
        sent = [client.send(b"m") for _ in range(4)]
        self.reply(b"AC")
        self.reply(b"K 1\nACK 3")
        self.assertEqual(client.confirmed, 1)
        self.reply(b"\nACK 4\n")
        self.assertEqual([self.successResultOf(d) for d in sent], [1, 2, 3, 4])

    def test_nack(self):
        """
        C{NACK <seq> <reason>} fails that message's L{Deferred} with
        L{MessageRefused}; the acknowledgement then moves past it.
        """
        client = self.makeClient()
        self.connect()
        sent = [client.send(p) for p in (b"a", b"huge", b"c")]
        self.reply(b"NACK 2 too-large\nACK 3\n")
        self.assertEqual(self.successResultOf(sent[0]), 1)
        refused = self.failureResultOf(sent[1], MessageRefused).value
        self.assertEqual((refused.seq, refused.reason, refused.payload), (2, "too-large", b"huge"))
        self.assertEqual(self.successResultOf(sent[2]), 3)
        self.assertEqual(client.refused, [(2, "too-large")])
        self.assertEqual((client.confirmed, client.unacknowledged), (2, 0))

    def test_ackBeyondSent(self):
        """
        An C{ACK} for messages never sent confirms those sent and is logged.
        """
        logs = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        client = self.makeClient()
        self.connect()
        sent = client.send(b"a")
        self.reply(b"ACK 5\n")
        self.assertEqual(self.successResultOf(sent), 1)
        self.assertEqual(len(logs), 1)
        self.assertIn("not sent", logs[0]["log_format"])

    def test_malformedReply(self):
        """
        A reply that is neither C{ACK} nor C{NACK} is logged and ignored.
        """
        logs = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        client = self.makeClient()
        self.connect()
        client.send(b"a")
        self.reply(b"HELLO\nACK 1\n")
        self.assertEqual(client.confirmed, 1)
        self.assertEqual(len(logs), 1)
        self.assertIn("HELLO", logs[0]["error"])

    def test_badFraming(self):
        """
        Bytes that are not replies in the framing drop the connection, after
        applying the whole replies before them.
        """
        client = self.makeClient(framing("netstring"))
        transport = self.connect()
        client.send(b"a")
        self.reply(b"5:ACK 1,5:ACK 2;")
        self.assertEqual(client.confirmed, 1)
        self.assertTrue(transport.disconnecting)

    def test_oldConnection(self):
        """
        Replies read on a connection that is no longer the client's are
        ignored.
        """
        client = self.makeClient()
        self.connect()
        old = self.protocol
        client.send(b"a")
        drop(old, self.endpoint.connections[0][1])
        old.dataReceived(b"ACK 1\n")
        self.assertEqual(client.confirmed, 0)


class WindowTests(ClientTestsMixin, SynchronousTestCase):
    """
    At most C{maxUnacked} messages wait; the caller waits for room.
    """

    def test_full(self):
        """
        Sending into a full window raises L{WindowFull}; L{whenRoom} fires
        once an acknowledgement makes room.
        """
        client = self.makeClient(maxUnacked=2)
        self.connect()
        client.send(b"a")
        self.successResultOf(client.whenRoom())
        client.send(b"b")
        self.assertRaises(WindowFull, client.send, b"c")
        room = client.whenRoom()
        self.assertNoResult(room)
        self.reply(b"ACK 1\n")
        self.successResultOf(room)
        client.send(b"c")
        self.assertEqual(client.unacknowledged, 2)

    def test_roomPerMessage(self):
        """
        Each acknowledged message wakes one waiter; a waiter that gave up
        (cancelled) takes no room.
        """
        client = self.makeClient(maxUnacked=2)
        self.connect()
        client.send(b"a")
        client.send(b"b")
        gaveUp, first, second, third = (client.whenRoom() for _ in range(4))
        gaveUp.cancel()
        self.failureResultOf(gaveUp)
        self.reply(b"ACK 1\n")
        self.successResultOf(first)
        self.assertNoResult(second)
        self.reply(b"ACK 2\n")
        self.successResultOf(second)
        self.successResultOf(third)

    def test_wokenWaiterFillsTheWindow(self):
        """
        A waiter woken by an acknowledgement that sends until the window is
        full again (as a loop of C{yield whenRoom(); send()} does) leaves
        the next waiter waiting, rather than having it woken into a full
        window.
        """
        client = self.makeClient(maxUnacked=3)
        self.connect()
        for payload in (b"a", b"b", b"c"):
            client.send(payload)
        sent = []

        def fill(_):
            sent.append(client.nextSeq)
            client.send(b"x")
            return client.whenRoom().addCallback(fill)

        first = client.whenRoom().addCallback(fill)
        self.assertNoResult(first)
        self.reply(b"ACK 2\n")
        self.assertEqual(sent, [4, 5])
        self.assertEqual(client.unacknowledged, 3)
        self.reply(b"ACK 3\n")
        self.assertEqual(sent, [4, 5, 6])

    def test_whenAllAcknowledged(self):
        """
        L{whenAllAcknowledged} fires once nothing waits: at once when
        nothing was sent, else at the acknowledgement (or refusal) of the
        last message.
        """
        client = self.makeClient()
        self.successResultOf(client.whenAllAcknowledged())
        self.connect()
        client.send(b"a")
        sent = client.send(b"b")
        drained = client.whenAllAcknowledged()
        self.reply(b"ACK 1\n")
        self.assertNoResult(drained)
        self.reply(b"NACK 2 not-authorised\n")
        self.successResultOf(drained)
        self.failureResultOf(sent, MessageRefused)


class ReconnectTests(ClientTestsMixin, SynchronousTestCase):
    """
    After a failure: reconnect with backoff, resume the session, resend.
    """

    def test_resendUnacknowledged(self):
        """
        A new connection announces the first unacknowledged number and
        resends from it, in order; acknowledgements then count on.
        """
        client = self.makeClient()
        first = self.connect()
        sent = [client.send(b"m%d" % i) for i in range(1, 6)]
        self.reply(b"ACK 2\n")
        drop(self.protocol, first)
        self.assertEqual(client.unacknowledged, 3)
        self.assertEqual(self.endpoint.attempts, [])
        self.clock.advance(60)
        second = self.connect()
        self.assertEqual(second.value(), b"SESSION s1 3\nm3\nm4\nm5\n")
        late = client.send(b"m6")
        self.assertEqual(second.value()[-3:], b"m6\n")
        self.reply(b"ACK 6\n")
        self.assertEqual([self.successResultOf(d) for d in sent + [late]], [1, 2, 3, 4, 5, 6])

    def test_nothingToResend(self):
        """
        With everything acknowledged, a new connection announces the next
        number and resends nothing.
        """
        client = self.makeClient()
        first = self.connect()
        client.send(b"a")
        self.reply(b"ACK 1\n")
        drop(self.protocol, first)
        self.clock.advance(60)
        self.assertEqual(self.connect().value(), b"SESSION s1 2\n")

    def test_sentWhileDisconnected(self):
        """
        Messages sent between connections wait for the next one.
        """
        client = self.makeClient()
        first = self.connect()
        drop(self.protocol, first)
        client.send(b"meanwhile")
        self.clock.advance(60)
        self.assertEqual(self.connect().value(), b"SESSION s1 1\nmeanwhile\n")

    def test_backoff(self):
        """
        Failed attempts are retried after growing delays, from the policy
        given, until one connects.
        """
        delays = []

        def policy(attempt):
            delays.append(attempt)
            return 2.0**attempt

        client = self.makeClient(retryPolicy=policy)
        client.send(b"a")
        self.endpoint.refuse()
        self.assertEqual(self.endpoint.attempts, [])
        self.clock.advance(2.0)
        self.endpoint.refuse()
        self.clock.advance(3.9)
        self.assertEqual(self.endpoint.attempts, [])
        self.clock.advance(0.1)
        self.assertEqual(self.connect().value(), b"SESSION s1 1\na\n")
        self.assertEqual(delays, [1, 2])

    def test_whenConnectedFails(self):
        """
        L{whenConnected} with C{failAfterFailures} fails with the
        connection's error, as L{ClientService} does.
        """
        from twisted.internet.error import ConnectionRefusedError

        client = self.makeClient()
        connected = client.whenConnected(failAfterFailures=1)
        self.endpoint.refuse()
        self.failureResultOf(connected, ConnectionRefusedError)

    def test_stop(self):
        """
        L{stop} disconnects and stops reconnecting; what is unacknowledged
        stays.
        """
        client = self.makeClient()
        transport = self.connect()
        client.send(b"a")
        stopped = client.stop()
        self.assertTrue(transport.disconnecting)
        drop(self.protocol, transport)
        self.successResultOf(stopped)
        self.clock.advance(600)
        self.assertEqual(self.endpoint.attempts, [])
        self.assertEqual(client.unacknowledged, 1)
