# -*- test-case-name: tests.server.test_hygiene_pauses -*-
"""
Tests for the C{frame-timeout} of L{gateway.server.hygiene} under
back-pressure: time paused by the gateway does not count, and neither does
it restart the count (on a L{Clock}, real framings built as the service
builds them).
"""

from twisted.trial.unittest import SynchronousTestCase

from gateway.server.policy import FRAME_TIMEOUT
from tests.server.helpers import Listener


class FrameTimeoutUnderBackPressureTests(SynchronousTestCase):
    """
    The gateway pauses every client above the budget's high-water mark and
    resumes them below its low-water mark, every few seconds under a heavy
    load: a trickling client must still be closed.
    """

    def test_pausedTimeNotCounted(self):
        """
        A frame incomplete for 1.2 s, then paused for 10 s, has only the
        rest of its timeout left after the resume: closed between 1 and
        1.5 s later (ticks every 0.5 s), not a whole timeout later.
        """
        listener = Listener({"frame-timeout": "2"})
        protocol, transport = listener.connect()
        protocol.dataReceived(b"half")
        listener.clock.pump([0.1] * 12)
        protocol.pauseProducing()
        listener.clock.pump([0.1] * 100)
        self.assertFalse(transport.disconnecting)
        protocol.resumeProducing()
        listener.clock.pump([0.1] * 10)
        self.assertFalse(transport.disconnecting)
        listener.clock.pump([0.1] * 5)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(listener.stats.closedBy, {FRAME_TIMEOUT: 1})

    def test_pausesComingAndGoing(self):
        """
        A client trickling one byte every 0.5 s while the gateway pauses it
        for 0.3 s of every second (back-pressure coming and going) is closed
        once its frame has been incomplete, unpaused, for the timeout: by
        7 s here.  Restarting the count at each pause or resume kept such a
        client open for good (C{bench/slowloris.py} saw runs where no
        trickler was closed).
        """
        listener = Listener({"frame-timeout": "2"})
        protocol, transport = listener.connect()
        for tenth in range(70):
            if tenth % 10 == 0:
                protocol.pauseProducing()
            elif tenth % 10 == 3:
                protocol.resumeProducing()
            if tenth % 5 == 0 and not protocol.paused:
                protocol.dataReceived(b"x")
            listener.clock.advance(0.1)
            if transport.disconnecting:
                break
        self.assertGreaterEqual(listener.clock.seconds(), 2.0)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(listener.stats.closedBy, {FRAME_TIMEOUT: 1})

    def test_idleCountRestartsOnResume(self):
        """
        With C{idle-timeout} too, a resume still restarts the idle count (the
        silence was the gateway's doing) but not the frame count.
        """
        listener = Listener({"frame-timeout": "2", "idle-timeout": "3"})
        protocol, transport = listener.connect()
        protocol.dataReceived(b"half")
        listener.clock.pump([0.1] * 12)
        protocol.pauseProducing()
        listener.clock.pump([0.1] * 50)
        protocol.resumeProducing()
        listener.clock.pump([0.1] * 15)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(listener.stats.closedBy, {FRAME_TIMEOUT: 1})
