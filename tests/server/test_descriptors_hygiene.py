# -*- test-case-name: tests.server.test_descriptors_hygiene -*-
"""
Tests for how a listener's connections use the
L{gateway.server.descriptors.DescriptorGuard}: every connection holds a
descriptor, and one accepted past the room is refused.
"""

from dataclasses import replace
from types import SimpleNamespace

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogPublisher
from twisted.trial.unittest import SynchronousTestCase

from gateway.server.descriptors import DESCRIPTORS, DescriptorGuard
from gateway.server.factory import listenerFactory
from tests.server.helpers import (
    FRAMINGS,
    Listener,
    captureLogs,
    eventsFrom,
    lose,
)


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

    def fullGuard(self):
        """
        A started guard with room for one connection.
        """
        guard = DescriptorGuard([], Clock(), reserve=0, publisher=LogPublisher())
        guard.start(limit=1, inUse=0)
        self.addCleanup(guard.stop)
        return guard

    def test_overRoomRefusalLogged(self):
        """
        The refusal goes through the listener's gate: counted, and logged
        with the peer and the descriptor capacity as the limit reached.
        """
        logs = captureLogs(self)
        guard = self.fullGuard()
        listener = Listener(descriptors=guard)
        listener.connect()
        listener.connect(port=40001)
        [line] = eventsFrom(logs, "gateway.server.gate", "warn")
        self.assertEqual(
            (line["reason"], line["limit"], line["peer"]),
            (DESCRIPTORS, guard.capacity, "10.0.0.1:40001"),
        )
        self.assertIsNotNone(guard.capacity)
        self.assertEqual(listener.stats.refused, {DESCRIPTORS: 1})

    def test_overRoomWithoutGate(self):
        """
        A listener without a gate counts each refusal itself.
        """
        listener = Listener()
        factory = listenerFactory(
            FRAMINGS["lines"], replace(listener.config, gate=None, descriptors=self.fullGuard())
        )
        transports = []
        for port in (1, 2, 3):
            protocol = factory.buildProtocol(None)
            transports.append(StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.1", port)))
            protocol.makeConnection(transports[-1])
        self.assertEqual([t.disconnecting for t in transports], [False, True, True])
        self.assertEqual(listener.stats.refused, {DESCRIPTORS: 2})
