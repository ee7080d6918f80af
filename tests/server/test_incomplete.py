# -*- test-case-name: tests.server.test_incomplete -*-
"""
Tests for L{gateway.server.incomplete}: the cap on bytes of incomplete
frames, on fake connections and on real framings.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from gateway.server.incomplete import INCOMPLETE_CAP, IncompleteCap, defaultCap
from tests.server.helpers import Listener, captureLogs, eventsFrom, lose


class Holder:
    """
    A connection holding some bytes of an incomplete frame.
    """

    def __init__(self, held):
        self.held = held
        self.abandoned = None

    def bufferedByteCount(self):
        return self.held

    def abandon(self, reason):
        self.abandoned = reason
        held, self.held = self.held, 0
        return held


class IncompleteCapTests(SynchronousTestCase):
    """
    L{IncompleteCap.check}.
    """

    def test_defaultIsHalfTheBudget(self):
        """
        Without a cap given, it is half the budget.
        """
        self.assertEqual(IncompleteCap(1000).cap, defaultCap(1000))
        self.assertEqual(defaultCap(64 * 1024 * 1024), 32 * 1024 * 1024)
        self.assertEqual(IncompleteCap(1000, 10).cap, 10)

    def test_underTheCap(self):
        """
        At or under the cap nothing is closed; the total is remembered.
        """
        cap = IncompleteCap(1000, 100)
        holders = [Holder(60), Holder(40)]
        self.assertEqual(cap.check(holders), 0)
        self.assertEqual([h.abandoned for h in holders], [None, None])
        self.assertEqual(cap.lastBytes, 100)

    def test_biggestHoldersClosed(self):
        """
        Over the cap, the connections holding the most are closed, biggest
        first, until the rest is within the cap; the others stay.
        """
        cap = IncompleteCap(1000, 80)
        holders = [Holder(10), Holder(70), Holder(0), Holder(50), Holder(30)]
        self.assertEqual(cap.check(holders), 2)
        self.assertEqual(
            [h.abandoned for h in holders], [None, INCOMPLETE_CAP, None, INCOMPLETE_CAP, None]
        )
        self.assertEqual((cap.lastBytes, cap.closed), (40, 2))

    def test_loggedOncePerInterval(self):
        """
        A round of closes is one warning with the count, the bytes dropped,
        the total and the cap; rounds within the interval after it are
        summed up in the next line.
        """
        events = captureLogs(self)
        clock = Clock()
        cap = IncompleteCap(1000, 100, clock)
        cap.check([Holder(80), Holder(80), Holder(80)])
        clock.advance(5)
        cap.check([Holder(80), Holder(80)])
        cap.check([Holder(80), Holder(80)])
        clock.advance(5)
        cap.check([Holder(80), Holder(80)])
        first, second = eventsFrom(events, "gateway.server.incomplete", "warn")
        fields = ("count", "dropped", "largest", "total", "cap", "reason", "since", "rounds")
        self.assertEqual(
            {k: first[k] for k in fields},
            {
                "count": 2,
                "dropped": 160,
                "largest": 80,
                "total": 240,
                "cap": 100,
                "reason": INCOMPLETE_CAP,
                "since": 2,
                "rounds": 1,
            },
        )
        self.assertEqual((second["count"], second["since"], second["rounds"]), (1, 3, 3))
        self.assertEqual(cap.closed, 5)


class AbandonTests(SynchronousTestCase):
    """
    The cap closes real framing connections through their C{abandon}.
    """

    def test_realConnections(self):
        """
        Over the cap, the connection with the longest incomplete line is
        closed and counted in C{closedBy}; its whole lines were published
        before, nothing partial is, and its close does not count an
        C{incomplete} frame error.
        """
        listener = Listener()
        big, bigTransport = listener.connect(port=40001)
        small, smallTransport = listener.connect(port=40002)
        big.dataReceived(b"whole\n" + b"x" * 900)
        small.dataReceived(b"y" * 100)
        cap = IncompleteCap(10_000, 500)
        self.assertEqual(cap.check([big, small]), 1)
        self.assertEqual((bigTransport.disconnecting, smallTransport.disconnecting), (True, False))
        lose(big)
        self.assertEqual(listener.stats.closedBy, {INCOMPLETE_CAP: 1})
        self.assertEqual(listener.stats.frameErrors, {})
        self.assertEqual([p for _, p in listener.sink.messages], [b"whole"])
        small.dataReceived(b"\n")
        self.assertEqual([p for _, p in listener.sink.messages], [b"whole", b"y" * 100])

    def test_pausedWholeFramesPublished(self):
        """
        A paused connection closed by the cap publishes the whole frames it
        buffered, then drops the incomplete one.
        """
        listener = Listener()
        protocol, transport = listener.connect()
        protocol.pauseProducing()
        protocol.dataReceived(b"a\nb\n" + b"z" * 600)
        self.assertEqual(protocol.abandon(INCOMPLETE_CAP), 600)
        self.assertEqual([p for _, p in listener.sink.messages], [b"a", b"b"])
        self.assertEqual(protocol.bufferedByteCount(), 0)
        self.assertEqual(protocol.abandon(INCOMPLETE_CAP), 0)
        self.assertEqual(listener.stats.closedBy, {INCOMPLETE_CAP: 1})

    def test_badInputFoundWhenAbandoning(self):
        """
        A paused connection whose buffered bytes turn out to be bad input
        when the cap closes it is closed for that bad input: nothing is
        dropped for the cap, nor counted for it.
        """
        listener = Listener()
        protocol, _ = listener.connect()
        protocol.pauseProducing()
        protocol.dataReceived(b"a\n" + b"z" * 2000)
        self.assertEqual(protocol.abandon(INCOMPLETE_CAP), 0)
        self.assertEqual([p for _, p in listener.sink.messages], [b"a"])
        self.assertEqual(listener.stats.closedBy, {})
        self.assertEqual(listener.stats.frameErrors, {"too-large": 1})
