# -*- test-case-name: tests.server.test_hostile -*-
"""
Tests for the hostile-client defences of L{gateway.server.hygiene} and
L{gateway.server.gate}: the C{frame-timeout} (slowloris) on a L{Clock} and
the C{allow} list, on real framings built as
L{gateway.service.GatewayService.addListener} builds them.
"""

from twisted.trial.unittest import SynchronousTestCase

from gateway.server.hygiene import FRAME_TICKS
from gateway.server.policy import FRAME_TIMEOUT, NOT_ALLOWED
from tests.server.helpers import Listener, captureLogs, eventsFrom, lose


class FrameTimeoutTests(SynchronousTestCase):
    """
    C{frame-timeout}: a frame must complete within that many seconds of its
    first byte (closed between 1 and 1 + 1/L{FRAME_TICKS} timeouts).
    """

    def test_trickleClosed(self):
        """
        A client trickling one byte a second never completes its line: it is
        closed once the line is older than the timeout, counted as
        C{frame-timeout}, and nothing partial is published nor counted as a
        frame error.
        """
        listener = Listener({"frame-timeout": "8"})
        protocol, transport = listener.connect()
        for _ in range(8):
            protocol.dataReceived(b"x")
            listener.clock.advance(1)
        self.assertFalse(transport.disconnecting)
        listener.clock.advance(8 / FRAME_TICKS)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(listener.stats.closedBy, {FRAME_TIMEOUT: 1})
        lose(protocol)
        self.assertEqual(listener.stats.frameErrors, {})
        self.assertEqual(payloads(listener), [])

    def test_bounds(self):
        """
        A line started at once is still open just before the timeout and
        closed by 1 + 1/FRAME_TICKS timeouts (on a clock advanced in steps
        of 10 ms, as a reactor runs timers).
        """
        listener = Listener({"frame-timeout": "4"})
        protocol, transport = listener.connect()
        protocol.dataReceived(b"x")
        listener.clock.pump([0.01] * 399)
        self.assertFalse(transport.disconnecting)
        listener.clock.pump([0.01] * 106)
        self.assertTrue(transport.disconnecting)

    def test_completedFramesRestartTheCount(self):
        """
        A client streaming lines, each read ending mid-line, completes a
        line at every read: never closed however long it streams.
        """
        listener = Listener({"frame-timeout": "2"})
        protocol, transport = listener.connect()
        for _ in range(100):
            protocol.dataReceived(b"ab\ncd")
            listener.clock.advance(1.9)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(len(payloads(listener)), 100)

    def test_slowFrameAfterFastOnes(self):
        """
        The count starts at the first byte of the incomplete frame left by
        the last read that completed one: that frame, never completed, is
        closed a timeout later.
        """
        listener = Listener({"frame-timeout": "2"})
        protocol, transport = listener.connect()
        protocol.dataReceived(b"a\nb")
        listener.clock.pump([0.1] * 15)
        protocol.dataReceived(b"c\nd")
        listener.clock.pump([0.1] * 19)
        self.assertFalse(transport.disconnecting)
        listener.clock.pump([0.1] * 6)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(payloads(listener), [b"a", b"bc"])

    def test_noTicksWithoutIncompleteFrame(self):
        """
        A connection holding no incomplete frame holds no timer: a client
        sending whole lines, then nothing, leaves none pending and stays.
        """
        listener = Listener({"frame-timeout": "2"})
        protocol, transport = listener.connect()
        protocol.dataReceived(b"whole\n")
        self.assertEqual(listener.clock.getDelayedCalls(), [])
        protocol.dataReceived(b"half")
        self.assertEqual(len(listener.clock.getDelayedCalls()), 1)
        protocol.dataReceived(b"\n")
        listener.clock.advance(1)
        self.assertEqual(listener.clock.getDelayedCalls(), [])
        listener.clock.advance(60)
        self.assertFalse(transport.disconnecting)

    def test_pausedNotClosed(self):
        """
        While the gateway pauses a connection its frame cannot complete: it
        is not closed, and after the resume it gets the whole timeout again.
        """
        listener = Listener({"frame-timeout": "2"})
        protocol, transport = listener.connect()
        protocol.dataReceived(b"half")
        protocol.pauseProducing()
        listener.clock.pump([0.1] * 300)
        self.assertFalse(transport.disconnecting)
        protocol.resumeProducing()
        listener.clock.pump([0.1] * 19)
        self.assertFalse(transport.disconnecting)
        listener.clock.pump([0.1] * 6)
        self.assertTrue(transport.disconnecting)

    def test_timerCancelledOnLoss(self):
        """
        A connection lost mid-frame leaves no timer behind.
        """
        listener = Listener({"frame-timeout": "2"})
        protocol, _ = listener.connect()
        protocol.dataReceived(b"half")
        lose(protocol)
        self.assertEqual(listener.clock.getDelayedCalls(), [])

    def test_loggedOncePerInterval(self):
        """
        Many connections closed together make one log line with the count.
        """
        events = captureLogs(self)
        listener = Listener({"frame-timeout": "1"})
        for port in range(40000, 40050):
            protocol, _ = listener.connect(port=port)
            protocol.dataReceived(b"x")
        listener.clock.pump([0.1] * 20)
        self.assertEqual(listener.stats.closedBy, {FRAME_TIMEOUT: 50})
        [line] = eventsFrom(events, "gateway.server.gate")
        self.assertEqual(line["reason"], FRAME_TIMEOUT)

    def test_withIdleTimeoutAndProxy(self):
        """
        The frame timeout composes with the idle timeout and the PROXY
        header: a proxied client trickling bytes resets the idle timeout but
        not the frame timeout.
        """
        listener = Listener({"frame-timeout": "4", "idle-timeout": "3"}, endpoint="haproxy:tcp:0")
        wrapper, transport = listener.connectProxied()
        wrapper.dataReceived(b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 9000\r\nx")
        for _ in range(4):
            listener.clock.advance(1)
            wrapper.dataReceived(b"x")
        self.assertFalse(transport.disconnecting)
        listener.clock.advance(1)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(listener.stats.closedBy, {FRAME_TIMEOUT: 1})


class AllowTests(SynchronousTestCase):
    """
    C{allow}: only clients from the listed ranges are admitted.
    """

    def test_refusedAtOnce(self):
        """
        A client outside every range is closed at once, before its stream
        opens, and counted as refused C{not-allowed}; one inside is served.
        """
        listener = Listener({"allow": "10.0.0.0/8;192.168.1.7"})
        _, inside = listener.connect(host="10.1.2.3")
        _, exact = listener.connect(host="192.168.1.7")
        _, outside = listener.connect(host="192.168.1.8")
        self.assertEqual([t.disconnecting for t in (inside, exact, outside)], [False, False, True])
        self.assertEqual(listener.stats.refused, {NOT_ALLOWED: 1})
        self.assertEqual(
            [s.peer for s in listener.sink.streams], ["10.1.2.3:40000", "192.168.1.7:40000"]
        )

    def test_proxiedAddressChecked(self):
        """
        Behind C{haproxy:} the PROXY header's client address is checked, not
        the proxy's.
        """
        listener = Listener({"allow": "203.0.113.0/24"}, endpoint="haproxy:tcp:0")
        allowed, first = listener.connectProxied(40000)
        allowed.dataReceived(b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 9000\r\nx\n")
        refused, second = listener.connectProxied(40001)
        refused.dataReceived(b"PROXY TCP4 198.51.100.2 127.0.0.1 5555 9000\r\nx\n")
        self.assertEqual((first.disconnecting, second.disconnecting), (False, True))
        self.assertEqual(payloads(listener), [b"x"])
        self.assertEqual(listener.stats.refused, {NOT_ALLOWED: 1})

    def test_refusalsLoggedOncePerInterval(self):
        """
        A flood of refused clients is one warning per interval naming the
        reason, then a summary counting them.
        """
        events = captureLogs(self)
        listener = Listener({"allow": "10.0.0.0/8"})
        for port in range(40000, 40020):
            listener.connect(host="172.16.0.1", port=port)
        listener.clock.advance(11)
        listener.connect(host="172.16.0.1", port=50000)
        first, second = eventsFrom(events, "gateway.server.gate", "warn")
        self.assertIn("refused 172.16.0.1:40000: not-allowed", formatted(first))
        self.assertIn("20 not-allowed", formatted(second))
        self.assertEqual(listener.stats.refused, {NOT_ALLOWED: 21})


def payloads(listener):
    """
    :return: the payloads a listener's sink received, in order.
    """
    return [payload for _, payload in listener.sink.messages]


def formatted(event):
    """
    :return: an event's text.
    """
    from twisted.logger import formatEvent

    return formatEvent(event)


class FrameTimeoutValuesTests(SynchronousTestCase):
    """
    The frame timeout's count across pauses and frames, and its log line.
    """

    def test_nextFrameTimedToo(self):
        """
        After a frame completes and the ticks stop, the next incomplete
        frame starts them again.
        """
        listener = Listener({"frame-timeout": "2"})
        protocol, transport = listener.connect()
        protocol.dataReceived(b"ab")
        protocol.dataReceived(b"\n")
        listener.clock.advance(1)
        self.assertEqual(listener.clock.getDelayedCalls(), [])
        protocol.dataReceived(b"cd")
        listener.clock.pump([0.5] * 4)
        self.assertFalse(transport.disconnecting)
        listener.clock.advance(0.5)
        self.assertTrue(transport.disconnecting)

    def test_logged(self):
        """
        The closing is logged with the peer and the timeout in seconds.
        """
        events = captureLogs(self)
        listener = Listener({"frame-timeout": "1"})
        protocol, _ = listener.connect(port=7)
        protocol.dataReceived(b"x")
        listener.clock.pump([0.25] * 5)
        [line] = eventsFrom(events, "gateway.server.gate")
        self.assertEqual(
            (line["reason"], line["peer"], line["after"]), (FRAME_TIMEOUT, "10.0.0.1:7", 1.0)
        )
