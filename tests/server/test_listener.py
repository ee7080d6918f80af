"""
Tests for L{gateway.server.listener}: a listener sharing the descriptor room
with others never accepts more connections in one read of its listening
socket than there is room for, so no client waiting in the accept queue is
refused for C{descriptors} while room frees up.

These tests drive Twisted's real C{tcp.Port} accept code on a real
listening socket on loopback, with real client sockets, on a controlled
reactor: the test calls the port's and the connections' C{doRead} itself,
in the orders a real reactor may call them, instead of running a reactor.
"""

import random
import resource
import select
import socket
import struct
import sys
from unittest import SkipTest

from twisted.internet import defer, error, tcp
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IHalfCloseableDescriptor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from gateway.compat.twisted import acceptBatch, beforeEachAcceptBatch, setAcceptBatch
from gateway.framing.options import resolveOptions
from gateway.registry import loadFramings
from gateway.server.descriptors import DESCRIPTORS, DescriptorGuard
from gateway.server.factory import listenerFactory
from gateway.server.gate import ListenerGate
from gateway.server.listener import ListenerConfig, ListenerService, ListenerStats
from gateway.server.policy import ConnectionPolicy
from gateway.testing import RecordingSink
from tests.support.waiting import waitFor

LINES = loadFramings()["lines"]

#: Seconds a polling wait gives the kernel (loopback, so far more than it
#: needs even on a loaded machine).
DEADLINE = 30.0


def acceptQueue(listening):
    """
    :return: the connections waiting in a Linux listening socket's accept
        queue (C{TCP_INFO}'s C{tcpi_unacked} for a listening socket).
    """
    info = listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return struct.unpack_from("8B6I", info)[12]


def waitReadable(skt):
    """
    Wait until a socket is readable (data or end of stream), or fail after
    L{DEADLINE} seconds.
    """
    readable, _, _ = select.select([skt], [], [], DEADLINE)
    if not readable:
        raise AssertionError(f"timed out waiting for {skt!r} to be readable")


class LoopbackEndpoint:
    """
    A server endpoint listening with Twisted's real C{tcp.Port} on
    127.0.0.1, on the given reactor.
    """

    def __init__(self, reactor):
        self.reactor = reactor

    def listen(self, factory):
        port = tcp.Port(0, factory, 50, "127.0.0.1", self.reactor)
        port.startListening()
        return defer.succeed(port)


class Gateway:
    """
    Listeners of the C{lines} framing sharing one L{DescriptorGuard}, on a
    L{MemoryReactorClock} the test iterates by hand, with clients on
    loopback.

    :ivar services: the L{ListenerService}s.
    :ivar sink: where every listener's messages go.
    :ivar connections: the gateway's side of every accepted connection
        (C{tcp.Server}), by the client's port and the listener's (clients of
        two listeners may share a port number).
    :ivar clientPorts: those two ports, by client socket.
    """

    def __init__(self, testCase, capacity, listeners=1):
        if not sys.platform.startswith("linux"):
            raise SkipTest("reads the accept queue's length from Linux's TCP_INFO")
        self.testCase = testCase
        self.reactor = MemoryReactorClock()
        self.sink = RecordingSink()
        self.guard = DescriptorGuard([], self.reactor, reserve=0, publisher=LogPublisher())
        self.services = []
        self.connections = {}
        self.clients = []
        self.clientPorts = {}
        for index in range(listeners):
            service = self._listener(f"l{index}")
            self.guard.listeners.append(service)
            self.services.append(service)
        self.guard.start(limit=capacity, inUse=0)
        testCase.addCleanup(self.stop)

    def _listener(self, name):
        stats = ListenerStats()
        policy = ConnectionPolicy.fromOptions({}, "tcp:0")
        config = ListenerConfig(
            name=name,
            framing=LINES.name,
            endpoint="tcp:0",
            sink=self.sink,
            maxMessageSize=1024,
            options=resolveOptions(LINES, {}, 1024),
            clock=self.reactor,
            stats=stats,
            gate=ListenerGate(name, policy, stats, self.reactor, 10.0),
            descriptors=self.guard,
        )
        service = ListenerService(
            config, LoopbackEndpoint(self.reactor), listenerFactory(LINES, config)
        )
        service.startService()
        return service

    def stop(self):
        """
        Close every connection and stop listening (again: nothing).
        """
        if self.reactor is None:
            return
        self.guard.stop()
        for connection in list(self.connections.values()):
            if connection.connected:
                self._lost(connection, error.ConnectionDone(), False)
        for service in self.services:
            service.stopService()
        self.reactor.advance(0)
        for client in self.clients:
            client.close()
        self.reactor = None

    @property
    def refused(self):
        """
        The connections refused, by reason, over every listener.
        """
        total = {}
        for service in self.services:
            for reason, count in service.config.stats.refused.items():
                total[reason] = total.get(reason, 0) + count
        return total

    def connect(self, listener=0, line=None):
        """
        Connect one client, and send it a line if given.

        :return: the client's socket.
        """
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.clients.append(client)
        client.connect(self.services[listener].port.socket.getsockname())
        self.clientPorts[client] = (client.getsockname()[1], client.getpeername()[1])
        if line is not None:
            client.sendall(line + b"\n")
        return client

    def waitQueued(self, listener, count):
        """
        Wait until C{count} connections wait in the listener's accept queue.
        """
        listening = self.services[listener].port.socket
        waitFor(
            lambda: acceptQueue(listening) == count, DEADLINE, f"{count} connections queued", 0.001
        )

    def queued(self, listener):
        return acceptQueue(self.services[listener].port.socket)

    def accept(self, listener=0):
        """
        Read the listening socket once, as the reactor does when it is
        readable and the port is reading; then close what the gateway
        closed at once.

        :return: whether the reactor would have read it (the port is
            reading and connections wait).
        """
        port = self.services[listener].port
        if port not in self.reactor.readers or not self.queued(listener):
            return False
        port.doRead()
        for connection in self.reactor.readers | self.reactor.writers:
            if isinstance(connection, tcp.Server):
                key = (connection.getPeer().port, connection.getHost().port)
                self.connections.setdefault(key, connection)
        self.flushWrites()
        return True

    def flushWrites(self):
        """
        Let every connection the gateway is closing close, as the reactor
        does when their sockets are writable.
        """
        for connection in list(self.reactor.writers):
            why = connection.doWrite()
            if why is not None:
                self._lost(connection, why, False)

    def read(self, client):
        """
        Read what the gateway's side of C{client}'s connection has to read
        (a line, or the client's close), as the reactor does when the
        socket is readable.
        """
        connection = self.connections[self.clientPorts[client]]
        self.testCase.assertIn(connection, self.reactor.readers)
        waitReadable(connection.socket)
        why = connection.doRead()
        if why is not None:
            self._lost(connection, why, True)
        self.flushWrites()

    def close(self, client):
        """
        Close a client and let the gateway see it.
        """
        client.close()
        self.read(client)

    def _lost(self, connection, why, reading):
        # As twisted.internet.posixbase's _disconnectSelectable.
        self.reactor.removeReader(connection)
        failure = Failure(why)
        if (
            reading
            and why.__class__ is error.ConnectionDone
            and IHalfCloseableDescriptor.providedBy(connection)
        ):
            connection.readConnectionLost(failure)
        else:
            self.reactor.removeWriter(connection)
            connection.connectionLost(failure)

    def accepted(self, client):
        return self.clientPorts[client] in self.connections

    def fill(self, count, listener=0):
        """
        Connect C{count} clients that send nothing and let the listener
        accept them in one read.

        :return: their sockets.
        """
        clients = [self.connect(listener) for _ in range(count)]
        self.waitQueued(listener, count)
        self.testCase.assertTrue(self.accept(listener))
        self.testCase.assertEqual([self.accepted(c) for c in clients], [True] * count)
        return clients


class AcceptWithinRoomTests(SynchronousTestCase):
    """
    Clients waiting in the accept queue while the descriptor room is full
    are all accepted as room frees up, whatever the order in which the
    reactor sees the closes and reads the listening sockets: none is
    refused for C{descriptors}, so no line they sent is lost.
    """

    def waitingClients(self, gateway, count, listener=0, prefix=b"w"):
        clients = {}
        for index in range(count):
            line = b"%s%d" % (prefix, index)
            clients[line] = gateway.connect(listener, line)
        gateway.waitQueued(listener, count)
        return clients

    def drain(self, gateway, held, waiting):
        """
        Close the remaining held clients one at a time, reading every
        listening socket after each close; then read every accepted waiting
        client's line.  Every waiting client must have been accepted.
        """
        for client in held:
            gateway.close(client)
            for listener in range(len(gateway.services)):
                gateway.accept(listener)
        for listener in range(len(gateway.services)):
            while gateway.accept(listener):
                pass
        for client in waiting.values():
            if (
                gateway.accepted(client)
                and gateway.connections[gateway.clientPorts[client]].connected
            ):
                gateway.read(client)

    def assertEveryLine(self, gateway, waiting):
        self.assertEqual(gateway.refused, {})
        self.assertEqual(
            [gateway.queued(i) for i in range(len(gateway.services))], [0] * len(gateway.services)
        )
        self.assertEqual([line for line, c in waiting.items() if not gateway.accepted(c)], [])
        self.assertEqual(sorted(m for _, m in gateway.sink.messages), sorted(waiting))

    def closesThenAccepts(self, seen):
        """
        The room (30) is full and 30 clients wait, each having sent a line.
        The gateway sees C{seen} closes, resuming at the first, before the
        reactor reads the listening socket, and reads it again afterwards.
        """
        gateway = Gateway(self, capacity=30)
        held = gateway.fill(30)
        waiting = self.waitingClients(gateway, 30)
        for client in held[:seen]:
            gateway.close(client)
        self.assertTrue(gateway.accept())
        gateway.accept()
        self.assertEqual(gateway.refused, {})
        self.assertEqual(gateway.guard.open, 30)
        self.drain(gateway, held[seen:], waiting)
        self.assertEveryLine(gateway, waiting)

    def test_twoClosesSeen(self):
        """
        Two closes seen before the listener reads: no refusal.
        """
        self.closesThenAccepts(2)

    def test_fiveClosesSeen(self):
        """
        Five closes seen before the listener reads (the order that lost 17
        lines of 369 in the integration test): no refusal.
        """
        self.closesThenAccepts(5)

    def test_twentyOneClosesSeen(self):
        """
        Twenty-one closes seen before the listener reads: no refusal.
        """
        self.closesThenAccepts(21)

    def test_closesBetweenReads(self):
        """
        Closes seen one or two at a time between reads of the listening
        socket: no refusal, and the room is full again after each read.
        """
        gateway = Gateway(self, capacity=30)
        held = gateway.fill(30)
        waiting = self.waitingClients(gateway, 30)
        for step in (1, 2, 1, 3, 2):
            for _ in range(step):
                gateway.close(held.pop(0))
            gateway.accept()
            gateway.accept()
            self.assertEqual((gateway.guard.open, gateway.refused), (30, {}))
        self.drain(gateway, held, waiting)
        self.assertEveryLine(gateway, waiting)

    def test_listenersShareTheRoom(self):
        """
        Two listeners share the room: after closes, both read their
        listening sockets in turn, and together they accept no more than
        there is room for.
        """
        gateway = Gateway(self, capacity=30, listeners=2)
        held = gateway.fill(30, listener=0)
        waiting = self.waitingClients(gateway, 15, 0, b"a")
        waiting.update(self.waitingClients(gateway, 15, 1, b"b"))
        for client in held[:6]:
            gateway.close(client)
        for listener in (0, 1, 0, 1, 1, 0):
            gateway.accept(listener)
        self.assertEqual((gateway.guard.open, gateway.refused), (30, {}))
        self.drain(gateway, held[6:], waiting)
        self.assertEveryLine(gateway, waiting)

    def test_randomOrders(self):
        """
        Closes and reads of two listening sockets in random (seeded)
        orders: never a refusal, never more connections than the room.
        """
        for seed in range(8):
            rng = random.Random(seed)
            gateway = Gateway(self, capacity=25, listeners=2)
            held = gateway.fill(25, listener=0)
            waiting = self.waitingClients(gateway, 12, 0, b"a")
            waiting.update(self.waitingClients(gateway, 12, 1, b"b"))
            while held:
                if rng.random() < 0.5:
                    gateway.close(held.pop(rng.randrange(len(held))))
                else:
                    gateway.accept(rng.randrange(2))
                self.assertLessEqual(gateway.guard.open, 25)
                self.assertEqual(gateway.refused, {}, f"seed {seed}")
            self.drain(gateway, held, waiting)
            self.assertEveryLine(gateway, waiting)
            gateway.stop()


class FitAcceptBatchTests(SynchronousTestCase):
    """
    How a listener sets each accept batch from the descriptor room.
    """

    def test_noRoomAcceptsNothing(self):
        """
        Read with no room left (the room shrank after a recount, or another
        listener filled it in the same reactor iteration), the listener
        accepts nothing and every listener stops accepting for
        C{descriptors}; a close lets the client in.
        """
        gateway = Gateway(self, capacity=4, listeners=2)
        held = gateway.fill(2)
        waiting = gateway.connect(0, b"late")
        gateway.waitQueued(0, 1)
        gateway.guard.capacity = 2
        self.assertTrue(gateway.accept(0))
        self.assertEqual((gateway.accepted(waiting), gateway.queued(0)), (False, 1))
        self.assertEqual([s.pausedFor for s in gateway.services], [{DESCRIPTORS}] * 2)
        gateway.close(held[0])
        self.assertTrue(gateway.accept(0))
        gateway.read(waiting)
        self.assertEqual(gateway.sink.messages[-1][1], b"late")
        self.assertEqual(gateway.refused, {})

    def test_batchGrowsWithinRoom(self):
        """
        With room to spare, Twisted's batch is left as it is and grows as
        Twisted grows it (by 20 after a full batch); it is lowered to the
        room only when larger.
        """
        gateway = Gateway(self, capacity=100)
        port = gateway.services[0].port
        setAcceptBatch(port, 2)
        gateway.fill(2)
        self.assertEqual(acceptBatch(port), 22)
        clients = [gateway.connect() for _ in range(5)]
        gateway.waitQueued(0, 5)
        gateway.accept()
        self.assertEqual([gateway.accepted(c) for c in clients], [True] * 5)
        self.assertEqual(acceptBatch(port), 5)
        setAcceptBatch(port, 200)
        gateway.connect()
        gateway.waitQueued(0, 1)
        gateway.accept()
        self.assertEqual(acceptBatch(port), 1)
        self.assertEqual(gateway.guard.open, 8)

    def test_unguardedListenerUntouched(self):
        """
        A listener without a descriptor guard, or whose guard has no limit,
        leaves its port's batches alone.
        """
        gateway = Gateway(self, capacity=resource.RLIM_INFINITY)
        port = gateway.services[0].port
        setAcceptBatch(port, 3)
        clients = [gateway.connect() for _ in range(4)]
        gateway.waitQueued(0, 4)
        gateway.accept()
        self.assertEqual([gateway.accepted(c) for c in clients], [True, True, True, False])
        self.assertEqual(acceptBatch(port), 23)
        config = ListenerConfig(
            name="u", framing="lines", endpoint="tcp:0", sink=None, maxMessageSize=10
        )
        service = ListenerService(config, LoopbackEndpoint(MemoryReactorClock()), Factory())
        service.startService()
        self.addCleanup(service.port.socket.close)
        self.assertNotIn("doRead", vars(service.port))


class CompatTests(SynchronousTestCase):
    """
    L{gateway.compat.twisted.beforeEachAcceptBatch} and what it relies on in
    the installed Twisted's C{tcp.Port.doRead}.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.built = []
        factory = Factory.forProtocol(Protocol)
        factory.buildProtocol = self.buildProtocol
        self.factory = factory
        self.port = LoopbackEndpoint(self.reactor).listen(factory).result
        self.addCleanup(self.port.socket.close)
        self.clients = []
        self.onBuild = None

    def tearDown(self):
        for client in self.clients:
            client.close()
        for connection in self.reactor.readers | self.reactor.writers:
            if isinstance(connection, tcp.Server):
                connection.socket.close()

    def buildProtocol(self, address):
        self.built.append(address)
        if self.onBuild is not None:
            self.onBuild()
        return Protocol()

    def queue(self, count):
        for _ in range(count):
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.clients.append(client)
            client.connect(self.port.socket.getsockname())
        waitFor(lambda: acceptQueue(self.port.socket) == count, DEADLINE, f"{count} queued", 0.001)

    def test_batchReadAtStartAndGrown(self):
        """
        One C{doRead} accepts as many connections as the batch says, read
        once at its start (stopping the port midway does not end it), and
        grows the batch by 20 after a full one.
        """
        setAcceptBatch(self.port, 3)
        self.queue(5)
        self.onBuild = self.port.stopReading
        self.port.doRead()
        self.assertEqual((len(self.built), acceptBatch(self.port)), (3, 23))
        self.assertEqual(acceptQueue(self.port.socket), 2)

    def test_hookBeforeEachBatch(self):
        """
        The hook runs before each read, when the batch can still be set;
        returning L{False}, nothing is accepted.
        """
        answers = [False, True]
        hooked = []

        def hook():
            hooked.append(len(self.built))
            setAcceptBatch(self.port, 2)
            return answers.pop(0)

        self.assertTrue(beforeEachAcceptBatch(self.port, hook))
        self.queue(3)
        self.port.doRead()
        self.assertEqual((hooked, self.built), ([0], []))
        self.port.doRead()
        self.assertEqual((hooked, len(self.built)), ([0, 0], 2))

    def test_portWithoutBatches(self):
        """
        A port without accept batches is left alone.
        """
        port = object()
        self.assertFalse(beforeEachAcceptBatch(port, lambda: True))


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
